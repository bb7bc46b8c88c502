"""`scenecloud` command line: serve, demo."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_log import AccessLogger

from latency_lab.probe import add_probe_parser, run_probe

from .app import ADMIN_TOKEN, create_app
from .config import Config, ConfigError, load_config

log = logging.getLogger("scenecloud")


M_MMAP_THRESHOLD = -3  # mallopt parameter (glibc malloc.h)
MMAP_THRESHOLD_BYTES = 128 * 1024


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """On glibc, keep malloc's mmap threshold fixed (at its initial 128 KiB).

    By default glibc raises the threshold to the size of the first large mmapped block that is
    freed (up to 32 MiB). Video frames and codec buffers (~1.4 MB at 720p) are then carved out
    of the per-thread malloc arenas instead of being mmapped; each new WHIP session's decoder
    and the encoder threads leave that memory fragmented in their arenas, and glibc keeps it:
    server RSS rose ~90 MB over the first few reconnects (`benchmarks/bench_whip_churn.py`).
    With a fixed threshold large blocks are mmapped and go back to the system when freed.
    An operator's own MALLOC_MMAP_THRESHOLD_ / GLIBC_TUNABLES setting is left alone.
    Returns True when the setting was applied."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "mmap_threshold" in os.environ.get(
            "GLIBC_TUNABLES", ""):
        return False
    try:
        libc = ctypes.CDLL(None)
        if not hasattr(libc, "gnu_get_libc_version"):
            return False  # not glibc (musl, macOS): nothing to tune
        return bool(libc.mallopt(M_MMAP_THRESHOLD, threshold))
    except (OSError, AttributeError):
        return False


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scenecloud", description="Scene Cloud live production")
    sub = p.add_subparsers(dest="cmd", required=True)
    for name, help_ in (("serve", "run the server"),
                        ("demo", "run the server with a production 'demo' fed by test sources")):
        sp = sub.add_parser(name, help=help_)
        sp.add_argument("--config", help="TOML config file (default: built-in defaults)")
        sp.add_argument("--host", help="listen address (default 127.0.0.1)")
        sp.add_argument("--port", type=int, help="listen port (default 8080)")
        sp.add_argument("--data-dir", help="where productions and recordings are kept")
    add_probe_parser(sub)
    return p


def build_config(args: argparse.Namespace) -> Config:
    cfg = load_config(args.config)
    changes = {k: v for k, v in (("host", args.host), ("port", args.port),
                                 ("data_dir", args.data_dir)) if v is not None}
    return cfg.replace("server", **changes) if changes else cfg


async def run_server(cfg: Config, *, demo: bool = False) -> None:
    app = create_app(cfg, file_roots=[str(Path.cwd())] if demo else None)
    runner = web.AppRunner(app, handle_signals=False, **access_log_options(cfg.server.access_log))
    await runner.setup()
    site = web.TCPSite(runner, cfg.server.host, cfg.server.port)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    base = f"http://{cfg.server.host}:{cfg.server.port}"
    data_dir = os.path.abspath(cfg.server.data_dir)  # noqa: ASYNC240 - once, at start
    log.info("listening on %s (data dir %s)", base, data_dir)
    try:
        if demo:
            await setup_demo(base, app[ADMIN_TOKEN], cfg)
        else:
            where = ("from the config / SCENECLOUD_ADMIN_TOKEN" if cfg.server.admin_token
                     else f"in {os.path.join(data_dir, 'admin_token')}")
            print(f"Scene Cloud listening on {base}\nAdmin token: {where}", flush=True)
        await stop.wait()
        log.info("shutting down: closing sessions")
    finally:
        await runner.cleanup()


class ApiAccessLogger(AbstractAccessLogger):
    """aiohttp's access log without the high-rate media requests (/hls/, /static/)."""

    SKIP = ("/hls/", "/static/")

    def __init__(self, logger: logging.Logger, log_format: str) -> None:
        super().__init__(logger, log_format)
        self._inner = AccessLogger(logger, log_format)

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if not request.path.startswith(self.SKIP):
            self._inner.log(request, response, time)

    @property
    def enabled(self) -> bool:
        return self._inner.enabled


def access_log_options(mode: str) -> dict[str, object]:
    if mode == "off":
        return {"access_log": None}
    if mode == "api":
        return {"access_log_class": ApiAccessLogger}
    return {}


async def setup_demo(base: str, admin: str, cfg: Config) -> None:
    hdr = {"Authorization": f"Bearer {admin}"}
    async with aiohttp.ClientSession(headers=hdr) as http:
        async with http.post(f"{base}/api/productions",
                             json={"id": "demo", "title": "Scene Cloud 演示 demo"}) as r:
            if r.status not in (201, 409):
                raise RuntimeError(f"cannot create demo production: {await r.text()}")
        async with http.get(f"{base}/api/productions") as r:
            prod = next(p for p in (await r.json())["productions"] if p["id"] == "demo")
        if prod["state"] == "ended":
            raise RuntimeError("production 'demo' was ended; use a fresh --data-dir")
        for body in ({"id": "bars", "kind": "test", "pattern": "bars"},
                     {"id": "solid", "kind": "test", "pattern": "solid", "color": "#b03020",
                      "tone_hz": 0}):
            async with http.post(f"{base}/api/productions/demo/sources", json=body) as r:
                if r.status not in (201, 409):
                    raise RuntimeError(f"cannot add demo source: {await r.text()}")
        # something on air from the start: bars on program, solid on preview
        for body in ({"op": "program", "source": "bars"}, {"op": "preview", "source": "solid"}):
            async with http.post(f"{base}/api/productions/demo/switcher", json=body) as r:
                if r.status != 200:
                    raise RuntimeError(f"cannot set up the demo switcher: {await r.text()}")
    d, p = prod["director_token"], prod["publish_token"]
    hls = base
    if cfg.server.hls_public_url or cfg.server.hls_port:
        hls = cfg.server.hls_public_url.rstrip("/") or (
            f"{base.rsplit(':', 1)[0]}:{cfg.server.hls_port}")
    print(f"""
Scene Cloud demo is running on {base}
  production:      demo  (sources: bars, solid — built-in test generators)
  director token:  {d}
  publish token:   {p}

  Director console:  {base}/console/demo      (sign in with the director token)
  Viewers' page:     {base}/scene/demo
  Phone publisher:   {base}/go/demo#token={p}
  LL-HLS:            {hls}/hls/demo/index.m3u8

  Production state:  curl -H 'Authorization: Bearer {d}' {base}/api/productions/demo
  Source snapshot:   curl -H 'Authorization: Bearer {d}' -o bars.jpg \\
                       {base}/api/productions/demo/sources/bars/snapshot.jpg
  Publish (WHIP):    {base}/whip/demo/<source-name>   (Bearer {p})
    e.g. (FFmpeg 8+) ffmpeg -re -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine \\
      -c:v libx264 -bf 0 -c:a libopus -f whip -authorization {p} {base}/whip/demo/cam1
Press Ctrl+C to stop.
""", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.cmd == "probe":
        return run_probe(args)
    fix_mmap_threshold()
    try:
        cfg = build_config(args)
    except ConfigError as exc:
        print(f"scenecloud: config error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=cfg.server.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiortc").setLevel(logging.WARNING)
    logging.getLogger("aioice").setLevel(logging.WARNING)
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop missing on this platform
        runner = asyncio.run
    try:
        runner(run_server(cfg, demo=args.cmd == "demo"))
    except OSError as exc:
        print(f"scenecloud: cannot listen on {cfg.server.host}:{cfg.server.port}: {exc}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
