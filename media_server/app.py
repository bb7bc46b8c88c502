"""The aiohttp application: HTTP contract of the server (see README "HTTP API")."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web

from hls_packager.edge import HlsEdge
from hls_packager.server import HLS_REGISTRY, HlsRegistry, register_hls_routes
from switcher.scale import encode_jpeg
from web_console.api import register_switcher_routes
from web_console.assets import register_vendor_routes
from web_console.pages import register_pages

from .config import Config, ConfigError, VideoConfig
from .errors import ApiError, error_middleware
from .inputs import PullInput, TestInput, validate_pull_url
from .observe import register_observe_routes
from .productions import ProductionRuntime
from .store import ID_RE, Production, ProductionExists, SqliteStore, new_token
from .web import (
    ADMIN_TOKEN,
    CONFIG,
    FILE_ROOTS,
    READY,
    RUNTIMES,
    STORE,
    WHIP,
    check_keys,
    json_response,
    read_json,
    require_admin,
    require_director,
    require_publisher,
    runtime_for,
)
from .whip import (
    SDP_TYPE,
    WhipService,
    check_source_id,
    read_limited_body,
    whip_cors_headers,
)

log = logging.getLogger(__name__)

def resolve_admin_token(config: Config, data_dir: Path) -> str:
    """Config/env token, else the one kept in <data_dir>/admin_token (created on first start)."""
    if config.server.admin_token:
        return config.server.admin_token
    path = data_dir / "admin_token"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    token = new_token()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


# --- health --------------------------------------------------------------------------------
async def healthz(request: web.Request) -> web.Response:
    if not request.app[READY].is_set():
        raise ApiError(503, "starting", headers={"Retry-After": "1"})
    return json_response({"status": "ok", "productions": len(request.app[RUNTIMES]),
                          "whip_sessions": len(request.app[WHIP].sessions)})


# --- productions ---------------------------------------------------------------------------
async def create_production(request: web.Request) -> web.Response:
    require_admin(request)
    data = await read_json(request)
    check_keys(data, {"id", "title", "video", "max_sources"})
    pid = data.get("id")
    if not isinstance(pid, str) or not ID_RE.match(pid):
        raise ApiError(400, "id must be 1-64 letters, digits, '-' or '_'", field="id")
    title = data.get("title", pid)
    if not isinstance(title, str) or len(title) > 200:
        raise ApiError(400, "title must be a string of at most 200 characters", field="title")
    cfg = request.app[CONFIG]
    video = data.get("video", {})
    if not isinstance(video, dict):
        raise ApiError(400, "video must be an object {width, height, fps}", field="video")
    check_keys(video, {"width", "height", "fps"}, "video.")
    for k, v in video.items():
        if isinstance(v, bool) or not isinstance(v, int):
            raise ApiError(400, f"video.{k} must be an integer", field=f"video.{k}")
    try:
        vc = VideoConfig(**{**cfg.video.__dict__, **video})
    except ConfigError as exc:
        raise ApiError(400, f"video.{exc}", field="video") from None
    max_sources = data.get("max_sources", cfg.ingest.max_sources)
    if isinstance(max_sources, bool) or not isinstance(max_sources, int) \
            or not 1 <= max_sources <= 256:
        raise ApiError(400, "max_sources must be an integer 1-256", field="max_sources")
    prod = Production(id=pid, title=title, width=vc.width, height=vc.height, fps=vc.fps,
                      publish_token=new_token(), director_token=new_token(),
                      max_sources=max_sources)
    try:
        await request.app[STORE].create(prod)
    except ProductionExists:
        raise ApiError(409, f"production {pid!r} already exists") from None
    rt = ProductionRuntime(prod, cfg, request.app[HLS_REGISTRY])
    request.app[RUNTIMES][pid] = rt
    rt.start()
    log.info("production %s created", pid)
    return json_response(prod.public_dict(with_tokens=True), status=201,
                         headers={"Location": f"/api/productions/{pid}"})


async def list_productions(request: web.Request) -> web.Response:
    require_admin(request)
    prods = await request.app[STORE].list()
    runtimes = request.app[RUNTIMES]
    out = []
    for p in prods:
        d = p.public_dict(with_tokens=True)
        rt = runtimes.get(p.id)
        d["sources"] = len(rt.active_sources()) if rt else 0
        out.append(d)
    return json_response({"productions": out})


async def get_production(request: web.Request) -> web.Response:
    rt = runtime_for(request)
    require_director(request, rt)
    # the director hands reporters their publish link (console: link + QR code)
    return json_response({**rt.describe(), "publish_token": rt.production.publish_token})


async def public_production(request: web.Request) -> web.Response:
    """What a viewer's scene page may know: title and whether it is live or a replay."""
    pid = request.match_info["production"]
    prod = await request.app[STORE].get(pid)
    if prod is None:
        raise ApiError(404, f"no such production {pid!r}")
    return json_response({"id": prod.id, "title": prod.title, "state": prod.state},
                         headers={"Access-Control-Allow-Origin": "*",
                                  "Cache-Control": "max-age=5"})


async def delete_production(request: web.Request) -> web.Response:
    pid = request.match_info["production"]
    require_admin(request)
    prod = await request.app[STORE].end(pid, time.time())
    if prod is None:
        raise ApiError(404, f"no such production {pid!r}")
    rt = request.app[RUNTIMES].pop(pid, None)
    if rt is not None:
        await rt.close()
    log.info("production %s ended", pid)
    return json_response(prod.public_dict(with_tokens=False))


# --- sources -------------------------------------------------------------------------------
async def add_source(request: web.Request) -> web.Response:
    rt = runtime_for(request)
    require_director(request, rt)
    data = await read_json(request)
    sid = data.get("id")
    if not isinstance(sid, str):
        raise ApiError(400, "id (source name) is required", field="id")
    check_source_id(sid)
    kind = data.get("kind")
    if kind == "test":
        check_keys(data, {"id", "kind", "pattern", "color", "tone_hz", "width", "height", "fps",
                          "label"})
        pattern = data.get("pattern", "bars")
        if pattern not in ("bars", "solid"):
            raise ApiError(400, "pattern must be 'bars' or 'solid'", field="pattern")
        p = rt.production
        opts: dict[str, Any] = {}
        for k, lo, hi in (("width", 16, 3840), ("height", 16, 2160), ("fps", 1, 60),
                          ("tone_hz", 0, 20000)):
            v = data.get(k)
            if v is not None:
                if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                    raise ApiError(400, f"{k} must be an integer {lo}-{hi}", field=k)
                opts[k] = v
        color = data.get("color", "#0050a0")
        if not isinstance(color, str) or not _is_hex_color(color):
            raise ApiError(400, "color must be '#rrggbb'", field="color")
        label = data.get("label", sid)
        if not isinstance(label, str) or len(label) > 64:
            raise ApiError(400, "label must be a string of at most 64 characters",
                           field="label")
        src = rt.new_source(sid, "test")
        inp = TestInput(src, pattern=pattern, width=opts.get("width", p.width),
                        height=opts.get("height", p.height), fps=opts.get("fps", p.fps),
                        color=color, tone_hz=opts.get("tone_hz", 1000), label=label)
    elif kind == "pull":
        check_keys(data, {"id", "kind", "url", "realtime"})
        url = data.get("url")
        problem = validate_pull_url(url, allowed_file_roots=request.app[FILE_ROOTS])
        if problem:
            raise ApiError(400, f"url: {problem}", field="url")
        realtime = data.get("realtime")
        if realtime is not None and not isinstance(realtime, bool):
            raise ApiError(400, "realtime must be true, false or absent", field="realtime")
        cfg = request.app[CONFIG].ingest
        src = rt.new_source(sid, "pull")
        inp = PullInput(src, url, backoff_s=cfg.pull_backoff_s,
                        backoff_max_s=cfg.pull_backoff_max_s, realtime=realtime,
                        allowed_file_roots=request.app[FILE_ROOTS])
    else:
        raise ApiError(400, "kind must be 'test' or 'pull' (WHIP sources publish to "
                            "/whip/{production}/{source})", field="kind")
    src.on_close = inp.stop
    await rt.add_source(src, replace=False)
    inp.start()
    return json_response(src.stats(), status=201,
                         headers={"Location": f"/api/productions/{rt.id}/sources/{sid}"})



def _is_hex_color(s: str) -> bool:
    return len(s) == 7 and s[0] == "#" and all(c in "0123456789abcdefABCDEF" for c in s[1:])


async def delete_source(request: web.Request) -> web.Response:
    rt = runtime_for(request)
    require_director(request, rt)
    sid = request.match_info["source"]
    if not await rt.remove_source(sid):
        raise ApiError(404, f"no such source {sid!r} in {rt.id!r}")
    return web.Response(status=204)


async def source_snapshot(request: web.Request) -> web.Response:
    rt = runtime_for(request)
    require_director(request, rt)
    sid = request.match_info["source"]
    src = rt.sources.get(sid)
    if src is None:
        raise ApiError(404, f"no such source {sid!r} in {rt.id!r}")
    item = src.latest_video()
    if item is None:
        raise ApiError(404, f"source {sid!r} has no video frame yet", error="no_frame")
    jpeg = await asyncio.to_thread(encode_jpeg, item.frame)
    return web.Response(body=jpeg, content_type="image/jpeg",
                        headers={"Cache-Control": "no-store"})


# --- WHIP ----------------------------------------------------------------------------------
async def whip_options(request: web.Request) -> web.Response:
    headers = {
        "Access-Control-Allow-Methods": "POST, DELETE, PATCH, OPTIONS",
        "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match",
        "Access-Control-Max-Age": "600",
        "Accept-Post": SDP_TYPE,
        **whip_cors_headers(request, request.app[CONFIG]),
    }
    links = request.app[WHIP].link_headers()
    if links:
        headers["Link"] = ", ".join(links)
    return web.Response(status=204, headers=headers)


async def whip_post(request: web.Request) -> web.Response:
    cors = whip_cors_headers(request, request.app[CONFIG])
    try:
        rt = runtime_for(request)
        require_publisher(request, rt)
        sid = request.match_info["source"]
        check_source_id(sid)
        if request.content_type != SDP_TYPE:
            raise ApiError(415, f"expected Content-Type {SDP_TYPE}, "
                                f"got {request.content_type or 'none'}")
        body = await read_limited_body(request, request.app[CONFIG].ingest.max_sdp_bytes)
        try:
            offer = body.decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError(400, "SDP offer is not UTF-8 text", error="bad_sdp") from None
        session, answer = await request.app[WHIP].open_session(rt, sid, offer)
    except ApiError as exc:
        exc.headers.update(cors)
        raise
    headers = {"Location": session.location, "ETag": session.etag, **cors}
    links = request.app[WHIP].link_headers()
    resp = web.Response(status=201, body=answer.encode(), content_type=SDP_TYPE, headers=headers)
    for link in links:
        resp.headers.add("Link", link)
    log.info("whip %s/%s session opened", rt.id, sid)
    return resp


def _whip_session(request: web.Request) -> Any:
    rt = runtime_for(request)
    require_publisher(request, rt)
    session = request.app[WHIP].sessions.get(request.match_info["session"])
    if (session is None or session.runtime is not rt
            or session.source.id != request.match_info["source"]):
        raise ApiError(404, "no such WHIP session (it may have ended)")
    return session


async def whip_delete(request: web.Request) -> web.Response:
    cors = whip_cors_headers(request, request.app[CONFIG])
    try:
        session = _whip_session(request)
    except ApiError as exc:
        exc.headers.update(cors)
        raise
    await request.app[WHIP]._end(session, "publisher sent DELETE")
    return web.Response(status=200, headers=cors)


async def whip_patch(request: web.Request) -> web.Response:
    _whip_session(request)
    # RFC 9725 §4.3: a server that supports neither trickle ICE nor ICE restarts answers 405.
    raise ApiError(405, "trickle ICE and ICE restart are not supported: the answer carries "
                        "all candidates; to restart, POST a new offer",
                   headers={"Allow": "DELETE, OPTIONS"})


# --- app -----------------------------------------------------------------------------------
def create_app(config: Config, *, data_dir: Path | None = None,
               file_roots: list[str] | None = None) -> web.Application:
    data = Path(data_dir or config.server.data_dir).resolve()
    app = web.Application(middlewares=[error_middleware],
                          client_max_size=max(config.server.max_json_bytes,
                                              config.ingest.max_sdp_bytes) + 1024)
    app[CONFIG] = config
    app[RUNTIMES] = {}
    app[WHIP] = WhipService(config)
    app[READY] = asyncio.Event()
    app[FILE_ROOTS] = [*config.ingest.pull_file_roots, *(file_roots or [])]
    app[ADMIN_TOKEN] = resolve_admin_token(config, data)
    # HLS first: its cleanup (stop every packager) then runs after the productions' own
    register_hls_routes(app, HlsRegistry(data_dir=data, config=config.hls))
    if config.server.hls_port:
        app.cleanup_ctx.append(_hls_edge)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        store = SqliteStore(data / "scenecloud.db")
        app[STORE] = store
        for prod in await store.list():
            if prod.ended_at is None:
                rt = ProductionRuntime(prod, config, app[HLS_REGISTRY])
                app[RUNTIMES][prod.id] = rt
                rt.start()
        app[READY].set()
        yield
        app[READY].clear()
        await app[WHIP].close_all()
        await asyncio.gather(*(rt.close() for rt in app[RUNTIMES].values()),
                             return_exceptions=True)
        app[RUNTIMES].clear()
        await store.close()

    app.cleanup_ctx.append(lifecycle)
    r = app.router
    r.add_get("/healthz", healthz)
    r.add_post("/api/productions", create_production)
    r.add_get("/api/productions", list_productions)
    r.add_get("/api/productions/{production}", get_production)
    r.add_get("/api/productions/{production}/public", public_production)
    r.add_delete("/api/productions/{production}", delete_production)
    r.add_post("/api/productions/{production}/sources", add_source)
    r.add_delete("/api/productions/{production}/sources/{source}", delete_source)
    r.add_get("/api/productions/{production}/sources/{source}/snapshot.jpg", source_snapshot)
    r.add_route("OPTIONS", "/whip/{production}/{source}", whip_options)
    r.add_post("/whip/{production}/{source}", whip_post)
    r.add_route("OPTIONS", "/whip/{production}/{source}/{session}", whip_options)
    r.add_delete("/whip/{production}/{source}/{session}", whip_delete)
    r.add_patch("/whip/{production}/{source}/{session}", whip_patch)
    # switcher API, events, program/preview snapshots
    register_switcher_routes(app)
    # front-end packages from npm (hls.js), served by us: no CDN at run time
    register_vendor_routes(app)
    # /metrics (Prometheus) and /api/productions/{id}/latency
    register_observe_routes(app)
    # the three faces: /console/{id}, /scene/{id}, /go/{id}
    register_pages(app, hls_port=config.server.hls_port,
                   hls_public_url=config.server.hls_public_url)
    return app


HLS_EDGE = web.AppKey("hls_edge", HlsEdge)


async def _hls_edge(app: web.Application) -> AsyncIterator[None]:
    """The HLS edge listener (server.hls_port) over the app's HLS registry, for the app's
    lifetime."""
    cfg = app[CONFIG].server
    edge = HlsEdge(app[HLS_REGISTRY])
    await edge.start(cfg.host, cfg.hls_port)
    app[HLS_EDGE] = edge
    log.info("HLS edge listening on %s:%d", cfg.host, cfg.hls_port)
    yield
    await edge.close()
