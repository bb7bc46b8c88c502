"""FFmpeg's `hls` muxer on the same program as ours, for glass-to-glass comparisons.

Two halves:

* the server side: `python -m benchmarks.ffmpeg_hls_tap --tap-dir DIR [--size WxH]
  [--bitrate B] [--preset P] serve ...` is `scenecloud serve ...` where every production's
  switcher gets one more output (next to our LL-HLS packager's): its program frames go to
  `bench_hls_latency.FfmpegHls` (libx264 through PyAV, same preset, 1 s GOP, FFmpeg's hls
  muxer, 1 s fMP4 segments; one x264 thread, so its CPU time can be told apart from the
  server's) writing `DIR/<production>/index.m3u8`. A benchmark-only launcher:
  it wraps `ProductionRuntime.start` in its own process, the product is not changed.
  `DIR/<production>/tap.json` (rewritten once per listed segment): frames encoded, segment
  durations, CPU seconds of the tap's encoder thread, and the server-side latency capture →
  listed.

* the client side: `DirReader` polls that playlist like a player that has no blocking reload
  (every `interval` s), reads each newly listed segment once (init + segment) and decodes it
  with the probe's own decoder (`latency_lab.watcher.Decoder`), reading the pixel stamps:
  the same `FrameSample`s as the probe's, so `latency_lab.report` computes the same figures.
  It reads the files directly (no HTTP: a little in FFmpeg's favour).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from latency_lab import hls
from latency_lab.report import percentile
from latency_lab.stamp import Region
from latency_lab.watcher import Decoder, FrameSample

TAP_STATS = "tap.json"


# --------------------------------------------------------------------------- server side


def install(tap_dir: Path, width: int, height: int, bitrate: int, preset: str) -> None:
    """Make every production started in this process also feed FFmpeg's hls muxer."""
    from benchmarks.bench_hls_latency import FfmpegHls
    from media_server.productions import ProductionRuntime

    original = ProductionRuntime.start

    def start(self: ProductionRuntime) -> None:
        original(self)
        outdir = tap_dir / self.id
        outdir.mkdir(parents=True, exist_ok=True)
        ff = FfmpegHls(outdir, preset, width=width, height=height, fps=self.production.fps,
                       bitrate=bitrate, threads=1)  # its CPU: one thread's
        q = self.switcher.add_output("ffmpeg-hls", self.config.switcher.output_queue_frames)

        def pump() -> None:
            written = 0
            while not q.closed or len(q):
                frame = q.get(timeout=0.5)
                if frame is not None:
                    ff.push(frame)
                if ff.segments_listed != written:
                    written = ff.segments_listed
                    write_stats(outdir, ff)
            ff.close()
            write_stats(outdir, ff)

        threading.Thread(target=pump, name=f"ffmpeg-hls-pump:{self.id}", daemon=True).start()

    ProductionRuntime.start = start  # type: ignore[method-assign]


def write_stats(outdir: Path, ff: Any) -> None:
    lat = list(ff.latencies)
    stats = {"frames": len(ff.captured), "segments_listed": ff.segments_listed,
             "cpu_s": round(ff.cpu_s, 3), "segment_s": [round(d, 3) for d in ff.durations],
             "listed_ms": {"p50": _ms(percentile(lat, 0.5)), "p95": _ms(percentile(lat, 0.95)),
                           "count": len(lat)}}
    tmp = outdir / (TAP_STATS + ".tmp")
    tmp.write_text(json.dumps(stats))
    os.replace(tmp, outdir / TAP_STATS)


def _ms(v: float | None) -> float | None:
    return None if v is None else round(v * 1000, 1)


def read_stats(outdir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((outdir / TAP_STATS).read_text())
    except (FileNotFoundError, ValueError):
        return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tap-dir", required=True, type=Path)
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--bitrate", type=int, default=600_000)
    ap.add_argument("--preset", default="veryfast")
    a, rest = ap.parse_known_args(argv)
    w, h = (int(v) for v in a.size.split("x"))
    install(a.tap_dir, w, h, a.bitrate, a.preset)
    from media_server.cli import main as scenecloud

    return scenecloud(rest)


# --------------------------------------------------------------------------- client side


class DirReader:
    """A polling player for an hls playlist in a directory: decodes each newly listed segment
    once, in its own thread; joins at the newest segment listed when it starts (those frames
    are marked `joined`)."""

    def __init__(self, playlist: Path, region: Region | None = None,
                 interval: float = 0.05) -> None:
        self.playlist = playlist
        self.interval = interval
        self.samples: list[FrameSample] = []
        self.segments = 0
        self.errors = 0
        self._decoder = Decoder(region)
        self._init_uri: str | None = None
        self._done: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ffmpeg-hls-reader", daemon=True)

    def start(self) -> DirReader:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(FileNotFoundError):
                self.poll()
            self._stop.wait(self.interval)

    def poll(self) -> None:
        try:
            pl = hls.parse_media_playlist(self.playlist.read_text())
        except ValueError:  # being rewritten
            self.errors += 1
            return
        if not pl.segments or pl.map_uri is None:
            return
        if pl.map_uri != self._init_uri:
            self._decoder.set_init((self.playlist.parent / pl.map_uri).read_bytes())
            self._init_uri = pl.map_uri
        joined = self._done is None
        todo = pl.segments[-1:] if joined else [s for s in pl.segments if s[0] > self._done]
        for msn, uri in todo:
            data = (self.playlist.parent / uri).read_bytes()
            samples, _ = self._decoder.decode(data, time.time(), (msn, 0), joined)
            self.samples += samples
            self.segments += 1
            self._done = msn


if __name__ == "__main__":
    sys.exit(main())
