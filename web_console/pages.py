"""The three pages: director console, scene (viewer) page, phone publisher.

`register_pages(app)` adds
- ``GET /console/{production}``, ``/scene/{production}``, ``/go/{production}``: public HTML
  shells (no data in them; the scripts fetch everything from the API with a token the user
  gives: the director token on the console, the publish token from the ``#token=`` fragment on
  the publisher page; the scene page needs none).
- ``GET /static/web/{version}/{name}``: our own JS/CSS from ``web_console/static``. The version
  is a hash of every static file, so the files are served ``immutable`` for a year and a
  deploy changes every URL; ES-module imports are relative (``./i18n.js``), so they inherit
  the version from the page's URL. An outdated version (a page loaded before a deploy) is
  still served, with ``no-cache``. ``/static/web/{name}`` (unversioned) answers with
  ``no-cache`` too.

hls.js comes from ``/static/vendor/hls.min.js`` (`web_console.assets`, npm at set-up, never a
CDN); with `register_vendor_routes` in place its URL carries the package version.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from media_server.errors import error_response
from media_server.store import ID_RE

from .assets import VENDOR_ASSETS, vendor_url

STATIC_DIR = Path(__file__).resolve().parent / "static"
TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
PAGES = ("console", "scene", "go")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}\.(js|css|svg|png)$")
_CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml",
                  ".png": "image/png"}
CACHE_IMMUTABLE = "public, max-age=31536000, immutable"
CACHE_REVALIDATE = "no-cache"
# Pages: no referrer (the publisher URL's fragment never leaves anyway, but the path names the
# production), no framing, scripts only from us.
PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        "img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; "
        "worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'"),
}


@dataclass
class StaticFiles:
    """The files under `root`, read once; `version` is a short hash of all of them."""

    root: Path = STATIC_DIR
    files: dict[str, bytes] = field(default_factory=dict)
    version: str = ""

    def __post_init__(self) -> None:
        h = hashlib.sha256()
        for p in sorted(self.root.iterdir()):
            if p.is_file() and _NAME_RE.match(p.name):
                data = p.read_bytes()
                self.files[p.name] = data
                h.update(p.name.encode() + b"\0" + data)
        self.version = h.hexdigest()[:12]


@dataclass
class Pages:
    static: StaticFiles
    templates: dict[str, str]
    hls_port: int = 0  # the HLS edge listener's port (0: HLS on this origin)
    hls_public_url: str = ""  # where scene pages load HLS from, when set


PAGES_KEY = web.AppKey("web_pages", Pages)


def register_pages(app: web.Application, static_root: Path | None = None, *,
                   hls_port: int = 0, hls_public_url: str = "") -> None:
    """Add the page and static routes (idempotent: a second call does nothing). With
    `hls_port` (the HLS edge listener) or `hls_public_url`, scene pages load HLS from there."""
    if PAGES_KEY in app:
        return
    templates = {name: (TEMPLATE_DIR / f"{name}.html").read_text("utf-8") for name in PAGES}
    app[PAGES_KEY] = Pages(StaticFiles(static_root or STATIC_DIR), templates, hls_port,
                           hls_public_url.rstrip("/"))
    r = app.router
    for name in PAGES:
        r.add_get(f"/{name}/{{production}}", _page_handler(name))
    r.add_get("/static/web/{version}/{name}", _static_file)
    r.add_get("/static/web/{name}", _static_file)


def _page_handler(name: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        pid = request.match_info["production"]
        if not ID_RE.match(pid):
            return error_response(404, "no such production")
        pages = request.app[PAGES_KEY]
        hls = (vendor_url(request.app) if VENDOR_ASSETS in request.app
               else "/static/vendor/hls.min.js")
        base = hls_base(request, pages) if name == "scene" else ""
        text = (pages.templates[name]
                .replace("{{static}}", f"/static/web/{pages.static.version}")
                .replace("{{hls}}", html.escape(hls))
                .replace("{{hls_base}}", html.escape(base))
                .replace("{{production}}", html.escape(pid)))
        headers = PAGE_HEADERS
        if base:  # the stream comes from another origin: let the page fetch and play it
            csp = (PAGE_HEADERS["Content-Security-Policy"]
                   .replace("media-src 'self'", f"media-src 'self' {base}")
                   .replace("connect-src 'self'", f"connect-src 'self' {base}"))
            headers = {**PAGE_HEADERS, "Content-Security-Policy": csp}
        return web.Response(text=text, content_type="text/html", charset="utf-8",
                            headers=headers)

    handler.__name__ = f"{name}_page"
    return handler


def hls_base(request: web.Request, pages: Pages) -> str:
    """Origin scene pages load /hls/ from: `hls_public_url`, else the HLS edge's port on the
    host the viewer used, else "" (this page's own origin)."""
    if pages.hls_public_url:
        return pages.hls_public_url
    if pages.hls_port:
        host = request.url.host or "localhost"
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        return f"{request.scheme}://{host}:{pages.hls_port}"
    return ""


async def _static_file(request: web.Request) -> web.Response:
    static = request.app[PAGES_KEY].static
    name = request.match_info["name"]
    data = static.files.get(name)
    if data is None:
        return error_response(404, f"no static file {name!r}")
    current = request.match_info.get("version") == static.version
    ctype = _CONTENT_TYPES[Path(name).suffix]
    etag = f'"{static.version}"'
    headers = {"Cache-Control": CACHE_IMMUTABLE if current else CACHE_REVALIDATE,
               "ETag": etag, "X-Content-Type-Options": "nosniff"}
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers=headers)
    return web.Response(body=data, content_type=ctype,
                        charset="utf-8" if ctype.startswith("text/") else None, headers=headers)
