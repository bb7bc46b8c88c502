"""WHIP reconnect churn: server memory per publisher reconnect, against one long session.

    .venv/bin/python -m benchmarks.bench_whip_churn [--reconnects 30] [--seconds 5] [--quick]
        [--revs REV,...] [--variants default,arena2,jemalloc] [--no-control]

The server runs as its own process (`scenecloud serve`, one production with the source on
program, LL-HLS output running). A publisher (FFmpeg's whip muxer replaying a pre-encoded 720p30
H.264 High + Opus clip, `benchmarks.whip_replay`, a child process) connects, sends media for
`--seconds`, closes (the muxer sends the WHIP DELETE), and the next one connects under the same
source name: N times. After each cycle, once the server has no WHIP session left and a short
settle, it samples the server's RSS, anonymous memory, thread count and the number of glibc
malloc heaps (64 MiB-aligned anonymous mappings: one per non-main arena heap).

Side by side in the same run, a control on a fresh server process: one publisher session for the
same total time, sampled at the same cadence, no reconnects. Slope = least-squares MB per cycle
over the second half of the samples (after warm-up). Each variant runs the pair on its own
server process with its environment (e.g. `MALLOC_ARENA_MAX`); `--revs` runs older commits of
the project first (their files from `git archive`, on PYTHONPATH) for a before/after.
Writes benchmarks/results/whip_churn.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import secrets
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.bench_whip_ingest import CACHE, make_clip
from benchmarks.common import ROOT, http, proc_cpu, proc_rss_mb, server_process, stop_all

RESULTS = ROOT / "benchmarks" / "results"
HEAP = 64 << 20  # glibc HEAP_MAX_SIZE on 64-bit: each non-main arena heap is aligned to it

# name -> extra environment of the server process
VARIANTS: dict[str, dict[str, str]] = {
    "default": {},
    "arena2": {"MALLOC_ARENA_MAX": "2"},
}
JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
if Path(JEMALLOC).exists():
    VARIANTS["jemalloc"] = {"LD_PRELOAD": JEMALLOC}


def export_rev(rev: str, into: Path) -> str:
    """The project's files at git revision `rev`, unpacked into `into` (for PYTHONPATH)."""
    into.mkdir(parents=True)
    tar = subprocess.run(["git", "archive", "--format=tar", rev], cwd=ROOT, check=True,
                         capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as t:
        t.extractall(into, filter="data")
    return str(into)


def mem_figures(pid: int) -> dict[str, float]:
    """RSS, anonymous RSS, threads and malloc heaps of a process."""
    out: dict[str, float] = {"rss_mb": round(proc_rss_mb(pid), 1)}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Anonymous:"):
            out["anon_mb"] = round(int(line.split()[1]) / 1024, 1)
    out["threads"] = len(os.listdir(f"/proc/{pid}/task"))
    heaps = 0
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        parts = line.split()
        if len(parts) == 5 and parts[1].startswith("rw"):  # anonymous (no path)
            start = int(parts[0].split("-")[0], 16)
            heaps += start % HEAP == 0
    out["malloc_heaps"] = heaps
    return out


def slope(ys: list[float]) -> float | None:
    """Least-squares slope per sample over the second half (warm-up excluded)."""
    ys = ys[len(ys) // 2:]
    n = len(ys)
    if n < 2:
        return None
    xm, ym = (n - 1) / 2, sum(ys) / n
    return sum((x - xm) * (y - ym) for x, y in enumerate(ys)) / sum(
        (x - xm) ** 2 for x in range(n))


def whip_sessions(base: str) -> int:
    with urllib.request.urlopen(f"{base}/healthz", timeout=5) as r:
        return int(json.loads(r.read()).get("whip_sessions", 0))


def wait_sessions(base: str, n: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while whip_sessions(base) != n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"server did not reach {n} WHIP sessions")
        time.sleep(0.1)


def publisher(clip: Path, base: str, token: str, seconds: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "benchmarks.whip_replay", str(clip), f"{base}/whip/churn/cam",
         "--token", token, "--seconds", str(seconds)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def setup(base: str, admin: str) -> tuple[str, str]:
    prod = http("POST", f"{base}/api/productions", admin, {"id": "churn"})
    return prod["director_token"], prod["publish_token"]


def put_on_program(base: str, director: str) -> None:
    deadline = time.monotonic() + 20
    while True:
        srcs = http("GET", f"{base}/api/productions/churn", director)["sources"]
        if any(s["id"] == "cam" and s["frames_received"] > 0 for s in srcs):
            break
        if time.monotonic() > deadline:
            raise RuntimeError("publisher did not go live")
        time.sleep(0.1)
    http("POST", f"{base}/api/productions/churn/switcher", director,
         {"op": "program", "source": "cam"})


def frames_of_cam(base: str, director: str) -> int:
    srcs = http("GET", f"{base}/api/productions/churn", director)["sources"]
    return next((s["frames_received"] for s in srcs if s["id"] == "cam"), 0)


@contextlib.contextmanager
def churn_server(env: dict[str, str]) -> Iterator[tuple[str, int, str, str, dict[str, Any]]]:
    """A fresh server with the churn production: (base URL, pid, director token, publish
    token, memory figures at the start)."""
    admin = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory() as tmp, server_process(
            Path(tmp) / "data", admin,
            env={"SCENECLOUD_INGEST_ICE_HOST_ADDRESSES": "127.0.0.1", **env}) as (base, spid):
        d, p = setup(base, admin)
        yield base, spid, d, p, mem_figures(spid)


def run_churn(clip: Path, env: dict[str, str], reconnects: int, seconds: float,
              settle: float) -> dict[str, Any]:
    with churn_server(env) as (base, spid, d, p, start):
        cycles: list[dict[str, Any]] = []
        t0, cpu0 = time.monotonic(), proc_cpu(spid)
        for i in range(reconnects):
            pub = publisher(clip, base, p, seconds)
            try:
                if i == 0:
                    put_on_program(base, d)
                rc = pub.wait(seconds + 60)
            finally:
                stop_all([pub])
            if rc != 0:
                err = pub.stderr.read().decode(errors="replace") if pub.stderr else ""
                raise RuntimeError(f"publisher exited {rc}: {err[-500:]}")
            wait_sessions(base, 0)
            frames = frames_of_cam(base, d)
            time.sleep(settle)
            cycles.append({"cycle": i + 1, "t_s": round(time.monotonic() - t0, 1),
                           "frames": frames, **mem_figures(spid)})
            print(json.dumps(cycles[-1]), flush=True)
        span = time.monotonic() - t0
        cpu = (proc_cpu(spid) - cpu0) / span
        period = span / max(1, reconnects)
    return {"start": start, "cycles": cycles, "cycle_period_s": round(period, 2),
            "server_cpu_cores": round(cpu, 3),
            "slope_mb_per_cycle": _round(slope([c["rss_mb"] for c in cycles])),
            "anon_slope_mb_per_cycle": _round(slope([c["anon_mb"] for c in cycles])),
            "threads_first_last": [cycles[0]["threads"], cycles[-1]["threads"]],
            "malloc_heaps_first_last": [cycles[0]["malloc_heaps"], cycles[-1]["malloc_heaps"]]}


def run_control(clip: Path, env: dict[str, str], samples: int, period: float) -> dict[str, Any]:
    with churn_server(env) as (base, spid, d, p, start):
        pub = publisher(clip, base, p, samples * period + 60)
        cycles: list[dict[str, Any]] = []
        try:
            put_on_program(base, d)
            t0, cpu0 = time.monotonic(), proc_cpu(spid)
            for i in range(samples):
                time.sleep(max(0.0, t0 + (i + 1) * period - time.monotonic()))
                if pub.poll() is not None:
                    raise RuntimeError("control publisher ended early")
                cycles.append({"cycle": i + 1, "t_s": round(time.monotonic() - t0, 1),
                               "frames": frames_of_cam(base, d), **mem_figures(spid)})
                print(json.dumps(cycles[-1]), flush=True)
            sessions = whip_sessions(base)
            cpu = (proc_cpu(spid) - cpu0) / (time.monotonic() - t0)
        finally:
            stop_all([pub])
    return {"start": start, "cycles": cycles, "one_session": sessions == 1,
            "server_cpu_cores": round(cpu, 3),
            "slope_mb_per_cycle": _round(slope([c["rss_mb"] for c in cycles])),
            "anon_slope_mb_per_cycle": _round(slope([c["anon_mb"] for c in cycles])),
            "threads_first_last": [cycles[0]["threads"], cycles[-1]["threads"]],
            "malloc_heaps_first_last": [cycles[0]["malloc_heaps"], cycles[-1]["malloc_heaps"]]}


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reconnects", type=int, default=30)
    ap.add_argument("--seconds", type=float, default=5, help="media per session")
    ap.add_argument("--settle", type=float, default=1.0, help="wait before each sample")
    ap.add_argument("--variants", default="default",
                    help=f"comma-separated, of: {', '.join(VARIANTS)}")
    ap.add_argument("--revs", default="",
                    help="comma-separated git revisions to run first, each from `git archive` "
                         "of that revision on PYTHONPATH (e.g. the commit before a fix)")
    ap.add_argument("--no-control", action="store_true", help="skip the one-session control")
    ap.add_argument("--quick", action="store_true", help="8 reconnects of 3 s (smoke run)")
    a = ap.parse_args()
    if a.quick:
        a.reconnects, a.seconds = 8, 3
    names = [v for v in a.variants.split(",") if v]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown variant(s) {unknown}; have {list(VARIANTS)}")
    clip = make_clip(CACHE / "720p30_high.mkv")
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as trees:
        todo = [(f"rev {rev}", {"PYTHONPATH": export_rev(rev, Path(trees) / str(i))})
                for i, rev in enumerate(r for r in a.revs.split(",") if r)]
        todo += [(name, VARIANTS[name]) for name in names]
        for name, env in todo:
            print(f"== {name} {env}: {a.reconnects} reconnects x {a.seconds:g} s", flush=True)
            churn = run_churn(clip, env, a.reconnects, a.seconds, a.settle)
            control = None
            if not a.no_control:
                print(f"== {name}: control, one session, sampled every "
                      f"{churn['cycle_period_s']} s", flush=True)
                control = run_control(clip, env, a.reconnects, churn["cycle_period_s"])
            runs.append({"variant": name, "env": env, "churn": churn, "control": control})
    result = {"benchmark": "whip_churn", "machine": f"{os.cpu_count()} cores",
              "date": time.strftime("%Y-%m-%d"), "reconnects": a.reconnects,
              "seconds_per_session": a.seconds, "runs": runs}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "whip_churn.json").write_text(json.dumps(result, indent=2))
    print("| variant | run | RSS MB start → after cycle 1 → last | MB per cycle, 2nd half "
          "| MB per cycle, cycle 1 → last | threads first/last | malloc heaps first/last "
          "| server CPU (cores) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in runs:
        for kind in ("churn", "control"):
            x = r[kind]
            if x is None:
                continue
            c = x["cycles"]
            label = f"{a.reconnects} reconnects" if kind == "churn" else "one session"
            print(f"| {r['variant']} | {label} | {x['start']['rss_mb']:.0f} → "
                  f"{c[0]['rss_mb']:.0f} → {c[-1]['rss_mb']:.0f} | "
                  f"{x['slope_mb_per_cycle']:+.2f} | "
                  f"{(c[-1]['rss_mb'] - c[0]['rss_mb']) / max(1, len(c) - 1):+.2f} | "
                  f"{x['threads_first_last'][0]}/{x['threads_first_last'][1]} | "
                  f"{x['malloc_heaps_first_last'][0]}/{x['malloc_heaps_first_last'][1]} | "
                  f"{x['server_cpu_cores']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
