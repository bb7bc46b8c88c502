"""Compositor cost per frame: our engine vs FFmpeg's filter graph (PyAV av.filter.Graph).

Compositions, at 720p and 1080p, with fresh source frames every iteration (so scaling is
really done each frame, as with live cameras):
- cut:   one full-screen source of the program size (no blend)
- mix:   dissolve held at 50% (T-bar 0.5) between two full-screen sources
- pip:   full-screen main + 30% inset with a 4 px white border, bottom right
- grid:  2x2 grid of four full-size sources (each scaled to a quarter) + a lower third
"Ours" is the engine's own composite time (`Switcher.tick`: frame allocation, fitting,
compositing, overlays), read from its stats; FFmpeg runs the equivalent graph (scale, blend
all_mode=normal:all_opacity=0.5, pad+overlay, xstack+overlay of a pre-converted yuva420p lower
third). Two pairs, side by side: single-threaded (ours with OpenCV's kernels limited to the
calling thread, `cv2.setNumThreads(1)`, vs the graph with one thread) and threaded (OpenCV's
default vs FFmpeg's automatic threading). Rounds alternate ours/FFmpeg so machine noise hits
both; we report the median of per-round medians and the spread (min..max of round medians).

Also: cut latency through the real clock thread (submit() → first ProgramFrame showing the new
source in an output queue; and from the command's future resolving, i.e. the API returning).

    .venv/bin/python benchmarks/bench_compositor.py [--rounds 5] [--frames 40] [--quick]

Writes benchmarks/results/compositor.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import av  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from media_server.source import Source  # noqa: E402
from switcher.commands import (  # noqa: E402
    DefineLayout,
    DefineOverlay,
    Preview,
    Program,
    ShowOverlay,
    TBar,
)
from switcher.engine import Switcher  # noqa: E402
from switcher.overlays import lower_third_rgba, overlay_from_spec  # noqa: E402

SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}
LOWER_THIRD = {"kind": "lower_third", "title": "张伟 · Zhang Wei",
               "subtitle": "现场报道 Live from Beijing", "fade_ms": 0}


def make_frames(w: int, h: int, k: int = 4, seed: int = 0) -> list[av.VideoFrame]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(k):
        arr = rng.integers(16, 235, (h * 3 // 2, w), dtype=np.uint8)
        out.append(av.VideoFrame.from_ndarray(arr, format="yuv420p"))
    return out


# --- ours ---------------------------------------------------------------------------------
class Ours:
    def __init__(self, comp: str, w: int, h: int) -> None:
        self.w, self.h = w, h
        self.ids = ["s0", "s1", "s2", "s3"]
        self.sources = {sid: Source("bench", sid, "test") for sid in self.ids}
        self.frames = {sid: make_frames(w, h, 4, i) for i, sid in enumerate(self.ids)}
        self.i = 0
        self.push()
        sw = self.sw = Switcher(lambda: self.sources, width=w, height=h, fps=30)
        if comp == "cut":
            sw.submit(Program(source="s0"))
        elif comp == "mix":
            sw.submit(Program(source="s0"))
            sw.submit(Preview(source="s1"))
            sw.submit(TBar(0.5, "mix"))
        elif comp == "pip":
            sw.submit(DefineLayout.from_spec("pip", {"kind": "pip", "sources": ["s0", "s1"],
                                                     "size": 0.3, "border": 4}))
            sw.submit(Program(layout="pip"))
        elif comp == "grid":
            sw.submit(DefineLayout.from_spec("g", {"kind": "grid2x2", "sources": self.ids}))
            sw.submit(DefineOverlay.from_spec("lt", LOWER_THIRD))
            sw.submit(ShowOverlay("lt"))
            sw.submit(Program(layout="g"))
        for _ in range(3):
            self.step()

    def push(self) -> None:
        for sid in self.ids:
            self.sources[sid].push_video(self.frames[sid][self.i % 4])
        self.i += 1

    def step(self) -> float:
        self.push()
        self.sw.tick()
        return self.sw._composite_ms[-1]


# --- FFmpeg -------------------------------------------------------------------------------
class FF:
    def __init__(self, comp: str, w: int, h: int, threads: int) -> None:
        self.comp, self.w, self.h = comp, w, h
        n_inputs = {"cut": 1, "mix": 2, "pip": 2, "grid": 4}[comp]
        self.frames = [make_frames(w, h, 4, i) for i in range(n_inputs)]
        g = self.g = av.filter.Graph()
        g.threads = threads
        tb = "1/30"
        self.srcs = [g.add_buffer(width=w, height=h, format="yuv420p", time_base=tb)
                     for _ in range(n_inputs)]
        sink = g.add("buffersink")
        if comp == "cut":
            sc = g.add("scale", f"{w}:{h}:flags=bilinear")
            self.srcs[0].link_to(sc)
            sc.link_to(sink)
        elif comp == "mix":
            bl = g.add("blend", "all_mode=normal:all_opacity=0.5")
            self.srcs[0].link_to(bl, 0, 0)
            self.srcs[1].link_to(bl, 0, 1)
            bl.link_to(sink)
        elif comp == "pip":
            iw, ih = round(w * 0.3 / 2) * 2, round(h * 0.3 / 2) * 2
            x, y = w - iw - round(h * 0.04 * 9 / 16), h - ih - round(h * 0.04)
            sc = g.add("scale", f"{iw}:{ih}:flags=bilinear")
            pad = g.add("pad", f"{iw + 8}:{ih + 8}:4:4:color=white")
            ov = g.add("overlay", f"x={x - 4}:y={y - 4}:format=yuv420")
            self.srcs[0].link_to(ov, 0, 0)
            self.srcs[1].link_to(sc)
            sc.link_to(pad)
            pad.link_to(ov, 0, 1)
            ov.link_to(sink)
        else:
            spec = overlay_from_spec("lt", LOWER_THIRD)
            rgba, lx, ly = lower_third_rgba(spec.p, w, h)  # the same picture ours keys
            rgba = np.ascontiguousarray(rgba[:rgba.shape[0] & ~1, :rgba.shape[1] & ~1])
            lt = av.VideoFrame.from_ndarray(rgba, format="rgba").reformat(format="yuva420p")
            self.lt = lt
            self.lt_src = g.add_buffer(width=lt.width, height=lt.height, format="yuva420p",
                                       time_base=tb)
            scs = [g.add("scale", f"{w // 2}:{h // 2}:flags=bilinear") for _ in range(4)]
            xs = g.add("xstack", "inputs=4:layout=0_0|w0_0|0_h0|w0_h0")
            ov = g.add("overlay", f"x={lx}:y={ly}:format=yuv420")
            for i in range(4):
                self.srcs[i].link_to(scs[i])
                scs[i].link_to(xs, 0, i)
            xs.link_to(ov, 0, 0)
            self.lt_src.link_to(ov, 0, 1)
            ov.link_to(sink)
        self.sink = sink
        g.configure()
        self.i = 0
        for _ in range(3):
            self.step()

    def step(self) -> float:
        t0 = time.perf_counter()
        for src, frames in zip(self.srcs, self.frames, strict=True):
            f = frames[self.i % 4]
            f.pts = self.i
            src.push(f)
        if self.comp == "grid":
            self.lt.pts = self.i
            self.lt_src.push(self.lt)
        self.sink.pull()
        self.i += 1
        return (time.perf_counter() - t0) * 1000.0


def median_of(run, n: int) -> float:
    return statistics.median(run() for _ in range(n))


def bench(rounds: int, frames: int, sizes: list[str]) -> list[dict]:
    cv_default = cv2.getNumThreads()
    rows = []
    for size in sizes:
        w, h = SIZES[size]
        for comp in ("cut", "mix", "pip", "grid"):
            ours, ff1, ffa = Ours(comp, w, h), FF(comp, w, h, 1), FF(comp, w, h, 0)
            r = {"ours_1t": [], "ffmpeg_1t": [], "ours_auto": [], "ffmpeg_auto": []}
            for _ in range(rounds):
                cv2.setNumThreads(1)  # OpenCV's kernels on the calling thread only
                r["ours_1t"].append(median_of(ours.step, frames))
                r["ffmpeg_1t"].append(median_of(ff1.step, frames))
                cv2.setNumThreads(cv_default)
                r["ours_auto"].append(median_of(ours.step, frames))
                r["ffmpeg_auto"].append(median_of(ffa.step, frames))
            row: dict = {"size": size, "composition": comp}
            for k, v in r.items():
                row[f"{k}_ms"] = round(statistics.median(v), 3)
                row[f"{k}_spread_ms"] = [round(min(v), 3), round(max(v), 3)]
            row["ratio_1t"] = round(row["ours_1t_ms"] / row["ffmpeg_1t_ms"], 3)
            row["ratio_auto"] = round(row["ours_auto_ms"] / row["ffmpeg_auto_ms"], 3)
            rows.append(row)
            print(f"{size:>6} {comp:>5}  1 thread: ours {row['ours_1t_ms']:6.3f} ms "
                  f"ffmpeg {row['ffmpeg_1t_ms']:6.3f} ms ratio {row['ratio_1t']:.2f}   "
                  f"threaded: ours {row['ours_auto_ms']:6.3f} ms ffmpeg "
                  f"{row['ffmpeg_auto_ms']:6.3f} ms ratio {row['ratio_auto']:.2f}", flush=True)
    return rows


def cut_latency(cuts: int = 40, fps: int = 30) -> dict:
    """Real clock thread at 720p; alternate hot cuts between two live sources."""
    w, h = SIZES["720p"]
    srcs = {"a": Source("bench", "a", "test"), "b": Source("bench", "b", "test")}
    fa, fb = make_frames(w, h, 1, 1)[0], make_frames(w, h, 1, 2)[0]
    srcs["a"].push_video(fa)
    srcs["b"].push_video(fb)
    sw = Switcher(lambda: srcs, width=w, height=h, fps=fps)
    q = sw.add_output("bench", maxsize=64)
    sw.submit(Program(source="a"))
    sw.start()
    from_submit, from_reply = [], []
    try:
        q.get(timeout=2.0)
        for i in range(cuts):
            target = "b" if i % 2 == 0 else "a"
            done = threading.Event()
            replied: list[float] = []
            t0 = time.perf_counter()
            fut = sw.submit(Program(source=target))

            def on_done(_f, replied=replied, done=done):
                replied.append(time.perf_counter())
                done.set()

            fut.add_done_callback(on_done)
            while True:
                pf = q.get(timeout=2.0)
                if pf is not None and pf.on_air == (target,):
                    t1 = time.perf_counter()
                    break
            done.wait(2.0)
            from_submit.append((t1 - t0) * 1000)
            from_reply.append(max(0.0, (t1 - replied[0]) * 1000))
            # wait a random fraction of a frame so submits land at any phase of the clock
            time.sleep((i * 7 % 10) / 10 / fps)
    finally:
        sw.stop()
    st = sw.stats()

    def pct(v, q_):
        return round(float(np.percentile(v, q_)), 3)

    return {"fps": fps, "frame_interval_ms": round(1000 / fps, 3), "cuts": cuts,
            "submit_to_frame_ms_p50": pct(from_submit, 50),
            "submit_to_frame_ms_p99": pct(from_submit, 99),
            "reply_to_frame_ms_p50": pct(from_reply, 50),
            "reply_to_frame_ms_p99": pct(from_reply, 99),
            "late_ticks": st["late_ticks"], "ticks": st["ticks"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--quick", action="store_true", help="2 rounds x 15 frames, 720p only")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "compositor.json"))
    args = ap.parse_args()
    rounds, frames = (2, 15) if args.quick else (args.rounds, args.frames)
    sizes = ["720p"] if args.quick else ["720p", "1080p"]
    print(f"compositor benchmark: {rounds} rounds x {frames} frames, "
          f"{os.cpu_count()} CPUs, av {av.__version__} (FFmpeg {av.ffmpeg_version_info})")
    rows = bench(rounds, frames, sizes)
    lat = cut_latency()
    print(f"cut latency @30fps: submit->frame p50 {lat['submit_to_frame_ms_p50']} ms, "
          f"p99 {lat['submit_to_frame_ms_p99']} ms; reply->frame p50 "
          f"{lat['reply_to_frame_ms_p50']} ms, p99 {lat['reply_to_frame_ms_p99']} ms "
          f"(frame interval {lat['frame_interval_ms']} ms)")
    out = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                       "av": av.__version__, "ffmpeg": str(av.ffmpeg_version_info),
                       "numpy": np.__version__},
           "rounds": rounds, "frames_per_round": frames, "compositor": rows,
           "cut_latency": lat,
           "targets": {"ratio_max": 1.0, "mix_720p_ms_max": 5.0,
                       "cut_latency_p99_max_ms": round(1000 / 30, 3)}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
