"""`scenecloud probe`: publish a stamped test picture over WHIP, watch the LL-HLS output like a
player, report glass-to-glass latency.

    scenecloud probe BASE_URL --production ID [--publish-token T] [--director-token D]
        [--source probe] [--seconds 20] [--size 1280x720] [--fps 30] [--rendition NAME]
        [--fetch hint|listed] [--region X0,Y0,X1,Y1] [--first-frame-timeout 10]
        [--json] [--plot FILE]

Tokens may come from SCENECLOUD_PUBLISH_TOKEN / SCENECLOUD_DIRECTOR_TOKEN instead (and are
never printed). With a director token the probe puts its source on program itself (and puts
back what was there afterwards); without one, put the source on program yourself.

Exit status: 0 measured; 1 nothing measured (no stamped frame came out in time, the publisher
failed mid-run); 2 bad input (bad arguments, server unreachable, token refused, unknown
production, no HLS output). Each failure is one line on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

PUBLISH_ENV = "SCENECLOUD_PUBLISH_TOKEN"
DIRECTOR_ENV = "SCENECLOUD_DIRECTOR_TOKEN"
PROG = "scenecloud probe"
ROOT = str(Path(__file__).resolve().parents[1])  # so the publisher child finds latency_lab


class ProbeError(Exception):
    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def _size(text: str) -> tuple[int, int]:
    from .publisher import parse_size

    return parse_size(text)


def _region(text: str) -> tuple[float, float, float, float]:
    try:
        x0, y0, x1, y1 = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("region is X0,Y0,X1,Y1 (fractions)") from None
    if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
        raise argparse.ArgumentTypeError("region: fractions with x0 < x1 and y0 < y1 in [0, 1]")
    return x0, y0, x1, y1


def configure_parser(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("base_url", metavar="BASE_URL", help="the server, e.g. http://127.0.0.1:8080")
    p.add_argument("--production", required=True, help="production id")
    p.add_argument("--publish-token", help=f"publish token (default: ${PUBLISH_ENV})")
    p.add_argument("--director-token",
                   help=f"director token (default: ${DIRECTOR_ENV}); with it the probe cuts "
                        "its source to program itself")
    p.add_argument("--source", default="probe", help="source name to publish as (probe)")
    p.add_argument("--seconds", type=float, default=20.0, help="how long to publish (20)")
    p.add_argument("--size", type=_size, default=(1280, 720), help="WIDTHxHEIGHT (1280x720)")
    p.add_argument("--fps", type=int, default=30, help="publisher frame rate (30)")
    p.add_argument("--rendition", help="rendition to watch (default: lowest bandwidth)")
    p.add_argument("--fetch", choices=("hint", "listed"), default="hint",
                   help="hint: stream the preload-hinted part as it is produced (default); "
                        "listed: fetch each part once the playlist lists it")
    p.add_argument("--region", type=_region,
                   help="where the probe's picture is in the program, X0,Y0,X1,Y1 as fractions "
                        "(e.g. 0.5,0,1,0.5 for the top-right tile of a 2x2 layout)")
    p.add_argument("--first-frame-timeout", type=float, default=10.0,
                   help="give up when no stamped frame is decoded this long after the WHIP "
                        "session is up (10 s)")
    p.add_argument("--browser", action="store_true",
                   help="also watch with a real player: hls.js (low-latency) in headless "
                        "Chromium (/usr/bin/chromium + the playwright package)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--plot", metavar="FILE", help="write a PNG plot of latency over time")
    return p


def add_probe_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `probe` to a `scenecloud` argparse subparsers object."""
    p = subparsers.add_parser("probe", help="measure glass-to-glass latency of a production",
                              description=__doc__.split("\n\n")[0])
    return configure_parser(p)


def run_probe(args: argparse.Namespace) -> int:
    """Run a probe from parsed arguments; returns the exit status."""
    publish = args.publish_token or os.environ.get(PUBLISH_ENV, "")
    director = args.director_token or os.environ.get(DIRECTOR_ENV, "") or None
    if not publish:
        print(f"{PROG}: error: no publish token: give --publish-token or set {PUBLISH_ENV}",
              file=sys.stderr)
        return 2
    if args.seconds <= 0 or not 1 <= args.fps <= 120 or args.first_frame_timeout <= 0:
        print(f"{PROG}: error: --seconds and --first-frame-timeout must be > 0, --fps 1..120",
              file=sys.stderr)
        return 2
    try:
        summary = asyncio.run(Probe(args, publish, director).run())
    except ProbeError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:  # pragma: no cover - second Ctrl+C
        return 130
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        from .report import render_table

        print(render_table(summary))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = configure_parser(argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0]))
    return run_probe(p.parse_args(argv))


def _say(msg: str) -> None:
    print(f"{PROG}: {msg}", file=sys.stderr, flush=True)


class Probe:
    def __init__(self, args: argparse.Namespace, publish: str, director: str | None) -> None:
        self.args = args
        self.base = args.base_url.rstrip("/")
        self.publish = publish
        self.director = director
        self.proc: asyncio.subprocess.Process | None = None
        self.events: dict[str, dict[str, Any]] = {}
        self.event_seen = asyncio.Event()
        self.stderr_lines: list[str] = []
        self.previous_program: dict[str, Any] | None = None

    # ------------------------------------------------------------------ checks
    def _auth(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    async def preflight(self, http: Any) -> None:
        import aiohttp

        pid = self.args.production
        try:
            async with http.get(f"{self.base}/healthz") as r:
                body = await r.read()
                status = r.status
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            reason = str(exc) or type(exc).__name__
            raise ProbeError(f"cannot reach {self.base}: {reason}") from None
        try:
            healthy = status == 200 and json.loads(body).get("status") == "ok"
        except (ValueError, AttributeError):
            healthy = False
        if not healthy:
            raise ProbeError(f"{self.base} does not answer like a Scene Cloud server "
                             f"(GET /healthz: HTTP {status})")
        if self.director:
            async with http.get(f"{self.base}/api/productions/{pid}",
                                headers=self._auth(self.director)) as r:
                if r.status in (401, 403):
                    raise ProbeError(f"director token refused for production {pid!r} "
                                     f"(HTTP {r.status})")
                if r.status == 404:
                    raise ProbeError(f"unknown production {pid!r} (HTTP 404)")
                if r.status != 200:
                    raise ProbeError(f"GET production {pid!r}: HTTP {r.status}")
                body = await r.json()
                if body.get("state") == "ended":
                    raise ProbeError(f"production {pid!r} has ended")
                program = body.get("program")
                if program and program != {"source": self.args.source}:
                    self.previous_program = program
        async with http.get(f"{self.base}/hls/{pid}/index.m3u8") as r:
            if r.status != 200:
                raise ProbeError(f"production {pid!r} has no HLS output "
                                 f"(GET /hls/{pid}/index.m3u8: HTTP {r.status})")
            await r.read()

    # ------------------------------------------------------------------ publisher
    async def start_publisher(self) -> None:
        w, h = self.args.size
        url = f"{self.base}/whip/{self.args.production}/{self.args.source}"
        env = {**os.environ, "SCENECLOUD_PUBLISH_TOKEN": self.publish}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "latency_lab.publisher", url, "--size", f"{w}x{h}",
            "--fps", str(self.args.fps), "--seconds", str(self.args.seconds),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=env, start_new_session=True)
        self._readers = [asyncio.ensure_future(self._read_stdout()),
                         asyncio.ensure_future(self._read_stderr())]

    async def _read_stdout(self) -> None:
        assert self.proc and self.proc.stdout
        async for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                msg = json.loads(line)
                self.events[msg.get("event", "?")] = msg
                self.event_seen.set()

    async def _read_stderr(self) -> None:
        assert self.proc and self.proc.stderr
        async for line in self.proc.stderr:
            text = line.decode(errors="replace").strip()
            if text:
                self.stderr_lines.append(text)

    def _publisher_failure(self) -> str:
        for line in reversed(self.stderr_lines):
            if line.startswith("latency_lab.publisher: "):
                return line.removeprefix("latency_lab.publisher: ")
        tail = self.stderr_lines[-1] if self.stderr_lines else "no message"
        return f"publisher exited with status {self.proc.returncode if self.proc else '?'}: " \
               f"{tail}"

    async def wait_connected(self, timeout: float) -> None:
        assert self.proc is not None
        exited = asyncio.ensure_future(self.proc.wait())
        deadline = time.monotonic() + timeout
        try:
            while "connected" not in self.events:
                if exited.done():
                    await asyncio.gather(*self._readers)
                    raise ProbeError(self._publisher_failure())
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ProbeError(f"WHIP session to {self.base} not up after {timeout:.0f} s "
                                     "(ICE/DTLS blocked?)")
                self.event_seen.clear()
                waiter = asyncio.ensure_future(self.event_seen.wait())
                await asyncio.wait({waiter, exited}, timeout=left,
                                   return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
        finally:
            if not exited.done():
                exited.cancel()

    async def stop_publisher(self) -> None:
        if self.proc is None:
            return
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*self._readers), 2)

    # ------------------------------------------------------------------ switcher
    async def cut(self, http: Any, body: dict[str, Any], timeout: float = 10.0) -> None:
        """Put `body` on program, retrying while the new WHIP source is not known yet."""
        url = f"{self.base}/api/productions/{self.args.production}/switcher"
        deadline = time.monotonic() + timeout
        while True:
            async with http.post(url, json={"op": "program", **body},
                                 headers=self._auth(self.director)) as r:
                if r.status == 200:
                    return
                detail = (await r.text())[:200]
                if r.status in (401, 403):
                    raise ProbeError(f"director token refused by the switcher (HTTP {r.status})")
            if time.monotonic() > deadline:
                raise ProbeError(f"cannot put {body} on program: HTTP {r.status} {detail}", 1)
            await asyncio.sleep(0.1)

    async def server_latency(self, http: Any) -> Any:
        if not self.director:
            return None
        url = f"{self.base}/api/productions/{self.args.production}/latency"
        try:
            async with http.get(url, headers=self._auth(self.director)) as r:
                if r.status != 200:
                    return None
                return await r.json(content_type=None)
        except Exception:  # optional figures: never fail the run because of them
            return None

    # ------------------------------------------------------------------ run
    async def run(self) -> dict[str, Any]:
        import aiohttp

        from .report import Run, plot_png, summarize
        from .watcher import Watcher, WatchError

        a = self.args
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        timeout = aiohttp.ClientTimeout(total=None, connect=3, sock_read=10)
        watcher = Watcher(self.base, a.production, a.rendition, a.region, a.fetch)
        player = None
        async with aiohttp.ClientSession(timeout=timeout) as http:
            await self.preflight(http)
            if a.browser:
                from .browser import BrowserUnavailable, BrowserWatcher

                player = BrowserWatcher(self.base, a.production, a.region)
                try:
                    await player.start()
                except BrowserUnavailable as exc:
                    await player.stop()
                    raise ProbeError(str(exc)) from None
            watch = asyncio.ensure_future(watcher.run(http))
            try:
                await self.start_publisher()
                _say(f"publishing {a.size[0]}x{a.size[1]}@{a.fps} for {a.seconds:g} s as "
                     f"source {a.source!r} to {self.base}/whip/{a.production}/{a.source}")
                await self.wait_connected(timeout=20.0)
                if watch.done():
                    await watch  # raises its WatchError
                if self.director:
                    await self.cut(http, {"source": a.source})
                    _say(f"source {a.source!r} is on program")
                else:
                    _say(f"no director token: put source {a.source!r} on program now")
                await self._measure(watch, watcher, stop)
                # now, while the program still shows our last frames: once the publisher is
                # gone the switcher repeats its last frame (with that frame's old marks) and
                # the server would count each repeat as a longer and longer switcher wait
                server = await self.server_latency(http)
            except WatchError as exc:
                raise ProbeError(str(exc)) from None
            finally:
                watch.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await watch
                await self.stop_publisher()
                if player is not None:
                    await player.stop()
                if self.director and self.previous_program:
                    with contextlib.suppress(ProbeError, aiohttp.ClientError):
                        await self.cut(http, self.previous_program, timeout=2.0)
        posting, connected = self.events.get("posting", {}), self.events.get("connected", {})
        run = Run(watcher.samples, watcher.onsets, a.fps, posting.get("wall"),
                  connected.get("wall"), self.events.get("done", {}),
                  meta={"url": self.base, "production": a.production, "source": a.source,
                        "rendition": watcher.variant.name if watcher.variant else None,
                        "fetch": a.fetch,
                        "size": f"{a.size[0]}x{a.size[1]}", "fps": a.fps,
                        "seconds": a.seconds, "parts_fetched": watcher.parts_fetched,
                        "parts_streamed": watcher.hint_streams,
                        "http_errors": watcher.http_errors,
                        "decoder_errors": watcher.decoder_errors},
                  server_latency=server)
        summary = summarize(run)
        if player is not None:
            posted = posting.get("wall")
            summary["browser"] = player.summary(since_ms=posted * 1000 if posted else None)
        if a.plot:
            plot_png(run, summary, a.plot)
        return summary

    async def _measure(self, watch: asyncio.Future, watcher: Any, stop: asyncio.Event) -> None:
        a = self.args
        assert self.proc is not None
        exited = asyncio.ensure_future(self.proc.wait())
        stopped = asyncio.ensure_future(stop.wait())
        first = asyncio.ensure_future(watcher.first_stamp.wait())
        try:
            done, _ = await asyncio.wait({first, watch, exited, stopped},
                                         timeout=a.first_frame_timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
            if watch in done:
                await watch
                raise ProbeError("the HLS output ended before a stamped frame came", 1)
            if exited in done and not first.done():
                await asyncio.gather(*self._readers)
                raise ProbeError(self._publisher_failure(), 1)
            if stopped in done:
                return
            if not first.done():
                hint = "" if self.director else f" — is source {a.source!r} on program?"
                raise ProbeError(f"no stamped frame in the HLS output of production "
                                 f"{a.production!r} within {a.first_frame_timeout:g} s of "
                                 f"publishing{hint}", 1)
            _say(f"first stamped frame decoded; measuring (rendition "
                 f"{watcher.variant.name if watcher.variant else '?'})")
            await asyncio.wait({exited, watch, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if watch.done():
                await watch
            # the last frames are still on their way: drain until the last stamp shows up
            last = self.events.get("done", {})
            end_ms = (self.events.get("connected", {}).get("wall", 0) * 1000
                      + (last.get("frames", 0) + last.get("skipped", 0) - 1) * 1000 / a.fps)
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline and not stop.is_set() and not watch.done():
                seen = [s.capture_ms for s in watcher.samples[-5:] if s.capture_ms]
                if seen and max(seen) >= end_ms - 2 * 1000 / a.fps:
                    break
                await asyncio.sleep(0.05)
        finally:
            for f in (exited, stopped, first):
                f.cancel()


if __name__ == "__main__":
    sys.exit(main())
