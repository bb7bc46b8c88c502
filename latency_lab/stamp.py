"""Pure: the capture clock as pixels and as sound.

Video stamp: the picture is split into a grid of big black/white cells (8 × 6 = 48 bits:
the capture time in epoch milliseconds mod 2**40 (34.8 years, so it is unwrapped against the
reader's clock) + a CRC-8, XORed with a fixed whitening pattern so no value is all one colour)
over the top 82 % of the frame, and the clock as text in a strip below it for humans. Cells are
read from their central half with a threshold chosen from the cells themselves (two-cluster
split), so the code survives scaling to a quarter of the size, limited/full range changes and
low-bitrate H.264; a wrong read fails the CRC and gives None.

Audio: a 50 ms, 1 kHz tone burst starts exactly at every whole second of the capture clock;
`detect_onsets` finds burst onsets in decoded audio to well under a millisecond, so the A/V
offset of the output can be measured in media time.
"""

from __future__ import annotations

import datetime as dt
import functools
import time
from collections.abc import Sequence

import numpy as np

COLS, ROWS = 8, 6
TS_BITS = 40
TS_MOD = 1 << TS_BITS
GRID_BOTTOM = 0.82  # the grid covers y in [0, GRID_BOTTOM) of the stamped picture
WHITEN = 0x5A3C_96E1_B4D2  # 48 bits
BLACK, WHITE = 16, 235  # limited-range luma
MIN_CONTRAST = 40  # luma levels between the dark and the light cells, else no code

Region = tuple[float, float, float, float]  # x0, y0, x1, y1 as fractions of the frame

# --------------------------------------------------------------------------- bits


def crc8(data: bytes, poly: int = 0x07, init: int = 0xFF) -> int:
    crc = init
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = ((crc << 1) ^ poly) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def encode_bits(ms: int) -> np.ndarray:
    """48 bits (row-major over the grid) for a capture time in epoch ms."""
    ts = int(ms) % TS_MOD
    word = (ts << 8) | crc8(ts.to_bytes(5, "big"))
    word ^= WHITEN
    return np.array([(word >> (47 - i)) & 1 for i in range(48)], np.uint8)


def decode_bits(bits: Sequence[int]) -> int | None:
    """The 40-bit timestamp from 48 bits, or None when the CRC does not match."""
    word = 0
    for b in bits:
        word = (word << 1) | int(b)
    word ^= WHITEN
    ts, crc = word >> 8, word & 0xFF
    return ts if crc8(ts.to_bytes(5, "big")) == crc else None


def unwrap_ms(ts40: int, ref_ms: float) -> int:
    """The epoch ms whose low 40 bits are `ts40`, nearest to `ref_ms`."""
    k = round((ref_ms - ts40) / TS_MOD)
    return int(ts40 + k * TS_MOD)


# --------------------------------------------------------------------------- geometry


@functools.lru_cache(maxsize=32)
def _cell_index(width: int, height: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Pixel widths of the grid columns, pixel heights of its rows, and the grid's height."""
    gh = max(ROWS, round(height * GRID_BOTTOM))
    col_w = np.diff(np.round(np.linspace(0, width, COLS + 1)).astype(int))
    row_h = np.diff(np.round(np.linspace(0, gh, ROWS + 1)).astype(int))
    return row_h, col_w, gh


def draw_stamp(y: np.ndarray, ms: int) -> None:
    """Draw the code for `ms` into a luma plane (h × w, uint8) in place (grid part only)."""
    h, w = y.shape
    row_h, col_w, gh = _cell_index(w, h)
    lut = np.array([BLACK, WHITE], np.uint8)
    cells = lut[encode_bits(ms).reshape(ROWS, COLS)]
    y[:gh] = np.repeat(np.repeat(cells, col_w, axis=1), row_h, axis=0)


@functools.lru_cache(maxsize=8)
def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # pragma: no cover - Pillow without FreeType
        return ImageFont.load_default()


def clock_text(ms: int) -> str:
    t = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    return t.strftime("%H:%M:%S.") + f"{ms % 1000:03d} UTC"


def draw_text(y: np.ndarray, ms: int) -> None:
    """The clock as text (white on black) in the strip under the grid, in place."""
    from PIL import Image, ImageDraw

    h, w = y.shape
    top = _cell_index(w, h)[2]
    sh = h - top
    if sh < 8:
        return
    img = Image.new("L", (w, sh), BLACK)
    font = _font(max(6, int(sh * 0.7)))
    ImageDraw.Draw(img).text((w // 2, sh // 2), clock_text(ms), fill=WHITE, font=font,
                             anchor="mm")
    y[top:] = np.asarray(img)


def stamped_yuv(width: int, height: int, ms: int, text: bool = True) -> np.ndarray:
    """A yuv420p picture ((h*3/2) × w, uint8, the layout PyAV's from_ndarray takes)."""
    if width % 2 or height % 2:
        raise ValueError("width and height must be even for yuv420p")
    img = np.full((height * 3 // 2, width), 128, np.uint8)
    y = img[:height]
    draw_stamp(y, ms)
    if text:
        draw_text(y, ms)
    else:
        y[_cell_index(width, height)[2]:] = BLACK
    return img


def stamped_frame(width: int, height: int, ms: int, text: bool = True):
    import av

    return av.VideoFrame.from_ndarray(stamped_yuv(width, height, ms, text), format="yuv420p")


# --------------------------------------------------------------------------- reading


def luma(frame) -> np.ndarray:
    """The luma plane of a PyAV VideoFrame (or a 2-D array, returned as is)."""
    if isinstance(frame, np.ndarray):
        return frame
    if frame.format.name in ("yuv420p", "yuvj420p", "yuv422p", "yuv444p", "nv12", "gray"):
        p = frame.planes[0]
        return np.frombuffer(p, np.uint8).reshape(frame.height, p.line_size)[:, :frame.width]
    return frame.to_ndarray(format="gray")


def cell_means(y: np.ndarray, region: Region | None = None) -> np.ndarray:
    """Mean luma of the central half of each grid cell (ROWS × COLS floats)."""
    h, w = y.shape
    x0, y0, x1, y1 = region or (0.0, 0.0, 1.0, 1.0)
    px0, px1 = x0 * w, x1 * w
    py0 = y0 * h
    gh = (y1 - y0) * h * GRID_BOTTOM
    cw, ch = (px1 - px0) / COLS, gh / ROWS
    out = np.empty((ROWS, COLS))
    for r in range(ROWS):
        ya = int(py0 + (r + 0.25) * ch)
        yb = max(ya + 1, round(py0 + (r + 0.75) * ch))
        for c in range(COLS):
            xa = int(px0 + (c + 0.25) * cw)
            xb = max(xa + 1, round(px0 + (c + 0.75) * cw))
            out[r, c] = y[ya:yb, xa:xb].mean()
    return out


def threshold_cells(means: np.ndarray) -> np.ndarray | None:
    """Bits from cell means: two-cluster split (iterative mean), None when there's no contrast."""
    v = means.ravel()
    lo, hi = float(v.min()), float(v.max())
    if hi - lo < MIN_CONTRAST:
        return None
    t = (lo + hi) / 2
    for _ in range(8):
        a, b = v[v < t], v[v >= t]
        if not len(a) or not len(b):
            return None
        nt = (a.mean() + b.mean()) / 2
        if abs(nt - t) < 0.5:
            break
        t = nt
    a, b = v[v < t], v[v >= t]
    if b.mean() - a.mean() < MIN_CONTRAST:
        return None
    return (v >= t).astype(np.uint8)


def read_stamp(frame, region: Region | None = None, now_ms: float | None = None) -> int | None:
    """The capture time (epoch ms) stamped in a decoded frame, or None."""
    y = luma(frame)
    h, w = y.shape
    if region is not None:
        x0, y0, x1, y1 = region
        if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
            raise ValueError(f"region {region} must be fractions x0 < x1, y0 < y1 in [0, 1]")
    if w < COLS * 2 or h < ROWS * 3:
        return None
    bits = threshold_cells(cell_means(y, region))
    if bits is None:
        return None
    ts = decode_bits(bits)
    if ts is None:
        return None
    return unwrap_ms(ts, time.time() * 1000 if now_ms is None else now_ms)


# --------------------------------------------------------------------------- audio

BEEP_HZ = 1000.0
BEEP_MS = 50.0
BEEP_AMP = 0.5


def beep_signal(t0_ms: float, start: int, count: int, rate: int = 48000) -> np.ndarray:
    """Mono float32 samples `start..start+count` of a track whose sample 0 is captured at
    `t0_ms` (epoch ms): a 1 kHz burst of BEEP_MS starting at every whole second, else silence."""
    t_ms = t0_ms + (start + np.arange(count)) * (1000.0 / rate)
    ph = np.mod(t_ms, 1000.0)  # ms into the current second
    on = ph < BEEP_MS
    return np.where(on, BEEP_AMP * np.sin(2 * np.pi * BEEP_HZ * ph / 1000.0), 0.0).astype(
        np.float32)


def envelope(x: np.ndarray, rate: int = 48000, freq: float = BEEP_HZ) -> np.ndarray:
    """Amplitude of the `freq` component over a trailing window of one period (I/Q)."""
    n = round(rate / freq)
    t = np.arange(len(x)) / rate
    iq = x.astype(np.float64) * np.exp(-2j * np.pi * freq * t)
    c = np.concatenate([[0], np.cumsum(iq)])
    env = np.zeros(len(x))
    if len(x) >= n:
        env[n - 1:] = 2 * np.abs(c[n:] - c[:-n]) / n
    return env


def detect_onsets(x: np.ndarray, rate: int = 48000, min_amp: float = 0.03,
                  refractory_s: float = 0.5, freq: float = BEEP_HZ) -> list[float]:
    """Onsets (fractional sample positions) of `freq` tone bursts in mono audio `x`.

    A burst is where the tone's envelope rises through `min_amp` after being below it; its
    onset is where the envelope crosses half the burst's peak, less the half window that a
    one-period moving average takes to rise (for a burst switched on at once)."""
    n = round(rate / freq)
    env = envelope(x, rate, freq)
    above = env >= min_amp
    rises = np.flatnonzero(above[1:] & ~above[:-1]) + 1
    out: list[float] = []
    peak_win = int(0.03 * rate)
    for k in rises:
        if k < 2 * n or (out and k - out[-1] < refractory_s * rate):
            continue
        seg = env[k:k + peak_win]
        if len(seg) < peak_win // 2:
            break  # the burst's peak is not in `x` yet
        half = seg.max() / 2
        j = k - n
        while j < len(env) - 1 and env[j] < half:
            j += 1
        a, b = env[j - 1], env[j]
        c = j - 1 + ((half - a) / (b - a) if b > a else 1.0)
        out.append(c - n / 2 + 1)
    return out


class OnsetDetector:
    """Streaming `detect_onsets`: feed decoded audio as it comes, with its absolute sample
    position (pts in 1/rate units); onsets come back as absolute sample positions."""

    def __init__(self, rate: int = 48000, min_amp: float = 0.03) -> None:
        self.rate, self.min_amp = rate, min_amp
        self._buf = np.zeros(0, np.float32)
        self._start = 0  # absolute position of _buf[0]
        self._last: float | None = None

    def feed(self, samples: np.ndarray, position: int) -> list[float]:
        if len(self._buf) and position != self._start + len(self._buf):
            self._buf = np.zeros(0, np.float32)  # a gap or an overlap: start over
        if not len(self._buf):
            self._start = position
        self._buf = np.concatenate([self._buf, samples.astype(np.float32)])
        found = []
        for o in detect_onsets(self._buf, self.rate, self.min_amp):
            pos = self._start + o
            if self._last is None or pos - self._last > 0.5 * self.rate:
                found.append(pos)
                self._last = pos
        keep = int(0.2 * self.rate)
        if len(self._buf) > keep:
            self._start += len(self._buf) - keep
            self._buf = self._buf[-keep:]
        return found
