"""The FFmpeg-hls side of bench_latency: FFmpeg's hls muxer fed program frames (shared with
other threads, so never modified) and the polling player that reads the probe's stamps back."""

from __future__ import annotations

import time
from fractions import Fraction

import numpy as np
import pytest
from av.video.frame import PictureType

from benchmarks.bench_hls_latency import FfmpegHls
from benchmarks.ffmpeg_hls_tap import DirReader, read_stats, write_stats
from latency_lab import report, stamp
from switcher.program import ProgramFrame, samples_for_frame

FPS = 30


@pytest.mark.slow
def test_polling_player_reads_stamps_of_ffmpeg_hls_segments(tmp_path) -> None:
    ff = FfmpegHls(tmp_path, "ultrafast", width=320, height=180, fps=FPS, bitrate=300_000,
                   threads=1)
    reader = DirReader(tmp_path / "index.m3u8", interval=0.02).start()
    shared = []
    t0 = time.monotonic()
    try:
        for n in range(int(3.5 * FPS)):  # 3 complete 1 s segments, the 4th still open
            now = time.time()
            video = stamp.stamped_frame(640, 360, int(now * 1000), text=False)
            video.pts, video.time_base = n, Fraction(1, FPS)
            if n % FPS == FPS // 2:  # our packager forces its keyframes on shared frames
                video.pict_type = PictureType.I
            audio = np.zeros((samples_for_frame(n, FPS), 2), np.float32)
            pf = ProgramFrame(n, FPS, video, audio, {"captured": now, "tick": now})
            ff.push(pf)
            shared.append(pf)
            time.sleep(max(0.0, t0 + (n + 1) / FPS - time.monotonic()))
        deadline = time.monotonic() + 5
        while reader.segments < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        reader.stop()
        ff.close()
    write_stats(tmp_path, ff)

    # frames shared with other threads are left alone (the muxer scaled its own copies), and
    # keyframes forced on them by another encoder do not move FFmpeg's: 1 s segments
    assert all(pf.video.pts == pf.index and pf.video.width == 640 for pf in shared)
    assert reader.segments >= 3
    s = report.summarize(report.Run(reader.samples, [], FPS))
    g = s["glass_to_glass_ms"]
    # joined at the newest segment when it started, then every frame of each new segment
    assert g["count"] >= 2 * FPS and s["frames_lost"] == 0
    # a frame waits for its segment to be complete: up to ~1 s (+ polling and decoding)
    assert 200 < g["p50"] < 1000 and g["max"] < 2000 and g["min"] >= 0
    stats = read_stats(tmp_path)
    assert stats["frames"] == len(shared) and stats["segments_listed"] >= 3
    assert stats["segment_s"][:3] == [1.0, 1.0, 1.0]
    assert stats["cpu_s"] > 0 and stats["listed_ms"]["count"] >= 3 * FPS - 1
