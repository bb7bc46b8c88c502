"""LL-HLS load: N concurrent clients doing blocking playlist reloads on one production.

    .venv/bin/python -m benchmarks.bench_hls_load [--clients 1000] [--seconds 30] [--procs 1]
        [--listener both|edge|main]
    .venv/bin/python -m benchmarks.bench_hls_load --clients 100 --seconds 10   # quick check

Three kinds of processes on this machine:
  * the server (``--serve``, spawned): one event loop (uvloop) with both HLS listeners over one
    real Packager (libx264 + AAC) fed synthetic program frames in real time from a thread —
    the main port's aiohttp routes and the HLS edge (`hls_packager/edge.py`, what
    ``server.hls_port`` runs); it logs the wall-clock time each part is published (the moment
    it exists). With ``--listener both`` (default) the same clients load the main port, then
    the edge, one after the other in the same run;
  * load generators (``--load``, spawned, ``--procs`` of them): each runs its share of the
    clients on one event loop. A client does what an LL-HLS player does at the live edge:
    ``GET index.m3u8?_HLS_msn=M&_HLS_part=N`` for the next part (blocking reload), then
    ``GET partM.N.m4s``, then follows the new EXT-X-PRELOAD-HINT. Clients use a lean HTTP/1.1
    keep-alive client on an asyncio Protocol (``--client raw``, default) so the load generator
    costs less CPU than the server it measures; ``--client aiohttp`` uses aiohttp's client;
  * this driver: measures the server's CPU from /proc/<pid>/stat, idle (encoding only) and
    under load, and joins the clients' receive times with the server's publish times.

Figure: part delivered latency = time the client has the part's last byte - time the part was
published (same machine, same clock), p50/p95/p99 over every part every client fetched in the
measurement window (after a ramp-up). Target p99 < 100 ms. Beside it, ``server_answered_ms``:
publication -> the server hands the part's response to the socket (what the rest of the
client-side figure is: the network stack and the load generator's own queueing). Writes
benchmarks/results/hls_load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the spawned server/load processes run this file directly

from benchmarks.common import free_port  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
FPS = 30
HINT_RE = re.compile(rb'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part(\d+)\.(\d+)\.m4s"')
CLK_TCK = os.sysconf("SC_CLK_TCK")


def raise_nofile() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def install_uvloop() -> str:
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


# --------------------------------------------------------------------------- server process


def serve(args: argparse.Namespace) -> None:
    from aiohttp import web

    from hls_packager.config import HlsConfig, RenditionConfig
    from hls_packager.edge import HlsEdge
    from hls_packager.segmenter import Part
    from hls_packager.server import HlsRegistry, register_hls_routes
    from hls_packager.testing import RealtimeFeeder

    raise_nofile()
    loop_kind = install_uvloop()
    if args.ladder == "small":
        ladder = (RenditionConfig("360p", 640, 360, 600_000, audio_bitrate=96_000),
                  RenditionConfig("180p", 320, 180, 250_000, audio_bitrate=64_000))
        size = (640, 360)
    else:
        ladder = HlsConfig().renditions
        size = (1280, 720)
    config = HlsConfig(renditions=ladder, preset=args.preset)

    async def main() -> dict[str, Any]:
        registry = HlsRegistry(None)
        app = web.Application()
        register_hls_routes(app, registry)
        packager = registry.create("load", FPS, config)
        packager.start()
        published: dict[str, float] = {}
        out = packager.outputs[args.rendition]
        orig = out.publish

        def publish(events: list, orig=orig) -> None:  # log when each part exists
            orig(events)
            for ev in events:
                if isinstance(ev, Part):
                    published[f"{ev.msn}.{ev.index}"] = ev.marks[-1]["published"]

        out.publish = publish  # type: ignore[method-assign]
        written: list[tuple[float, float]] = []  # (when, publish -> response written, s)
        delivered = out.delivered

        def on_delivered(part: Part, requested: float | None = None, orig=delivered) -> None:
            now = time.time()
            written.append((now, now - part.marks[-1].get("published", now)))
            orig(part, requested)

        out.delivered = on_delivered  # type: ignore[method-assign]
        feeder = RealtimeFeeder(packager.push, FPS, *size, cycle=FPS).start()
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", args.port, backlog=4096)
        await site.start()
        edge = HlsEdge(registry)
        await edge.start("127.0.0.1", args.edge_port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await loop.run_in_executor(None, Path(args.ready_file).write_text,
                                   json.dumps({"loop": loop_kind}))
        await stop.wait()
        stats = packager.stats()
        feeder.stop()
        await edge.close()
        await runner.cleanup()
        return {"published": published, "stats": stats, "written": written}

    if os.environ.get("HLS_LOAD_PROFILE"):  # cProfile the server's event loop thread
        import cProfile
        import pstats

        prof = cProfile.Profile()
        res = prof.runcall(asyncio.run, main())
        pstats.Stats(prof).sort_stats("tottime").dump_stats(os.environ["HLS_LOAD_PROFILE"])
    else:
        res = asyncio.run(main())
    Path(args.published_file).write_text(json.dumps(res))


# --------------------------------------------------------------------------- load process


class _ClientProtocol(asyncio.Protocol):
    """Parses HTTP/1.1 responses (Content-Length or chunked) as bytes arrive: no stream
    objects, no coroutine switch per read — the load generator must cost less than the
    server it measures."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionResetError("closed by server"))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.waiter is None or self.waiter.done():
            return
        done = self._parse()
        if done is not None:
            self.waiter.set_result(done)

    def _parse(self) -> tuple[int, bytes] | None:
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        lines = bytes(buf[:end]).split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length, chunked = 0, False
        for ln in lines[1:]:
            k, _, v = ln.partition(b":")
            k = k.strip().lower()
            if k == b"content-length":
                length = int(v)
            elif k == b"transfer-encoding" and b"chunked" in v.lower():
                chunked = True
        pos = end + 4
        if not chunked:
            if len(buf) < pos + length:
                return None
            body = bytes(buf[pos:pos + length])
            del buf[:pos + length]
            return status, body
        pieces = []
        while True:
            nl = buf.find(b"\r\n", pos)
            if nl < 0:
                return None
            size = int(bytes(buf[pos:nl]).split(b";")[0], 16)
            if len(buf) < nl + 2 + size + 2:
                return None
            pieces.append(bytes(buf[nl + 2:nl + 2 + size]))
            pos = nl + 2 + size + 2
            if size == 0:
                del buf[:pos]
                return status, b"".join(pieces)


class RawHttp:
    """Minimal HTTP/1.1 keep-alive GET on an asyncio Protocol (Content-Length or chunked)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.proto: _ClientProtocol | None = None

    async def get(self, path: str) -> tuple[int, bytes]:
        loop = asyncio.get_running_loop()
        if self.proto is None or self.proto.lost:
            _t, self.proto = await loop.create_connection(_ClientProtocol, self.host, self.port)
        proto = self.proto
        assert proto.transport is not None
        proto.waiter = loop.create_future()
        proto.transport.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode())
        early = proto._parse()  # a response already buffered (never, with one in flight)
        if early is not None:
            return early
        return await asyncio.wait_for(proto.waiter, 15)

    async def close(self) -> None:
        if self.proto is not None and self.proto.transport is not None:
            self.proto.transport.close()
        self.proto = None


class AiohttpHttp:
    def __init__(self, session: Any, base: str) -> None:
        self.session, self.base = session, base

    async def get(self, path: str) -> tuple[int, bytes]:
        async with self.session.get(self.base + path) as r:
            return r.status, await r.read()

    async def close(self) -> None:
        pass


def load(args: argparse.Namespace) -> None:
    raise_nofile()
    install_uvloop()

    async def main() -> dict[str, Any]:
        import aiohttp

        records: list[tuple[int, int, float, int]] = []  # msn, part, received, bytes
        errors: dict[str, int] = {}
        skipped = [0]
        requests = [0]
        t_end = time.time() + args.seconds
        base_path = f"/hls/load/{args.rendition}/"
        session = None
        if args.client == "aiohttp":
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, force_close=False),
                timeout=aiohttp.ClientTimeout(total=15))

        def err(kind: str) -> None:
            errors[kind] = errors.get(kind, 0) + 1

        async def client(i: int) -> None:
            http = (AiohttpHttp(session, f"http://127.0.0.1:{args.port}") if session
                    else RawHttp("127.0.0.1", args.port))
            await asyncio.sleep(args.ramp * i / max(1, args.n))  # ramp up
            hint = None
            while time.time() < t_end:
                try:
                    q = f"?_HLS_msn={hint[0]}&_HLS_part={hint[1]}" if hint else ""
                    status, body = await http.get(base_path + "index.m3u8" + q)
                    requests[0] += 1
                    if status != 200:
                        err(f"playlist {status}")
                        hint = None
                        await asyncio.sleep(0.1)
                        continue
                    new = [(int(a), int(b)) for a, b in HINT_RE.findall(body)]
                    if not new:
                        err("playlist without hint")
                        await asyncio.sleep(0.1)
                        continue
                    if hint is not None:
                        status, data = await http.get(f"{base_path}part{hint[0]}.{hint[1]}.m4s")
                        requests[0] += 1
                        now = time.time()
                        if status == 200:
                            records.append((hint[0], hint[1], now, len(data)))
                        else:
                            err(f"part {status}")
                        nh = new[-1]
                        # parts published meanwhile that this client did not fetch
                        if nh[0] == hint[0]:
                            skipped[0] += max(0, nh[1] - hint[1] - 1)
                        else:
                            skipped[0] += max(0, nh[1])
                    hint = new[-1]
                except (OSError, asyncio.IncompleteReadError, ValueError,
                        aiohttp.ClientError, TimeoutError) as e:
                    err(type(e).__name__)
                    await http.close()
                    hint = None
                    await asyncio.sleep(0.2)
            await http.close()

        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        w0 = time.monotonic()
        await asyncio.gather(*(client(i) for i in range(args.n)))
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        if session is not None:
            await session.close()
        cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        return {"records": records, "errors": errors, "skipped": skipped[0],
                "requests": requests[0],
                "cpu_percent": round(100 * cpu / (time.monotonic() - w0), 1)}

    res = asyncio.run(main())
    Path(args.out).write_text(json.dumps(res))


# --------------------------------------------------------------------------- driver


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))]


def wait_file(path: Path, timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.stat().st_size:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {path}")
        time.sleep(0.1)


def drive(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="hls-load-"))
    ports = {"main": free_port(), "edge": free_port()}
    me = [sys.executable, str(Path(__file__).resolve())]
    server = subprocess.Popen([*me, "--serve", "--port", str(ports["main"]),
                               "--edge-port", str(ports["edge"]), "--rendition", args.rendition,
                               "--ladder", args.ladder, "--preset", args.preset,
                               "--ready-file", str(tmp / "ready"),
                               "--published-file", str(tmp / "published.json")])
    listeners = ["main", "edge"] if args.listener == "both" else [args.listener]
    phases: list[dict[str, Any]] = []
    try:
        wait_file(tmp / "ready", 30, server)
        server_loop = json.loads((tmp / "ready").read_text())["loop"]
        time.sleep(args.warmup)  # encoders settle, a few segments of history
        c0, t0 = proc_cpu_s(server.pid), time.monotonic()
        time.sleep(args.idle)
        idle_cpu = 100 * (proc_cpu_s(server.pid) - c0) / (time.monotonic() - t0)
        for listener in listeners:
            phases.append(_phase(args, me, tmp, listener, ports[listener], server.pid))
            time.sleep(2.0)  # the previous clients' connections are gone
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    pub = json.loads((tmp / "published.json").read_text())
    results = {ph["listener"]: _figures(args, ph, pub["published"], pub["written"], idle_cpu)
               for ph in phases}
    out: dict[str, Any] = {
        "what": "LL-HLS part delivered latency: client has the part's last byte - part "
                "published (blocking playlist reload for the next part, then GET the part)",
        "clients": args.clients, "load_processes": args.procs, "client": args.client,
        "rendition": args.rendition, "ladder": args.ladder, "preset": args.preset,
        "target_p99_ms": 100,
        "listeners": results,
        "encoder_dropped": {n: r["dropped"] for n, r in pub["stats"]["renditions"].items()},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "server_loop": server_loop, "load_average": os.getloadavg()},
    }
    if "main" in results and "edge" in results:
        m, e = results["main"]["latency_ms"], results["edge"]["latency_ms"]
        if m["p99"] and e["p99"]:
            out["edge_vs_main_p99_ratio"] = round(e["p99"] / m["p99"], 3)
    return out


def _phase(args: argparse.Namespace, me: list[str], tmp: Path, listener: str,
           port: int, server_pid: int) -> dict[str, Any]:
    """One load run against one listener; the clients' files and the measurement window."""
    per = [args.clients // args.procs + (1 if i < args.clients % args.procs else 0)
           for i in range(args.procs)]
    files = [tmp / f"load-{listener}-{i}.json" for i in range(args.procs)]
    gens = [subprocess.Popen([*me, "--load", "--port", str(port), "--rendition", args.rendition,
                              "--n", str(n), "--client", args.client,
                              "--seconds", str(args.seconds), "--ramp", str(args.ramp),
                              "--out", str(f)])
            for n, f in zip(per, files, strict=True)]
    wall_start = time.time()
    time.sleep(args.ramp + args.settle)  # measurement window starts after the ramp-up
    m_start = time.time()
    c1, t1 = proc_cpu_s(server_pid), time.monotonic()
    gen_c1 = sum(proc_cpu_s(g.pid) for g in gens)
    time.sleep(max(1.0, wall_start + args.seconds - time.time() - 1.0))
    load_cpu = 100 * (proc_cpu_s(server_pid) - c1) / (time.monotonic() - t1)
    gen_cpu = 100 * (sum(proc_cpu_s(g.pid) for g in gens) - gen_c1) / (time.monotonic() - t1)
    m_end = time.time()
    for g in gens:
        g.wait(args.seconds + 60)
    return {"listener": listener, "files": [str(f) for f in files], "m_start": m_start,
            "m_end": m_end, "server_cpu": load_cpu, "gen_cpu": gen_cpu}


def _figures(args: argparse.Namespace, ph: dict[str, Any], published: dict[str, float],
             written: list[tuple[float, float]], idle_cpu: float) -> dict[str, Any]:
    m_start, m_end = ph["m_start"], ph["m_end"]
    # Server side: from a part's publication to the server handing a response with it to the
    # socket (the edge: after the write; aiohttp: when the response is built). The rest of the
    # client-side figure is the network stack and the load generator's own queueing.
    answered = [lag for t, lag in written if m_start <= t <= m_end]
    lat: list[float] = []
    errors: dict[str, int] = {}
    delivered = skipped = requests = 0
    nbytes = 0
    for f in ph["files"]:
        res = json.loads(Path(f).read_text())
        for k, v in res["errors"].items():
            errors[k] = errors.get(k, 0) + v
        skipped += res["skipped"]
        requests += res["requests"]
        for msn, part, recv, size in res["records"]:
            t_pub = published.get(f"{msn}.{part}")
            if not m_start <= recv <= m_end or t_pub is None:
                continue
            delivered += 1
            nbytes += size
            lat.append(recv - t_pub)
    window = m_end - m_start
    ms = lambda v: round(v * 1000, 1) if v is not None else None  # noqa: E731
    return {
        "window_s": round(window, 1),
        "parts_published_in_window": sum(1 for t in published.values()
                                         if m_start <= t <= m_end),
        "parts_delivered": delivered,
        "delivered_per_client_per_s": round(delivered / max(1, args.clients) / window, 2),
        "latency_ms": {"p50": ms(pct(lat, 0.5)), "p95": ms(pct(lat, 0.95)),
                       "p99": ms(pct(lat, 0.99)), "max": ms(max(lat) if lat else None)},
        "meets_target": bool(lat) and pct(lat, 0.99) < 0.1,
        "server_answered_ms": {"p50": ms(pct(answered, 0.5)), "p95": ms(pct(answered, 0.95)),
                               "p99": ms(pct(answered, 0.99))},
        "parts_skipped_by_clients": skipped,
        "requests_per_s": round(requests / args.seconds, 0),
        "delivered_mbit_per_s": round(nbytes * 8 / window / 1e6, 1),
        "errors": errors,
        "server_cpu_percent": {"idle_encoding_only": round(idle_cpu, 1),
                               "under_load": round(ph["server_cpu"], 1),
                               "serving_only": round(ph["server_cpu"] - idle_cpu, 1)},
        "load_generator_cpu_percent": round(ph["gen_cpu"], 1),
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=30.0, help="client run time")
    ap.add_argument("--procs", type=int, default=1, help="load generator processes")
    ap.add_argument("--client", choices=("raw", "aiohttp"), default="raw")
    ap.add_argument("--ramp", type=float, default=3.0, help="clients start over this many s")
    ap.add_argument("--settle", type=float, default=2.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--idle", type=float, default=4.0, help="server CPU without clients, s")
    ap.add_argument("--rendition", default="360p")
    ap.add_argument("--ladder", choices=("default", "small"), default="default",
                    help="default: 720p+360p (production ladder); small: 360p+180p")
    ap.add_argument("--preset", default="veryfast")
    ap.add_argument("--listener", choices=("both", "edge", "main"), default="both",
                    help="which HLS listener the clients load (both: main, then edge)")
    ap.add_argument("--out", default=str(RESULTS / "hls_load.json"))
    # internal: the spawned processes
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--load", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--edge-port", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--ready-file", help=argparse.SUPPRESS)
    ap.add_argument("--published-file", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args)
    elif args.load:
        load(args)
    else:
        result = drive(args)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
