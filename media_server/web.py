"""Shared pieces of the HTTP layer: app keys, auth helpers, JSON in and out."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from .auth import require_token
from .config import Config
from .errors import ApiError
from .productions import ProductionRuntime
from .store import Store
from .whip import WhipService, read_limited_body

CONFIG = web.AppKey("config", Config)
STORE = web.AppKey("store", Store)  # type: ignore[type-abstract]
RUNTIMES = web.AppKey("runtimes", dict)
WHIP = web.AppKey("whip", WhipService)
ADMIN_TOKEN = web.AppKey("admin_token", str)
READY = web.AppKey("ready", asyncio.Event)
FILE_ROOTS = web.AppKey("file_roots", list)


# --- helpers -------------------------------------------------------------------------------
async def read_json(request: web.Request) -> dict[str, Any]:
    limit = request.app[CONFIG].server.max_json_bytes
    ctype = request.content_type
    if ctype != "application/json":
        raise ApiError(415, f"expected Content-Type application/json, got {ctype or 'none'}")
    body = await read_limited_body(request, limit)
    try:
        data = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "body must be a JSON object")
    return data


def json_response(data: Any, status: int = 200, **kw: Any) -> web.Response:
    return web.json_response(data, status=status,
                             dumps=lambda o: json.dumps(o, ensure_ascii=False), **kw)


def check_keys(data: dict[str, Any], allowed: set[str], where: str = "") -> None:
    for k in data:
        if k not in allowed:
            raise ApiError(400, f"unknown field {where}{k!r}", field=f"{where}{k}")


def runtime_for(request: web.Request) -> ProductionRuntime:
    pid = request.match_info["production"]
    rt = request.app[RUNTIMES].get(pid)
    if rt is None:
        raise ApiError(404, f"no such production {pid!r}")
    return rt


def require_admin(request: web.Request) -> None:
    require_token(request, [request.app[ADMIN_TOKEN]], realm="scenecloud-admin")


def require_director(request: web.Request, rt: ProductionRuntime) -> None:
    require_token(request, [rt.production.director_token, request.app[ADMIN_TOKEN]],
                  realm="scenecloud-director")


def require_publisher(request: web.Request, rt: ProductionRuntime) -> None:
    require_token(request, [rt.production.publish_token, rt.production.director_token,
                            request.app[ADMIN_TOKEN]], realm="scenecloud-whip")
