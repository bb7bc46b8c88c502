"""The HLS edge listener's own HTTP/1.1 handling, over raw sockets (what LL-HLS behaviour it
shares with the main port is tested in test_hls_server.py, against both)."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from hls_packager.edge import HlsEdge
from hls_packager.server import HlsRegistry
from tests.integration.test_hls_server import FPS, Feeder, small_config
from tests.utils import wait_for


@pytest.fixture
async def edge(tmp_path):
    registry = HlsRegistry(tmp_path)
    packager = registry.create("prod1", FPS, small_config(renditions=small_config().renditions[1:]))
    packager.start()
    feeder = Feeder(packager)
    feeder.push(FPS + 6)  # segment 0 and part 1.0
    edge = HlsEdge(registry, idle_timeout_s=0.5)
    port = await edge.start("127.0.0.1", 0)
    yield edge, port, packager, feeder
    feeder.stop()
    await edge.close()
    await packager.aclose()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        if line:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    body = await asyncio.wait_for(reader.readexactly(n), 5) if n else b""
    return status, headers, body


async def wait_for_playlist(port: int, msn: int, part: int) -> None:
    async with aiohttp.ClientSession() as s, s.get(
            f"http://127.0.0.1:{port}/hls/prod1/lo/index.m3u8?_HLS_msn={msn}&_HLS_part={part}",
            timeout=aiohttp.ClientTimeout(total=10)) as r:
        assert r.status == 200


async def test_keep_alive_and_pipelining_answer_in_order(edge):
    _edge, port, _packager, feeder = edge
    await wait_for_playlist(port, 1, 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    # Three requests in one write: a blocking reload that waits (part 1.1 is not there yet),
    # then two that could be answered at once. They must come back in request order.
    writer.write(b"GET /hls/prod1/lo/index.m3u8?_HLS_msn=1&_HLS_part=1 HTTP/1.1\r\nHost: x\r\n\r\n"
                 b"GET /hls/prod1/lo/part1.0.m4s HTTP/1.1\r\nHost: x\r\n\r\n"
                 b"GET /hls/prod1/index.m3u8 HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    await asyncio.sleep(0.3)
    feeder.push(6)  # part 1.1
    status, headers, body = await read_response(reader)
    assert status == 200 and 'URI="part1.1.m4s"' in body.decode()
    assert headers["content-type"] == "application/vnd.apple.mpegurl; charset=utf-8"
    assert headers["cache-control"] == "no-cache" and headers["connection"] == "keep-alive"
    status, headers, body = await read_response(reader)
    assert status == 200 and headers["content-type"] == "video/mp4" and body[4:8] == b"moof"
    assert "immutable" in headers["cache-control"]
    assert headers["access-control-allow-origin"] == "*"
    status, _headers, body = await read_response(reader)
    assert status == 200 and body.startswith(b"#EXTM3U")
    # the connection is still usable
    writer.write(b"HEAD /hls/prod1/lo/part1.0.m4s HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert b" 200 " in head.split(b"\r\n")[0] and b"Content-Length: " in head
    writer.write(b"GET /hls/prod1/lo/part1.0.m4s HTTP/1.1\r\nHost: x\r\n\r\n")
    status, _headers, body = await read_response(reader)  # HEAD sent no body before this
    assert status == 200 and body[4:8] == b"moof"
    writer.close()


@pytest.mark.parametrize("request_bytes, status, closes", [
    (b"GARBAGE\r\n\r\n", 400, True),
    (b"GET /hls/prod1/index.m3u8 HTTP/2.0\r\n\r\n", 400, True),
    (b"GET /hls/prod1/index.m3u8 HTTP/1.1\r\nbad header\r\n\r\n", 400, True),
    (b"POST /hls/prod1/index.m3u8 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", 400, True),
    (b"DELETE /hls/prod1/index.m3u8 HTTP/1.1\r\n\r\n", 405, False),
    (b"GET /api/productions HTTP/1.1\r\n\r\n", 404, False),
    (b"GET /hls/nope/index.m3u8 HTTP/1.1\r\n\r\n", 404, False),
    (b"GET /hls/prod1/lo/index.m3u8?_HLS_msn=x HTTP/1.1\r\n\r\n", 400, False),
    (b"GET /hls/prod1/lo/" + b"a" * 3000 + b" HTTP/1.1\r\n\r\n", 414, False),
    (b"GET /hls/prod1/index.m3u8 HTTP/1.1\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", 431, True),
    (b"GET /hls/prod1/index.m3u8 HTTP/1.0\r\n\r\n", 200, True),
    (b"GET /hls/prod1/index.m3u8 HTTP/1.1\r\nConnection: close\r\n\r\n", 200, True),
])
async def test_bad_requests_get_json_errors(edge, request_bytes, status, closes):
    _edge, port, _packager, _feeder = edge
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request_bytes)
    got, headers, body = await read_response(reader)
    assert got == status, body
    if status >= 400:
        doc = json.loads(body)
        assert doc["error"] and doc["detail"]
        assert headers["content-type"] == "application/json; charset=utf-8"
        assert headers["access-control-allow-origin"] == "*"
    if status == 405:
        assert headers["allow"] == "GET, HEAD, OPTIONS"
    assert (headers["connection"] == "close") == closes
    if closes:
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server
    else:  # still answers on the same connection
        writer.write(b"GET /hls/prod1/index.m3u8 HTTP/1.1\r\n\r\n")
        assert (await read_response(reader))[0] == 200
    writer.close()


async def test_cors_preflight_and_percent_encoded_path(edge):
    _edge, port, _packager, _feeder = edge
    async with aiohttp.ClientSession() as s:
        async with s.options(f"http://127.0.0.1:{port}/hls/prod1/index.m3u8",
                             headers={"Origin": "https://a.example",
                                      "Access-Control-Request-Method": "GET"}) as r:
            assert r.status == 204
            assert r.headers["Access-Control-Allow-Origin"] == "*"
            assert "GET" in r.headers["Access-Control-Allow-Methods"]
        async with s.get(f"http://127.0.0.1:{port}/hls/prod1/%6co/index.m3u8") as r:
            assert r.status == 200 and "#EXT-X-PART-INF" in await r.text()


async def test_idle_connections_close_and_connection_limit(edge):
    e, port, _packager, _feeder = edge
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await wait_for(lambda: len(e.connections) == 1, 5, "the connection")
    await wait_for(lambda: not e.connections, 5, "idle close")  # idle_timeout_s = 0.5
    writer.close()
    e.max_connections = 1
    r1, w1 = await asyncio.open_connection("127.0.0.1", port)
    w1.write(b"GET /hls/prod1/index.m3u8 HTTP/1.1\r\n\r\n")
    assert (await read_response(r1))[0] == 200
    r2, w2 = await asyncio.open_connection("127.0.0.1", port)
    status, _headers, body = await read_response(r2)
    assert status == 503 and json.loads(body)["error"] == "unavailable"
    assert e.stats()["refused_connections"] == 1
    w1.close()
    w2.close()


async def test_many_blocked_clients_all_answered_on_publish(edge):
    """500 connections block on the next part; one publish answers every one of them."""
    _edge, port, packager, feeder = edge
    await wait_for_playlist(port, 1, 0)
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(500)]
    for _r, w in conns:
        w.write(b"GET /hls/prod1/lo/index.m3u8?_HLS_msn=1&_HLS_part=1 HTTP/1.1\r\n\r\n")
    await asyncio.sleep(0.3)
    assert not packager.outputs["lo"].window.has(1, 1)
    feeder.push(6)
    results = await asyncio.gather(*(read_response(r) for r, _w in conns))
    assert all(st == 200 and b'URI="part1.1.m4s"' in body for st, _h, body in results)
    for _r, w in conns:
        w.close()


async def test_server_with_hls_port_serves_hls_there_and_scene_pages_use_it(
        aiohttp_server, tmp_path):
    from benchmarks.common import free_port
    from media_server.app import create_app
    from tests.conftest import ADMIN, make_config

    hls_port = free_port()
    cfg = make_config().replace("server", hls_port=hls_port)
    app = create_app(cfg, data_dir=tmp_path / "data")
    srv = await aiohttp_server(app)
    base = str(srv.make_url("")).rstrip("/")
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/api/productions", json={"id": "quake"},
                             headers={"Authorization": f"Bearer {ADMIN}"}) as r:
            assert r.status == 201, await r.text()
        async with http.get(f"{base}/scene/quake") as r:
            page = await r.text()
            csp = r.headers["Content-Security-Policy"]
        edge_origin = f"http://127.0.0.1:{hls_port}"
        assert f'<meta name="hls-base" content="{edge_origin}">' in page
        assert f"connect-src 'self' {edge_origin}" in csp
        assert f"media-src 'self' {edge_origin}" in csp
        # the production's live output is on the edge (the first request holds until the
        # first part exists), the same as on the main port
        async with http.get(f"{edge_origin}/hls/quake/360p/index.m3u8",
                            timeout=aiohttp.ClientTimeout(total=20)) as r:
            assert r.status == 200 and "#EXT-X-PRELOAD-HINT" in await r.text()
        async with http.get(f"{base}/hls/quake/index.m3u8") as main, \
                http.get(f"{edge_origin}/hls/quake/index.m3u8") as edge:
            assert await main.text() == await edge.text()
        # the console is not affected
        async with http.get(f"{base}/console/quake") as r:
            assert edge_origin not in r.headers["Content-Security-Policy"]
