from __future__ import annotations

import av
import numpy as np

from media_server.source import AudioRing, Source


def test_ring_read_exact_and_pads() -> None:
    ring = AudioRing(10)
    ring.push(np.arange(12, dtype=np.float32).reshape(6, 2))
    out = ring.read(4)
    assert out.shape == (4, 2)
    assert out[:, 0].tolist() == [0, 2, 4, 6] and ring.buffered == 2
    out = ring.read(3)
    assert out[:, 1].tolist() == [9, 11, 0]
    assert ring.underrun_samples == 1 and ring.buffered == 0


def test_ring_drops_oldest_and_counts() -> None:
    ring = AudioRing(4)
    for i in range(3):
        ring.push(np.full((2, 2), i, dtype=np.float32))
    assert ring.dropped_samples == 2
    assert ring.read(4)[:, 0].tolist() == [1, 1, 2, 2]
    ring.push(np.full((9, 2), 7, dtype=np.float32))
    assert ring.buffered == 4 and ring.dropped_samples == 7
    # wrap-around keeps order
    ring.read(3)
    ring.push(np.array([[8, 8], [9, 9]], dtype=np.float32))
    assert ring.read(3)[:, 0].tolist() == [7, 8, 9]


def test_source_latest_fps_and_stall() -> None:
    src = Source("p", "cam", "test", stall_timeout_s=1.0)
    assert src.state == "connecting" and src.latest_video() is None
    frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
    for i in range(11):
        src.push_video(frame, arrived=100.0 + i / 10)
    # fps is measured on the server's clock of arrival, pushed in quick succession here
    assert src.state == "live"
    assert src.latest_video().seq == 11
    src._arrivals.clear()
    src._arrivals.extend(100.0 + i / 10 for i in range(11))
    assert abs(src.measured_fps(now=101.0) - 10.0) < 0.01
    assert src.check_stall(now=101.5) == "live"
    assert src.check_stall(now=102.5) == "stalled"
    src.push_video(frame)
    assert src.state == "live"
    st = src.stats()
    assert st["width"] == 64 and st["height"] == 48 and st["frames_received"] == 12


def test_source_audio_resampled_to_48k_stereo() -> None:
    src = Source("p", "cam", "test")
    mono = av.AudioFrame.from_ndarray(np.full((1, 441), 1000, np.int16), format="s16",
                                      layout="mono")
    mono.sample_rate = 44100
    for _ in range(100):
        src.push_audio(mono)
    # 100 × 10 ms at 44.1 kHz ≈ 1 s at 48 kHz (resampler may hold back a few samples)
    assert abs(src.audio.buffered - 48000) < 200
    block = src.audio.read(1000)
    assert block.shape == (1000, 2)
    assert np.allclose(block[500:, 0], block[500:, 1])
    assert abs(float(block[500, 0]) - 1000 / 32768) < 1e-3


def test_source_audio_format_change_mid_stream() -> None:
    src = Source("p", "cam", "test")
    stereo = av.AudioFrame.from_ndarray(np.full((1, 960 * 2), 1000, np.int16), format="s16",
                                        layout="stereo")
    stereo.sample_rate = 48000
    mono = av.AudioFrame.from_ndarray(np.full((1, 441), 1000, np.int16), format="s16",
                                      layout="mono")
    mono.sample_rate = 44100
    for f in (stereo, mono, stereo):
        src.push_audio(f)
    assert src.audio_frames_received == 3
    assert src.audio.buffered > 960


def test_ring_trims_a_backlog_that_jitter_never_needed() -> None:
    ring = AudioRing(48000)
    ring.push(np.zeros((9600, 2), np.float32))  # a 200 ms burst at session start
    for _ in range(AudioRing.TRIM_WINDOW_READS):
        ring.push(np.zeros((1600, 2), np.float32))  # then steady: one tick's worth per read
        ring.read(1600)
    assert ring.buffered == AudioRing.TRIM_SLACK
    assert ring.trimmed_samples == 9600 - AudioRing.TRIM_SLACK


def test_ring_keeps_what_jitter_needs() -> None:
    ring = AudioRing(48000)
    for i in range(3 * AudioRing.TRIM_WINDOW_READS):
        if i % 2 == 0:
            ring.push(np.zeros((3200, 2), np.float32))  # bursty: two ticks' worth every other
        ring.read(1600)
    assert ring.trimmed_samples == 0 and ring.underrun_samples == 0
