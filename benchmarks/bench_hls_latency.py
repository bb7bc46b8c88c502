"""Server-side LL-HLS latency: a frame's capture mark -> the part holding it can be fetched.

Feeds synthetic 720p30 program frames in real time (a thread, like the switcher clock) to
  * our Packager (default ladder 720p + 360p, 200 ms parts, 1 s segments), and
  * side by side, FFmpeg's own `hls` muxer via PyAV (libx264 720p, same settings, 1 s fMP4
    segments): a frame is available when the playlist listing its segment is written,
and writes p50/p95 of both and their ratio to benchmarks/results/hls_latency.json.

    .venv/bin/python benchmarks/bench_hls_latency.py [--seconds 20] [--no-ffmpeg]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.frame import PictureType
from av.video.reformatter import VideoReformatter

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hls_packager.config import HlsConfig  # noqa: E402
from hls_packager.server import Packager  # noqa: E402
from hls_packager.store import MemoryStore  # noqa: E402
from hls_packager.testing import make_program_frame  # noqa: E402
from switcher.program import ProgramFrame  # noqa: E402
from switcher.scale import yuv420p_planes  # noqa: E402

FPS = 30
W, H = 1280, 720


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))]


class FfmpegHls:
    """FFmpeg's hls muxer (1 s fMP4 segments) in its own thread, fed the same frames.

    It encodes its own copy of each frame (scaled by its own reformatter when the size
    differs): program frames are shared with other threads -- our packager's encoders set
    `pict_type` on them to force their keyframes, and a scaled frame would inherit it -- so its
    keyframes come from its own clock only: a forced IDR at each second of the output's frame
    index (as ours). `latencies`: capture mark -> the playlist listing the frame's segment is
    written (frames without a capture mark are left out); `cpu_s`: CPU time of this thread
    (all of the encoder's with `threads=1`; 0 = x264's own thread count)."""

    def __init__(self, outdir: Path, preset: str, *, width: int = W, height: int = H,
                 fps: int = FPS, bitrate: int = 2_500_000, threads: int = 0) -> None:
        self.playlist = outdir / "index.m3u8"
        self.width, self.height, self.fps = width, height, fps
        self.out = av.open(str(self.playlist), "w", format="hls", options={
            "hls_time": "1", "hls_list_size": "7", "hls_segment_type": "fmp4",
            "hls_flags": "independent_segments+temp_file",
        })
        s = self.out.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.bit_rate = bitrate
        s.codec_context.time_base = Fraction(1, fps)
        s.codec_context.thread_count = threads
        s.codec_context.options = {
            "preset": preset, "tune": "zerolatency", "forced-idr": "1",
            "x264-params": f"keyint={fps}:min-keyint={fps}:scenecut=0:bframes=0",
        }
        self.stream = s
        self._scaler = VideoReformatter()
        self._origin: int | None = None
        self._segment: int | None = None
        self.captured: list[float | None] = []
        self.latencies: list[float] = []
        self.cpu_s = 0.0
        self.segments_listed = 0
        self.durations: list[float] = []  # EXTINF of each segment listed, in order
        self._listed_frames = 0
        self._listed_segments = 0
        self._queue: list[ProgramFrame | None] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="ffmpeg-hls", daemon=True)
        self._thread.start()

    def push(self, pf: ProgramFrame) -> None:
        with self._cond:
            self._queue.append(pf)
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._queue.append(None)
            self._cond.notify()
        self._thread.join(30)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                pf = self._queue.pop(0)
            if pf is None:
                break
            t0 = time.thread_time()
            f = self._frame(pf)
            self.captured.append(pf.marks.get("captured"))
            for pkt in self.stream.encode(f):
                self.out.mux(pkt)
                self._check()
            self.cpu_s += time.thread_time() - t0
        for pkt in self.stream.encode(None):
            self.out.mux(pkt)
        self.out.close()

    def _frame(self, pf: ProgramFrame) -> av.VideoFrame:
        f = pf.video
        if (f.width, f.height, f.format.name) != (self.width, self.height, "yuv420p"):
            f = self._scaler.reformat(f, self.width, self.height, "yuv420p")
        else:
            f = av.VideoFrame.from_ndarray(np.concatenate(
                [p.reshape(-1, f.width) for p in yuv420p_planes(f)]), format="yuv420p")
        if self._origin is None:
            self._origin = pf.index
        seg = (pf.index - self._origin) // self.fps
        f.pict_type = PictureType.I if seg != self._segment else PictureType.NONE
        self._segment = seg
        f.pts, f.time_base = pf.index, Fraction(1, self.fps)
        return f

    def _check(self) -> None:
        try:
            text = self.playlist.read_text()
        except FileNotFoundError:
            return
        durs = [float(ln[8:].split(",")[0]) for ln in text.splitlines()
                if ln.startswith("#EXTINF:")]
        seq = next((int(ln.split(":")[1]) for ln in text.splitlines()
                    if ln.startswith("#EXT-X-MEDIA-SEQUENCE")), 0)
        total = seq + len(durs)
        if total <= self._listed_segments:
            return
        now = time.time()
        new = durs[len(durs) - (total - self._listed_segments):]
        self._listed_segments = self.segments_listed = total
        self.durations += new
        frames = round(sum(new) * self.fps)
        for t in self.captured[self._listed_frames : self._listed_frames + frames]:
            if t is not None:
                self.latencies.append(now - t)
        self._listed_frames += frames


async def main(seconds: float, with_ffmpeg: bool, preset: str) -> dict:
    config = HlsConfig(preset=preset)
    packager = Packager("bench", FPS, config, MemoryStore())
    packager.start()
    tmp = tempfile.TemporaryDirectory()
    ff = FfmpegHls(Path(tmp.name), preset) if with_ffmpeg else None
    # Pre-render the picture content (frame generation is not what we measure).
    pics = [make_program_frame(i, FPS, W, H) for i in range(FPS)]
    stop = threading.Event()
    pushed = [0]

    def clock() -> None:
        t0 = time.monotonic()
        n = 0
        while not stop.is_set() and n < seconds * FPS:
            src = pics[n % len(pics)]
            video = av.VideoFrame.from_ndarray(src.video.to_ndarray(), format="yuv420p")
            video.pts, video.time_base = n, Fraction(1, FPS)
            tone = make_program_frame(n, FPS, 16, 16).audio
            now = time.time()
            pf = ProgramFrame(n, FPS, video, tone, {"captured": now, "tick": now})
            packager.push(pf)
            if ff is not None:
                ff.push(pf)
            n += 1
            pushed[0] = n
            stop.wait(max(0.0, t0 + n / FPS - time.monotonic()))

    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    wall0 = time.monotonic()
    th = threading.Thread(target=clock, daemon=True)
    th.start()
    await asyncio.get_running_loop().run_in_executor(None, th.join)
    await packager.aclose()
    if ff is not None:
        await asyncio.get_running_loop().run_in_executor(None, ff.close)
    await asyncio.sleep(0.1)
    wall = time.monotonic() - wall0
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    stats = packager.stats()
    ours = {}
    for name, out in packager.outputs.items():
        lat = list(out.latencies)
        ours[name] = {
            "frames": len(lat),
            "p50_ms": round(pct(lat, 0.5) * 1000, 1) if lat else None,
            "p95_ms": round(pct(lat, 0.95) * 1000, 1) if lat else None,
            "max_ms": round(max(lat) * 1000, 1) if lat else None,
            "dropped": stats["renditions"][name]["dropped"],
        }
    result: dict = {
        "what": "capture mark -> part fetchable (server side), 720p30 program, real time",
        "seconds": seconds,
        "frames_pushed": pushed[0],
        "config": {"part_target_s": config.part_target_s,
                   "segment_target_s": config.segment_target_s, "preset": preset,
                   "ladder": [f"{r.name} {r.width}x{r.height} {r.video_bitrate // 1000}k"
                              for r in config.renditions]},
        "ours": ours,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "av": av.__version__},
        "process_cpu_percent": round(100 * cpu / wall, 1),
        "targets": {"p50_ms": 300, "p95_ms": 500},
    }
    if ff is not None:
        lat = ff.latencies
        result["ffmpeg_hls_1s"] = {
            "frames": len(lat),
            "p50_ms": round(pct(lat, 0.5) * 1000, 1) if lat else None,
            "p95_ms": round(pct(lat, 0.95) * 1000, 1) if lat else None,
        }
        first = next(iter(ours.values()))
        if lat and first["p50_ms"]:
            result["ratio_ffmpeg_over_ours_p50"] = round(
                result["ffmpeg_hls_1s"]["p50_ms"] / first["p50_ms"], 2)
            result["ratio_ffmpeg_over_ours_p95"] = round(
                result["ffmpeg_hls_1s"]["p95_ms"] / first["p95_ms"], 2)
    first = next(iter(ours.values()))
    result["meets_targets"] = bool(first["p50_ms"] and first["p50_ms"] <= 300
                                   and first["p95_ms"] <= 500)
    tmp.cleanup()
    return result


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--preset", default="veryfast")
    ap.add_argument("--no-ffmpeg", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "hls_latency.json"))
    args = ap.parse_args()
    np.seterr(all="ignore")
    res = asyncio.run(main(args.seconds, not args.no_ffmpeg, args.preset))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))
