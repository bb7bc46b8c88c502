"""Publish a test picture with FFmpeg's whip muxer (PyAV) on its default settings.

    python -m tests.tools.whip_publisher URL --token T [--size 640x360] [--fps 30] [--seconds 60]

Only x264's B-frames are turned off (the muxer refuses them, as WebRTC does); everything else,
the DTLS certificate included, is FFmpeg's default. Ctrl+C/SIGINT closes the muxer cleanly,
which sends the WHIP DELETE.
"""

from __future__ import annotations

import argparse
import fractions
import sys
import time

import av
import numpy as np

from latency_lab.publisher import StopSignal


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("--token", required=True)
    p.add_argument("--size", default="640x360")
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--no-audio", action="store_true")
    a = p.parse_args()
    w, h = (int(x) for x in a.size.split("x"))
    stop = StopSignal()
    out = av.open(a.url, mode="w", format="whip", options={"authorization": a.token})
    vs = out.add_stream("libx264", rate=a.fps)
    vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
    vs.options = {"bf": "0"}
    as_ = None if a.no_audio else out.add_stream("libopus", rate=48000, layout="stereo")
    y = np.zeros((h, w), np.uint8)
    t0 = time.monotonic()
    n = apts = 0
    while not stop and n < a.seconds * a.fps:
        y[:] = 100
        bar = (n * 8) % w
        y[:, bar:bar + 16] = 235  # moving bar: frames differ, the encoder works for real
        img = np.concatenate([y, np.full((h // 2, w), 128, np.uint8)])
        frame = av.VideoFrame.from_ndarray(img, format="yuv420p")
        frame.pts, frame.time_base = n, fractions.Fraction(1, a.fps)
        for pkt in vs.encode(frame):
            out.mux(pkt)
        while as_ is not None and apts < (n + 1) * 48000 // a.fps:
            t = (np.arange(960) + apts) / 48000
            tone = (0.1 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
            af = av.AudioFrame.from_ndarray(np.repeat(tone, 2).reshape(1, -1), format="s16",
                                            layout="stereo")
            af.sample_rate, af.pts, af.time_base = 48000, apts, fractions.Fraction(1, 48000)
            apts += 960
            for pkt in as_.encode(af):
                out.mux(pkt)
        n += 1
        delay = t0 + n / a.fps - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    out.close()
    print(f"sent {n} frames", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
