"""WHIP ingest load: N concurrent 720p30 publishers into one production.

    .venv/bin/python -m benchmarks.bench_whip_ingest [--counts 1,2,4,6] [--window 20]

The server runs as its own process (`scenecloud serve`); each publisher is a child process
replaying a pre-encoded 720p30 H.264 High + Opus clip through FFmpeg's whip muxer (no
re-encoding, so the cores go to the server). For each N it measures over a window: server CPU
(per input), video frames decoded vs. the 30 fps the publishers send, frames dropped, server RSS.
Side by side in the same run, the bare cost of decoding the same clip with PyAV (what decoding
alone costs) gives a ratio that is stable on a noisy machine.
Writes benchmarks/results/whip_ingest.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import fractions
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import av
import numpy as np

from benchmarks.common import http, proc_cpu, proc_rss_mb, server_process, stop_all

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "benchmarks" / ".cache"
RESULTS = ROOT / "benchmarks" / "results"
W, H, FPS = 1280, 720, 30


def make_clip(path: Path, seconds: int = 10) -> Path:
    """A 720p30 clip with motion and detail (moving bars + noise), H.264 High ~2.5 Mbit/s."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.mkv")
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 255, (H * 2, W * 2), np.uint8)
    with av.open(str(tmp), "w") as out:
        vs = out.add_stream("libx264", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = W, H, "yuv420p"
        vs.bit_rate = 2_500_000
        vs.options = {"preset": "veryfast", "bf": "0", "g": str(2 * FPS), "profile": "high"}
        as_ = out.add_stream("libopus", rate=48000, layout="stereo")
        xs = np.arange(W)
        apts = 0
        for n in range(seconds * FPS):
            y = ((xs[None, :] + n * 6) % 256).astype(np.uint8).repeat(H, 0)
            y[H // 3: 2 * H // 3] = noise[n % H: n % H + H // 3, (n * 3) % W:(n * 3) % W + W]
            uv = np.full((H // 2, W), 128, np.uint8)
            uv[:, (n * 4) % W:(n * 4) % W + 64] = 60
            f = av.VideoFrame.from_ndarray(np.concatenate([y, uv]), format="yuv420p")
            f.pts, f.time_base = n, fractions.Fraction(1, FPS)
            for p in vs.encode(f):
                out.mux(p)
            while apts < (n + 1) * 48000 // FPS:
                t = (np.arange(960) + apts) / 48000
                tone = (0.1 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
                a = av.AudioFrame.from_ndarray(np.repeat(tone, 2).reshape(1, -1), format="s16",
                                               layout="stereo")
                a.sample_rate, a.pts, a.time_base = 48000, apts, fractions.Fraction(1, 48000)
                apts += 960
                for p in as_.encode(a):
                    out.mux(p)
        for s in (vs, as_):
            for p in s.encode():
                out.mux(p)
    tmp.rename(path)
    return path


def bare_decode_cpu(clip: Path) -> float:
    """CPU seconds per second of video to decode the clip's video with PyAV (defaults)."""
    t0 = time.process_time()
    n = 0
    with av.open(str(clip)) as c:
        for _ in c.decode(video=0):
            n += 1
    return (time.process_time() - t0) / (n / FPS)


def sources(base: str, pid: str, token: str) -> dict[str, dict[str, Any]]:
    return {s["id"]: s for s in http("GET", f"{base}/api/productions/{pid}", token)["sources"]}


def run_count(base: str, admin: str, server_pid: int, clip: Path, n: int,
              window: float) -> dict[str, Any]:
    pid = f"bench{n}-{secrets.token_hex(2)}"
    prod = http("POST", f"{base}/api/productions", admin, {"id": pid, "title": "bench"})
    d = prod["director_token"]
    pubs = [subprocess.Popen(
        [sys.executable, "-m", "benchmarks.whip_replay", str(clip),
         f"{base}/whip/{pid}/cam{i}", "--token", prod["publish_token"],
         "--seconds", str(window + 40)], cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for i in range(n)]
    try:
        deadline = time.monotonic() + 30
        while n:
            srcs = sources(base, pid, d)
            if len(srcs) == n and all(s["frames_received"] > FPS for s in srcs.values()):
                break
            if time.monotonic() > deadline:
                errs = [p.stderr.read().decode()[-500:] for p in pubs if p.poll() is not None]
                raise RuntimeError(f"{n} publishers did not go live: {srcs} {errs}")
            time.sleep(0.2)
        time.sleep(2)  # settle
        before = sources(base, pid, d)
        cpu0, t0 = proc_cpu(server_pid), time.monotonic()
        rss = []
        while time.monotonic() - t0 < window:
            time.sleep(1)
            rss.append(proc_rss_mb(server_pid))
        cpu1, t1 = proc_cpu(server_pid), time.monotonic()
        after = sources(base, pid, d)
        span = t1 - t0
        per = []
        for sid, s in after.items():
            got = s["frames_received"] - before[sid]["frames_received"]
            dropped = s["frames_dropped"] - before[sid]["frames_dropped"]
            per.append({"source": sid, "fps": round(got / span, 2),
                        "received_pct": round(100 * got / (FPS * span), 2),
                        "dropped": dropped,
                        "dropped_pct": round(100 * dropped / max(1, got + dropped), 3),
                        "state": s["state"], "bitrate_kbps": s["bitrate_kbps"]})
        cpu = (cpu1 - cpu0) / span
        return {"publishers": n, "window_s": round(span, 1),
                "server_cpu_cores": round(cpu, 3),
                "rss_mb_start": round(rss[0], 1), "rss_mb_end": round(rss[-1], 1),
                "min_received_pct": min((p["received_pct"] for p in per), default=None),
                "max_dropped_pct": max((p["dropped_pct"] for p in per), default=None),
                "sources": per}
    finally:
        stop_all(pubs)
        http("DELETE", f"{base}/api/productions/{pid}", admin)


def main() -> int:
    ap = argparse.ArgumentParser()
    # 0 = the production alone (switcher + LL-HLS output of a black program): the baseline
    # that per-input CPU is measured against
    ap.add_argument("--counts", default="0,1,2,4,6")
    ap.add_argument("--window", type=float, default=20)
    a = ap.parse_args()
    clip = make_clip(CACHE / "720p30_high.mkv")
    decode_ref = [bare_decode_cpu(clip) for _ in range(3)]
    admin = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory() as data, server_process(
            data, admin, env={"SCENECLOUD_INGEST_ICE_HOST_ADDRESSES": "127.0.0.1"}) as (base,
                                                                                      spid):
        runs = [run_count(base, admin, spid, clip, int(n), a.window)
                for n in a.counts.split(",")]
    ref = sorted(decode_ref)[1]
    result = {
        "benchmark": "whip_ingest", "machine": f"{os.cpu_count()} cores",
        "clip": "1280x720 30 fps H.264 High ~2.5 Mbit/s + Opus, looped",
        "bare_decode_cpu_per_stream": {"median": round(ref, 4),
                                       "runs": [round(x, 4) for x in decode_ref]},
        "runs": runs,
    }
    base = next((r["server_cpu_cores"] for r in runs if r["publishers"] == 0), 0.0)
    for r in runs:
        n = r["publishers"]
        r["cpu_per_input_cores"] = round((r["server_cpu_cores"] - base) / n, 3) if n else None
        r["cpu_per_input_vs_bare_decode"] = round(r["cpu_per_input_cores"] / ref, 2) if n \
            else None
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "whip_ingest.json").write_text(json.dumps(result, indent=2))
    print(f"bare PyAV decode of the clip: {ref:.3f} cores per stream "
          f"(runs {', '.join(f'{x:.3f}' for x in decode_ref)})")
    print("| publishers | server CPU (cores) | CPU/input above baseline | ×bare decode "
          "| min received % | max dropped % | RSS MB start→end |")
    print("|---|---|---|---|---|---|---|")

    def fmt(v: float | None, spec: str) -> str:
        return "–" if v is None else format(v, spec)

    for r in runs:
        print(f"| {r['publishers']} | {r['server_cpu_cores']:.2f} | "
              f"{fmt(r['cpu_per_input_cores'], '.3f')} | "
              f"{fmt(r['cpu_per_input_vs_bare_decode'], '.2f')} | "
              f"{fmt(r['min_received_pct'], '.1f')} | {fmt(r['max_dropped_pct'], '.2f')} | "
              f"{r['rss_mb_start']:.0f}→{r['rss_mb_end']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
