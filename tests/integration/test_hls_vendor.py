"""hls.js from npm (node_modules), served by us: /static/vendor/hls.min.js (+ source map)."""

from __future__ import annotations

import json

from aiohttp import web

from web_console.assets import NODE_MODULES, VendorAssets, register_vendor_routes, vendor_url


async def test_serves_hls_js_from_node_modules(aiohttp_client):
    app = web.Application()
    register_vendor_routes(app)
    client = await aiohttp_client(app)
    r = await client.get("/static/vendor/hls.min.js")
    assert r.status == 200, await r.text()
    assert r.content_type == "text/javascript"
    assert "max-age=31536000" in r.headers["Cache-Control"]
    body = await r.read()
    assert body == (NODE_MODULES / "hls.js" / "dist" / "hls.min.js").read_bytes()
    version = json.loads((NODE_MODULES / "hls.js" / "package.json").read_text())["version"]
    assert vendor_url(app) == f"/static/vendor/hls.min.js?v={version}"
    r = await client.get("/static/vendor/hls.min.js.map")
    assert r.status == 200 and r.content_type == "application/json"
    r = await client.get("/static/vendor/jquery.js")
    assert r.status == 404
    assert (await r.json())["error"] == "not_found"


async def test_missing_node_modules_is_a_clear_503(aiohttp_client, tmp_path):
    app = web.Application()
    register_vendor_routes(app, VendorAssets(tmp_path / "node_modules"))
    client = await aiohttp_client(app)
    r = await client.get("/static/vendor/hls.min.js")
    assert r.status == 503
    assert "Retry-After" in r.headers
    body = await r.json()
    assert body["error"] == "assets_missing" and "make setup" in body["detail"]
    assert (await client.get("/static/vendor/hls.min.js.map")).status == 404
    assert vendor_url(app) == "/static/vendor/hls.min.js"
