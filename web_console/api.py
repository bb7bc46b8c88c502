"""Switcher API: commands, bus snapshots and the live events WebSocket.

- `POST /api/productions/{id}/switcher` `{"op": ...}` → the new switcher state (director).
  Commands go through the switcher's queue and are applied in order by its clock thread
  between two frames; the reply comes once the command has taken effect (or was rejected,
  in which case nothing changed).
- `GET /api/productions/{id}/program.jpg` / `preview.jpg` → JPEG of the bus output.
- `GET /api/productions/{id}/events` (WebSocket) → `state`, `tally`, `meters` events pushed to
  every console. Browsers cannot set headers on a WebSocket, so the token is the first message
  (`{"token": "..."}`) rather than a URL parameter that would end up in access logs; an
  `Authorization: Bearer` header works too. A publish token may subscribe to its own source's
  tally only: `{"token": "<publish token>", "source": "cam1"}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from aiohttp import WSMsgType, web

from media_server.auth import bearer_token, token_matches
from media_server.errors import ApiError
from media_server.events import Event
from media_server.productions import ProductionRuntime
from media_server.web import ADMIN_TOKEN, json_response, read_json, require_director, runtime_for
from switcher import SwitcherError, command_from_json

log = logging.getLogger(__name__)

AUTH_TIMEOUT_S = 5.0


def _switcher_error(exc: SwitcherError) -> ApiError:
    d = exc.to_dict()
    return ApiError(exc.status, d.get("message") or str(exc), field=d.get("field"))


async def switcher_command(request: web.Request) -> web.Response:
    rt = runtime_for(request)
    require_director(request, rt)
    body = await read_json(request)
    try:
        cmd = command_from_json(body)
        state = await asyncio.wrap_future(rt.switcher.submit(cmd))
    except SwitcherError as exc:
        raise _switcher_error(exc) from None
    return json_response(state)


async def bus_snapshot(request: web.Request) -> web.Response:
    rt = runtime_for(request)
    require_director(request, rt)
    bus = request.match_info["bus"]
    jpeg = await asyncio.to_thread(rt.switcher.snapshot_jpeg, bus)
    if jpeg is None:
        raise ApiError(404, f"no {bus} frame yet", error="no_frame")
    return web.Response(body=jpeg, content_type="image/jpeg",
                        headers={"Cache-Control": "no-store"})


def _role(request: web.Request, rt: ProductionRuntime, token: str) -> str | None:
    """'director' or 'publisher' for a valid token, else None (constant-time compares)."""
    p = rt.production
    director = token_matches(token, p.director_token) | token_matches(
        token, request.app[ADMIN_TOKEN])
    publisher = token_matches(token, p.publish_token)
    return "director" if director else "publisher" if publisher else None


def _publisher_filter(source_id: str) -> Any:
    def accept(ev: Event) -> Event | None:
        if ev.get("type") != "tally":
            return None
        return {"type": "tally", "source": source_id,
                "tally": ev.get("tally", {}).get(source_id, "off")}

    return accept


async def events_ws(request: web.Request) -> web.WebSocketResponse:
    rt = runtime_for(request)
    ws = web.WebSocketResponse(heartbeat=20)
    await ws.prepare(request)
    token = bearer_token(request)
    source_id: str | None = None
    if token is None:
        try:
            msg = await ws.receive(timeout=AUTH_TIMEOUT_S)
            hello = json.loads(msg.data) if msg.type == WSMsgType.TEXT else {}
        except (TimeoutError, ValueError):
            hello = {}
        if isinstance(hello, dict):
            token = hello.get("token") if isinstance(hello.get("token"), str) else None
            source_id = hello.get("source") if isinstance(hello.get("source"), str) else None
    role = _role(request, rt, token) if token else None
    if role is None or (role == "publisher" and not source_id):
        detail = ("send {\"token\": ...} first" if token is None else
                  "a publish token needs \"source\"" if role == "publisher" else
                  "token is not valid for this production")
        await ws.send_json({"type": "error", "error": "unauthorized", "detail": detail})
        await ws.close(code=4401, message=b"unauthorized")
        return ws
    if role == "director":
        sub = rt.events.subscribe()
        state = rt.switcher.state_dict()
        await ws.send_json({"type": "hello", "role": role, "production": rt.id})
        await ws.send_json({"type": "state", "state": state})
        await ws.send_json({"type": "sources", "sources": rt.source_list()})
    else:
        assert source_id is not None
        sub = rt.events.subscribe(_publisher_filter(source_id))
        tally = rt.switcher.state_dict().get("tally", {}).get(source_id, "off")
        await ws.send_json({"type": "hello", "role": role, "production": rt.id,
                            "source": source_id})
        await ws.send_json({"type": "tally", "source": source_id, "tally": tally})

    async def sender() -> None:
        while True:
            ev = await sub.queue.get()
            await ws.send_str(json.dumps(ev, ensure_ascii=False))

    async def sources_ticker() -> None:
        # source stats (state, fps, bitrate, loss) for the multiview, once a second
        while True:
            await asyncio.sleep(1.0)
            await ws.send_str(json.dumps({"type": "sources", "sources": rt.source_list()},
                                         ensure_ascii=False))

    tasks = [asyncio.ensure_future(sender())]
    if role == "director":
        tasks.append(asyncio.ensure_future(sources_ticker()))
    try:
        async for msg in ws:  # inbound messages are ignored; commands go through POST
            if msg.type == WSMsgType.ERROR:
                break
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        rt.events.unsubscribe(sub)
    return ws


def register_switcher_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/api/productions/{production}/switcher", switcher_command)
    r.add_get("/api/productions/{production}/{bus:program|preview}.jpg", bus_snapshot)
    r.add_get("/api/productions/{production}/events", events_ws)
