"""TestInput: frame format and rate, bars colours, tone, clock patch, lifecycle."""

from __future__ import annotations

import time
from collections.abc import Callable
from fractions import Fraction

import numpy as np
import pytest

from media_server.inputs.testsrc import AUDIO_CHUNK, TestInput, parse_color
from media_server.source import AUDIO_RATE, Source


def wait_for(pred: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return pred()


def make_source() -> Source:
    return Source("prod", "cam", "test")


def test_frames_arrive_with_size_format_and_rate() -> None:
    src = make_source()
    gen = TestInput(src, "bars", 320, 240, 30, label="CAM 1")
    gen.start()
    try:
        assert wait_for(lambda: src.frames_received >= 3)
        assert src.state == "live"
        assert (src.video_codec, src.audio_codec) == ("raw", "pcm")
        assert src.info["pattern"] == "bars"
        # Rate: frames counted over a measured window.
        f0, t0 = src.frames_received, time.monotonic()
        wait_for(lambda: time.monotonic() - t0 >= 1.5, timeout=3)
        f1, t1 = src.frames_received, time.monotonic()
        fps = (f1 - f0) / (t1 - t0)
        # paced, never bursting; the low bound only says "it runs" (CI machines are noisy)
        assert 30 * 0.5 <= fps <= 30 * 1.1, fps
        item = src.latest_video()
        assert item is not None
        f = item.frame
        assert (f.width, f.height, f.format.name) == (320, 240, "yuv420p")
        assert f.time_base == Fraction(1, 30)
        assert f.pts is not None and f.pts >= f1 - 1 - gen.frames_skipped
        assert item.captured is not None and abs(item.captured - time.time()) < 1
        # Audio: pushed in step with video, about one clock's worth of samples.
        elapsed = t1 - t0
        assert src.audio_frames_received * AUDIO_CHUNK >= AUDIO_RATE * elapsed * 0.8
    finally:
        gen.stop_sync()
    assert not gen.running


def test_bars_colours_at_known_positions() -> None:
    w, h = 640, 360
    gen = TestInput(make_source(), "bars", w, h, 30)
    rgb = gen.make_video_frame(0, time.time()).to_ndarray(format="rgb24").astype(int)
    expected = [(191, 191, 191), (191, 191, 0), (0, 191, 191), (0, 191, 0),
                (191, 0, 191), (191, 0, 0), (0, 0, 191)]
    y = h // 8  # above the text patch
    for i, colour in enumerate(expected):
        x = int((i + 0.5) * w / 7)
        assert np.abs(rgb[y, x] - colour).max() <= 6, (i, rgb[y, x], colour)
    # Bottom row: 100% white block second, black at the right edge.
    assert np.abs(rgb[h - 4, int(w * 5 / 7 * 3 / 8)] - 255).max() <= 6
    assert rgb[h - 4, w - 4].max() <= 6


def test_solid_colour_and_counter() -> None:
    gen = TestInput(make_source(), "solid", 320, 180, 25, color="#0050a0")
    f0 = gen.make_video_frame(7, time.time())
    rgb = f0.to_ndarray(format="rgb24").astype(int)
    assert np.abs(rgb[5, 5] - (0x00, 0x50, 0xA0)).max() <= 6
    assert np.abs(rgb[-5, -5] - (0x00, 0x50, 0xA0)).max() <= 6
    f1 = gen.make_video_frame(8, time.time())
    y0, y1 = f0.to_ndarray()[:180], f1.to_ndarray()[:180]
    assert (y0 != y1).any()  # the counter changed
    with pytest.raises(ValueError, match="color"):
        TestInput(make_source(), "solid", 320, 180, 25, color="blue")
    assert parse_color("#ffffff") == (1.0, 1.0, 1.0)


def test_clock_patch_changes_only_inside_patch() -> None:
    gen = TestInput(make_source(), "bars", 640, 360, 30, label="studio")
    now = time.time()
    a = gen.make_video_frame(0, now).to_ndarray()  # (h*3/2, w) yuv420p
    b = gen.make_video_frame(1, now + 1.234).to_ndarray()
    diff = np.argwhere(a != b)
    assert len(diff) > 0
    p = gen._patch
    rows, cols = diff[:, 0], diff[:, 1]
    assert rows.min() >= p.y and rows.max() < p.y + p.h  # only luma rows of the patch
    assert cols.min() >= p.x and cols.max() < p.x + p.w
    # Same wall time → identical frames (text depends only on the clock).
    c = gen.make_video_frame(2, now).to_ndarray()
    assert (a == c).all()


def test_tone_frequency_level_and_continuity() -> None:
    gen = TestInput(make_source(), "bars", 320, 240, 30, tone_hz=1000)
    frames = [gen.make_audio_frame(i * AUDIO_CHUNK) for i in range(50)]  # 1 s
    assert all(f.sample_rate == AUDIO_RATE and f.samples == AUDIO_CHUNK for f in frames)
    assert [f.pts for f in frames] == [i * AUDIO_CHUNK for i in range(50)]
    pcm = np.concatenate([f.to_ndarray() for f in frames], axis=1)  # (2, 48000)
    assert pcm.shape == (2, AUDIO_RATE)
    assert np.array_equal(pcm[0], pcm[1])
    spectrum = np.abs(np.fft.rfft(pcm[0] * np.hanning(pcm.shape[1])))
    peak_hz = np.argmax(spectrum) * AUDIO_RATE / pcm.shape[1]
    assert abs(peak_hz - 1000) <= 2
    peak_dbfs = 20 * np.log10(np.abs(pcm[0]).max())
    assert -20.5 <= peak_dbfs <= -19.5
    # Continuous phase: no jump at frame boundaries.
    assert np.abs(np.diff(pcm[0])).max() < 2 * np.pi * 1000 / AUDIO_RATE * 0.1 * 1.01
    # Solid and tone_hz=0 are silent.
    silent = TestInput(make_source(), "bars", 320, 240, 30, tone_hz=0).make_audio_frame(0)
    assert not silent.to_ndarray().any()


def test_running_tone_reaches_the_source_ring() -> None:
    src = make_source()
    gen = TestInput(src, "bars", 160, 120, 30)
    gen.start()
    try:
        assert wait_for(lambda: src.audio.buffered >= AUDIO_RATE // 4)
    finally:
        gen.stop_sync()
    pcm = src.audio.read(AUDIO_RATE // 4)[:, 0]
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
    assert abs(np.argmax(spectrum) * AUDIO_RATE / len(pcm) - 1000) <= 8


@pytest.mark.parametrize("kwargs", [
    {"pattern": "plasma"}, {"width": 321}, {"height": 8}, {"fps": 0}, {"tone_hz": 30000},
])
def test_rejects_bad_parameters(kwargs: dict) -> None:
    args = {"pattern": "bars", "width": 320, "height": 240, "fps": 30} | kwargs
    with pytest.raises(ValueError):
        TestInput(make_source(), **args)


async def test_async_stop_is_prompt() -> None:
    src = make_source()
    gen = TestInput(src, "solid", 160, 120, 5)
    gen.start()
    assert wait_for(lambda: src.frames_received >= 1)
    t = time.monotonic()
    await gen.stop()
    assert time.monotonic() - t < 0.5
    assert not gen.running
    n = src.frames_received
    assert wait_for(lambda: src.frames_received > n, timeout=0.3) is False


def test_late_thread_skips_ahead_instead_of_bursting(monkeypatch: pytest.MonkeyPatch) -> None:
    src = make_source()
    gen = TestInput(src, "solid", 160, 120, 50)
    real = gen.make_video_frame
    calls = []

    def slow(n: int, wall: float):
        calls.append(n)
        if len(calls) == 3:
            time.sleep(0.3)  # simulate a stall of ~15 frame periods
        return real(n, wall)

    monkeypatch.setattr(gen, "make_video_frame", slow)
    gen.start()
    try:
        assert wait_for(lambda: len(calls) >= 8)
    finally:
        gen.stop_sync()
    assert gen.frames_skipped >= 10
    assert src.frames_dropped == gen.frames_skipped
    assert calls[3] - calls[2] >= 10  # jumped to the frame due now
