"""latency_lab.stamp: the capture clock as pixels (survives scaling and H.264) and as beeps."""

from __future__ import annotations

import fractions
import random

import av
import numpy as np
import pytest

from latency_lab import stamp

T = 1_795_669_735_889  # an epoch ms


def encode_decode(frames: list[np.ndarray], width: int, height: int,
                  bitrate: int) -> list[av.VideoFrame]:
    """x264 (zerolatency, bf=0) at `bitrate`, then decode: what the stamp goes through."""
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = width, height, "yuv420p"
    enc.time_base, enc.framerate = fractions.Fraction(1, 30), fractions.Fraction(30)
    enc.bit_rate = bitrate
    enc.options = {"preset": "ultrafast", "tune": "zerolatency", "bf": "0"}
    dec = av.CodecContext.create("h264", "r")
    out = []
    for i, img in enumerate([*frames, None]):
        f = None
        if img is not None:
            f = av.VideoFrame.from_ndarray(img, format="yuv420p")
            f.pts = i
        for pkt in enc.encode(f):
            out += dec.decode(pkt)
    out += dec.decode(None)
    return out


def test_bits_round_trip_and_unwrap():
    for ms in (0, 1, T, T + 999, stamp.TS_MOD - 1):
        assert stamp.decode_bits(stamp.encode_bits(ms)) == ms % stamp.TS_MOD
    assert stamp.unwrap_ms(T % stamp.TS_MOD, T + 5000) == T
    # just after a wrap of the 40-bit counter, the reader's clock picks the right epoch
    wrapped = 3 * stamp.TS_MOD + 10
    assert stamp.unwrap_ms(stamp.decode_bits(stamp.encode_bits(wrapped - 20)), wrapped) \
        == wrapped - 20


def test_crc_rejects_corrupted_codes():
    bits = stamp.encode_bits(T)
    for i in range(48):  # every single-bit error
        bad = bits.copy()
        bad[i] ^= 1
        assert stamp.decode_bits(bad) is None, i
    rng = random.Random(7)
    passed = 0
    for _ in range(3000):  # random multi-bit damage: an 8-bit CRC lets ~1/256 through
        bad = bits.copy()
        for i in rng.sample(range(48), rng.randint(2, 12)):
            bad[i] ^= 1
        passed += stamp.decode_bits(bad) is not None
    assert passed < 30


def test_stamped_frame_round_trip_and_text():
    img = stamp.stamped_yuv(1280, 720, T)
    assert img.shape == (1080, 1280)
    y = img[:720]
    assert set(np.unique(y[:500])) <= {stamp.BLACK, stamp.WHITE}
    assert (y[620:] == stamp.WHITE).any()  # the clock text is drawn under the grid
    frame = av.VideoFrame.from_ndarray(img, format="yuv420p")
    assert stamp.read_stamp(frame, now_ms=T) == T
    assert stamp.clock_text(T) == "05:08:55.889 UTC"


@pytest.mark.parametrize("size", [(1280, 720), (640, 360), (320, 180)])
def test_survives_scaling_to_a_quarter(size):
    w, h = size
    frame = av.VideoFrame.from_ndarray(stamp.stamped_yuv(w, h, T), format="yuv420p")
    small = frame.reformat(width=w // 4, height=h // 4, interpolation="BILINEAR")
    assert stamp.read_stamp(small, now_ms=T) == T


def test_no_code_in_plain_or_noisy_pictures():
    assert stamp.read_stamp(np.full((180, 320), 16, np.uint8), now_ms=T) is None
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 256, (180, 320), dtype=np.uint8)
    assert stamp.read_stamp(noise, now_ms=T) is None
    with pytest.raises(ValueError):
        stamp.read_stamp(noise, region=(0.5, 0, 0.4, 1))


def test_survives_x264_at_low_bitrate_in_a_2x2_tile():
    """720p stamp → a 320x180 tile of a 640x360 program (2x2 layout) → 150 kb/s H.264."""
    frames, truth = [], []
    for n in range(20):
        ms = T + n * 33
        tile = av.VideoFrame.from_ndarray(stamp.stamped_yuv(1280, 720, ms), format="yuv420p")
        tile = tile.reformat(width=320, height=180).to_ndarray()
        canvas = np.full((540, 640), 128, np.uint8)
        canvas[:360] = 70
        canvas[:180, 320:] = tile[:180]  # top-right tile (luma only is enough here)
        frames.append(canvas)
        truth.append(ms)
    decoded = encode_decode(frames, 640, 360, 150_000)
    assert len(decoded) == 20
    read = [stamp.read_stamp(f, region=(0.5, 0.0, 1.0, 0.5), now_ms=T) for f in decoded]
    assert read == truth
    # the whole-frame read sees no code there (the grid is not where it looks)
    assert all(stamp.read_stamp(f, now_ms=T) is None for f in decoded)


def test_survives_x264_full_frame_small_and_starved():
    frames = [stamp.stamped_yuv(320, 180, T + n * 33) for n in range(30)]
    decoded = encode_decode(frames, 320, 180, 60_000)
    ok = sum(stamp.read_stamp(f, now_ms=T) == T + n * 33 for n, f in enumerate(decoded))
    assert ok == 30


# --------------------------------------------------------------------------- audio


def expected_onsets(t0_ms: float, n_samples: int, rate: int = 48000) -> list[float]:
    """Sample positions of whole seconds of capture time within the track."""
    first = np.ceil(t0_ms / 1000) * 1000
    out = []
    t = first
    while (t - t0_ms) * rate / 1000 < n_samples - 0.06 * rate:
        out.append((t - t0_ms) * rate / 1000)
        t += 1000
    return out


@pytest.mark.parametrize("t0_ms", [T, T + 0.37, T + 123.5, T + 999.9])
def test_beep_onsets_within_a_millisecond(t0_ms):
    n = 48000 * 4
    x = stamp.beep_signal(t0_ms, 0, n)
    got = stamp.detect_onsets(x)
    want = expected_onsets(t0_ms, n)
    assert len(got) == len(want) >= 3
    assert max(abs(g - w) for g, w in zip(got, want, strict=True)) < 48  # ±1 ms
    assert max(abs(g - w) for g, w in zip(got, want, strict=True)) < 10  # in fact ±0.2 ms


def test_beep_onsets_with_noise_gain_and_chunks():
    rng = np.random.default_rng(3)
    n = 48000 * 5
    x = 0.4 * stamp.beep_signal(T + 250, 0, n) + rng.normal(0, 0.01, n).astype(np.float32)
    want = expected_onsets(T + 250, n)
    det = stamp.OnsetDetector()
    got: list[float] = []
    pos = 0
    while pos < n:  # decoded audio comes in frames of varying size
        k = int(rng.integers(500, 5000))
        got += det.feed(x[pos:pos + k], 100_000 + pos)
        pos += k
    assert len(got) == len(want)
    assert max(abs(g - 100_000 - w) for g, w in zip(got, want, strict=True)) < 48
    assert stamp.detect_onsets(rng.normal(0, 0.01, n).astype(np.float32)) == []


def test_beep_onsets_through_aac():
    """After an AAC round trip the beeps stay 1000 ms ± 1 ms apart (the codec's fixed delay
    shifts all of them alike)."""
    enc = av.CodecContext.create("aac", "w")
    enc.sample_rate, enc.layout, enc.format = 48000, "stereo", "fltp"
    enc.bit_rate, enc.time_base = 96_000, fractions.Fraction(1, 48000)
    enc.open()
    dec = av.CodecContext.create("aac", "r")
    dec.extradata = enc.extradata
    x = stamp.beep_signal(T + 600, 0, 48000 * 4)
    out = []
    for i in range(0, len(x), 1024):
        chunk = x[i:i + 1024]
        if len(chunk) < 1024:
            break
        f = av.AudioFrame.from_ndarray(np.stack([chunk, chunk]), format="fltp", layout="stereo")
        f.sample_rate, f.pts = 48000, i
        for pkt in enc.encode(f):
            out += [fr.to_ndarray()[0] for fr in dec.decode(pkt)]
    y = np.concatenate(out)
    got = stamp.detect_onsets(y)
    want = expected_onsets(T + 600, len(x))
    assert len(got) == len(want) == 4
    gaps = np.diff(got) / 48
    assert np.all(np.abs(gaps - 1000) < 1), gaps
    assert abs(got[0] - want[0] - 1024) < 48  # AAC's priming: 1024 samples
