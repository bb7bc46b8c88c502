"""Sustained load: 4 live sources + 2x2 grid + overlays on the real clock thread.

Four generator threads push 1280x720 yuv420p frames (pre-made, cycling) and 48 kHz audio at
30 fps each; the switcher runs the grid with a lower third, a clock and a ticker shown, at
720p30, with one output queue drained by a consumer thread. Reports late ticks, skipped
frames, tick/composite percentiles, output drops and RSS at start and end (memory flat?).

    .venv/bin/python benchmarks/bench_switcher_sustain.py [--seconds 600]

Writes benchmarks/results/switcher_sustain.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import av  # noqa: E402
import numpy as np  # noqa: E402

from media_server.source import Source  # noqa: E402
from switcher.commands import DefineLayout, DefineOverlay, Program, ShowOverlay  # noqa: E402
from switcher.engine import Switcher  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def generator(src: Source, stop: threading.Event, fps: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    frames = [av.VideoFrame.from_ndarray(rng.integers(16, 235, (1080, 1280), dtype=np.uint8),
                                         format="yuv420p") for _ in range(4)]
    tone = (0.1 * np.sin(np.arange(1600) * 2 * np.pi * 440 / 48000)).astype(np.float32)
    block = np.repeat(tone[:, None], 2, axis=1)
    t0 = time.monotonic()
    i = 0
    while not stop.is_set():
        src.push_video(frames[i % 4])
        src.audio.push(block)
        i += 1
        delay = t0 + i / fps - time.monotonic()
        if delay > 0:
            stop.wait(delay)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" /
                                         "switcher_sustain.json"))
    args = ap.parse_args()
    ids = ["cam1", "cam2", "cam3", "cam4"]
    sources = {sid: Source("bench", sid, "test") for sid in ids}
    stop = threading.Event()
    gens = [threading.Thread(target=generator, args=(sources[s], stop, 30, i), daemon=True)
            for i, s in enumerate(ids)]
    for g in gens:
        g.start()
    sw = Switcher(lambda: sources, width=1280, height=720, fps=30)
    sw.submit(DefineLayout.from_spec("grid", {"kind": "grid2x2", "sources": ids}))
    sw.submit(DefineOverlay.from_spec("lt", {"kind": "lower_third", "title": "四路直播",
                                             "subtitle": "Four cities, one show"}))
    sw.submit(DefineOverlay.from_spec("clock", {"kind": "clock"}))
    sw.submit(DefineOverlay.from_spec("ticker", {"kind": "ticker",
                                                 "text": "突发新闻 · Breaking news · 实时"}))
    for name in ("lt", "clock", "ticker"):
        sw.submit(ShowOverlay(name))
    sw.submit(Program(layout="grid"))
    out = sw.add_output("consumer", maxsize=8)
    frames = [0]

    def consume() -> None:
        while not stop.is_set():
            if out.get(timeout=0.5) is not None:
                frames[0] += 1

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    sw.start()
    time.sleep(2.0)  # warm-up (caches, allocator) before the first memory sample
    rss0, t0, ticks0, late0 = rss_mb(), time.monotonic(), sw.ticks, sw.late_ticks
    samples = []
    while time.monotonic() - t0 < args.seconds:
        time.sleep(min(10.0, args.seconds))
        samples.append({"t_s": round(time.monotonic() - t0, 1), "rss_mb": round(rss_mb(), 1),
                        "late_ticks": sw.late_ticks - late0, "ticks": sw.ticks - ticks0})
        print(samples[-1], flush=True)
    st = sw.stats()
    sw.close()
    stop.set()
    ticks = st["ticks"] - ticks0
    result = {
        "seconds": args.seconds, "fps": 30, "size": "1280x720",
        "scene": "grid2x2 of 4 live 720p sources + lower third + clock + ticker",
        "ticks": ticks, "late_ticks": st["late_ticks"] - late0,
        "late_pct": round(100 * (st["late_ticks"] - late0) / max(1, ticks), 3),
        "skipped_frames": st["skipped_frames"],
        "tick_ms_p50": st["tick_ms_p50"], "tick_ms_p95": st["tick_ms_p95"],
        "composite_ms_p50": st["composite_ms_p50"], "composite_ms_p95": st["composite_ms_p95"],
        "output_dropped": st["outputs"][0]["dropped"] if st["outputs"] else None,
        "rss_mb_start": round(rss0, 1), "rss_mb_end": round(rss_mb(), 1), "samples": samples,
    }
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
