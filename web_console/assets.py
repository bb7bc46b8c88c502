"""Front-end packages installed from npm (package.json at the repo root), served by us.

`scripts/setup.sh` (``make setup``) runs ``npm ci`` into ``./node_modules``; pages load
``/static/vendor/hls.min.js`` from our own server, never from a CDN. The files are read once
(on first request) and kept in memory; versioned by package-lock.json, so they are served with
a long ``Cache-Control`` (bump the query string, e.g. ``?v=<version>``, when it changes: see
`vendor_url`).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from media_server.errors import error_response

ROOT = Path(__file__).resolve().parent.parent
NODE_MODULES = ROOT / "node_modules"

# URL name -> (npm package, path inside the package)
VENDOR_FILES: dict[str, tuple[str, str]] = {
    "hls.min.js": ("hls.js", "dist/hls.min.js"),
    "hls.min.js.map": ("hls.js", "dist/hls.min.js.map"),
}
_CONTENT_TYPES = {".js": "text/javascript", ".map": "application/json"}
CACHE_VENDOR = "public, max-age=31536000, immutable"


@dataclass
class VendorAssets:
    """Reads vendor files from a node_modules directory (cached after the first read)."""

    node_modules: Path = NODE_MODULES
    _cache: dict[str, bytes] = field(default_factory=dict, repr=False)

    def path(self, name: str) -> Path | None:
        spec = VENDOR_FILES.get(name)
        return self.node_modules / spec[0] / spec[1] if spec else None

    def version(self, package: str) -> str | None:
        try:
            meta = json.loads((self.node_modules / package / "package.json").read_text())
        except (OSError, ValueError):
            return None
        return str(meta.get("version")) if meta.get("version") else None

    def read(self, name: str) -> bytes | None:
        if name not in self._cache:
            p = self.path(name)
            if p is None or not p.is_file():
                return None
            self._cache[name] = p.read_bytes()
        return self._cache[name]


VENDOR_ASSETS = web.AppKey("vendor_assets", VendorAssets)


def register_vendor_routes(app: web.Application, assets: VendorAssets | None = None) -> None:
    """GET /static/vendor/{name}: hls.min.js (+ its source map) from node_modules/hls.js/dist."""
    app[VENDOR_ASSETS] = assets or VendorAssets()
    app.router.add_get("/static/vendor/{name}", _vendor_file)


def vendor_url(app: web.Application, name: str = "hls.min.js") -> str:
    """URL of a vendor file with its package version as cache buster."""
    assets = app[VENDOR_ASSETS]
    package = VENDOR_FILES[name][0]
    version = assets.version(package)
    return f"/static/vendor/{name}" + (f"?v={version}" if version else "")


async def _vendor_file(request: web.Request) -> web.StreamResponse:
    assets = request.app[VENDOR_ASSETS]
    name = request.match_info["name"]
    if name not in VENDOR_FILES:
        return error_response(404, f"unknown vendor file {name!r}")
    data = assets._cache.get(name)
    if data is None:  # first request: read off the event loop
        data = await asyncio.get_running_loop().run_in_executor(None, assets.read, name)
    if data is None:
        if name.endswith(".map"):  # optional: only the script itself is required
            return error_response(404, f"{name} is not installed")
        package = VENDOR_FILES[name][0]
        return error_response(
            503,
            f"front-end package {package!r} is not installed in {assets.node_modules}; "
            "run `make setup` (it runs `npm ci`)",
            error="assets_missing",
            headers={"Retry-After": "60"},
        )
    ctype = _CONTENT_TYPES.get(Path(name).suffix, "application/octet-stream")
    return web.Response(body=data, content_type=ctype, charset="utf-8" if ctype.startswith(
        "text/") else None, headers={"Cache-Control": CACHE_VENDOR,
                                     "Access-Control-Allow-Origin": "*"})
