"""Built-in test sources: colour bars with a running clock and tone, or a solid colour.

Frames are made directly as yuv420p: the background planes are computed once per size, and per
frame only a small text patch (the clock or the frame counter) is re-rendered with Pillow into
the Y plane (its chroma is neutral in the background already). A 1280x720@30 bars source costs
a few percent of one core.

Colours use BT.601 limited-range coefficients, which is what PyAV/swscale assume by default when
converting an untagged yuv420p frame back to RGB.

Pacing uses absolute deadlines on the monotonic clock (frame n at t0 + n/fps). When the thread
falls more than a frame behind (a busy machine), it skips ahead to the frame due now instead of
bursting; skipped frames are counted as dropped on the source. Audio (48 kHz stereo fltp, 960
samples per frame, continuous pts) is paced by sample count against the same clock and pushed
in step with video, always covering media time up to the next video frame.

The printed clock is the wall-clock time (local time, HH:MM:SS.mmm) at which the frame was made;
it is also the frame's ``captured`` mark, so glass-to-glass latency can be read off a screen.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import threading
import time
from datetime import datetime
from fractions import Fraction
from typing import Literal

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from media_server.source import AUDIO_CHANNELS, AUDIO_RATE, Source

log = logging.getLogger(__name__)

Pattern = Literal["bars", "solid"]
PATTERNS: tuple[str, ...] = ("bars", "solid")

AUDIO_CHUNK = 960  # 20 ms at 48 kHz
TONE_DBFS = -20.0
FONT_PATHS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
)
MAX_LABEL_CHARS = 32
# When audio is this far behind the clock (after a stall), jump ahead instead of bursting.
AUDIO_MAX_CATCHUP_S = 0.2

# 75% SMPTE-like bars (RGB 0..1).
_W75, _Y75, _C75, _G75 = (0.75, 0.75, 0.75), (0.75, 0.75, 0), (0, 0.75, 0.75), (0, 0.75, 0)
_M75, _R75, _B75 = (0.75, 0, 0.75), (0.75, 0, 0), (0, 0, 0.75)
_BLACK, _WHITE = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
TOP_BARS = (_W75, _Y75, _C75, _G75, _M75, _R75, _B75)
MID_BARS = (_B75, _BLACK, _M75, _BLACK, _C75, _BLACK, _W75)
_MINUS_I, _PLUS_Q = (0.0, 0.13, 0.30), (0.20, 0.0, 0.42)


def parse_color(color: str) -> tuple[float, float, float]:
    """'#rrggbb' (or 'rrggbb') → RGB in 0..1. Raises ValueError naming the bad value."""
    s = color.strip().removeprefix("#")
    if len(s) != 6 or any(c not in "0123456789abcdefABCDEF" for c in s):
        raise ValueError(f"color must be '#rrggbb', got {color!r}")
    return (int(s[0:2], 16) / 255, int(s[2:4], 16) / 255, int(s[4:6], 16) / 255)


def _bars_rgb_half(w2: int, h2: int) -> np.ndarray:
    """The bars picture at chroma resolution (h2, w2, 3), RGB 0..1.

    Built at half resolution and upsampled for luma, so every colour edge falls on an even
    luma column/row and chroma never bleeds across a bar."""
    img = np.zeros((h2, w2, 3), dtype=np.float32)
    cols = (np.arange(w2) * 7) // w2  # bar index 0..6 per chroma column
    top_end = round(h2 * 2 / 3)
    mid_end = round(h2 * 3 / 4)
    img[:top_end] = np.asarray(TOP_BARS, dtype=np.float32)[cols][None, :, :]
    img[top_end:mid_end] = np.asarray(MID_BARS, dtype=np.float32)[cols][None, :, :]
    # Bottom: -I, white, +Q, black across the first 5 bars (4 equal blocks), then PLUGE
    # (sub-black, black, +4% black) under bar 5, black under bar 6.
    x = np.arange(w2)
    five = (w2 * 5) // 7
    bottom = np.zeros((w2, 3), dtype=np.float32)
    block = np.minimum((x * 4) // max(five, 1), 3)
    for i, c in enumerate((_MINUS_I, _WHITE, _PLUS_Q, _BLACK)):
        bottom[(x < five) & (block == i)] = c
    six = (w2 * 6) // 7
    pl = np.clip(((x - five) * 3) // max(six - five, 1), 0, 2)
    bottom[(x >= five) & (x < six) & (pl == 2)] = (0.04, 0.04, 0.04)
    img[mid_end:] = bottom[None, :, :]
    return img


def _yuv_planes_from_half_rgb(rgb_half: np.ndarray) -> tuple[np.ndarray, ...]:
    r, g, b = rgb_half[..., 0], rgb_half[..., 1], rgb_half[..., 2]
    y = np.clip(np.rint(16 + 65.481 * r + 128.553 * g + 24.966 * b), 0, 255).astype(np.uint8)
    u = np.clip(np.rint(128 - 37.797 * r - 74.203 * g + 112.0 * b), 0, 255).astype(np.uint8)
    v = np.clip(np.rint(128 + 112.0 * r - 93.786 * g - 18.214 * b), 0, 255).astype(np.uint8)
    y_full = np.repeat(np.repeat(y, 2, axis=0), 2, axis=1)
    return y_full, u, v


def _load_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for path in FONT_PATHS:
        if os.path.exists(path):
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size=size)


class _TextPatch:
    """A black box with up to two text lines in the Y plane; chroma under it is neutral.

    Line 1 changes per frame (clock or counter) and is re-rendered; line 2 (the label) is drawn
    once into the background."""

    def __init__(self, width: int, height: int, sample_text: str, label: str | None) -> None:
        self.font = _load_font(max(10, height // 16))
        pad = max(4, height // 90)
        asc, desc = self.font.getmetrics()
        self.line_h = asc + desc
        lines = 2 if label else 1
        texts = [sample_text] + ([label] if label else [])
        text_w = max(int(self.font.getlength(t)) for t in texts)
        pw = min(width, text_w + 2 * pad)
        ph = min(height, self.line_h * lines + 2 * pad)
        pw, ph = pw + (pw % 2), ph + (ph % 2)
        pw, ph = min(pw, width - width % 2), min(ph, height - height % 2)
        self.w, self.h, self.pad = pw, ph, pad
        self.x = ((width - pw) // 2) & ~1
        self.y = (height * 3 // 8 - ph // 2) & ~1
        self.y = max(0, min(self.y, height - ph)) & ~1
        self.label = label
        # Y values: 16 (black) .. 235 (white) from Pillow's 0..255 coverage.
        self.lut = (16 + np.arange(256, dtype=np.float32) * (219 / 255)).round().astype(np.uint8)
        self.clock_h = min(self.line_h + pad, ph)

    def paint_background(self, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
        """Draw the black box, the neutral chroma and the static label line."""
        img = Image.new("L", (self.w, self.h), 0)
        if self.label:
            ImageDraw.Draw(img).text((self.pad, self.pad + self.line_h), self.label,
                                     fill=255, font=self.font)
        y[self.y:self.y + self.h, self.x:self.x + self.w] = self.lut[np.asarray(img)]
        cy, cx, ch, cw = self.y // 2, self.x // 2, self.h // 2, self.w // 2
        u[cy:cy + ch, cx:cx + cw] = 128
        v[cy:cy + ch, cx:cx + cw] = 128

    def render_line(self, text: str) -> np.ndarray:
        img = Image.new("L", (self.w, self.clock_h), 0)
        ImageDraw.Draw(img).text((self.pad, self.pad), text, fill=255, font=self.font)
        return self.lut[np.asarray(img)]


class TestInput:
    """A synthetic source: ``bars`` (colour bars, clock, label, tone) or ``solid`` (a colour
    with a frame counter and label; silent audio).

    ``start()`` runs the generator in a daemon thread that writes into ``source``; stop with
    ``stop_sync()`` or ``await stop()``."""

    __test__ = False  # not a pytest test class

    def __init__(self, source: Source, pattern: Pattern = "bars", width: int = 1280,
                 height: int = 720, fps: float = 30, *, color: str = "#0050a0",
                 tone_hz: float = 1000, label: str | None = None) -> None:
        if pattern not in PATTERNS:
            raise ValueError(f"pattern must be one of {PATTERNS}, got {pattern!r}")
        if not (isinstance(width, int) and isinstance(height, int)):
            raise ValueError("width and height must be integers")
        if width < 16 or height < 16 or width > 7680 or height > 4320:
            raise ValueError(f"size {width}x{height} out of range (16x16 .. 7680x4320)")
        if width % 2 or height % 2:
            raise ValueError(f"width and height must be even for yuv420p, got {width}x{height}")
        if not (0 < fps <= 120):
            raise ValueError(f"fps must be in (0, 120], got {fps}")
        if not (0 <= tone_hz < AUDIO_RATE / 2):
            raise ValueError(f"tone_hz must be in [0, {AUDIO_RATE // 2}), got {tone_hz}")
        self.source = source
        self.pattern: Pattern = pattern
        self.width, self.height = width, height
        self.fps = Fraction(fps).limit_denominator(1001)
        self.color = color
        self.rgb = parse_color(color)
        self.tone_hz = float(tone_hz) if pattern == "bars" else 0.0
        self.label = label[:MAX_LABEL_CHARS] if label else None
        self.time_base = 1 / self.fps
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.cpu_seconds = 0.0  # CPU time spent by the generator thread
        self.frames_skipped = 0  # frames skipped because the thread ran late
        self._build_background()

    # --- frame building ------------------------------------------------------------------
    def _build_background(self) -> None:
        w2, h2 = self.width // 2, self.height // 2
        if self.pattern == "bars":
            rgb_half = _bars_rgb_half(w2, h2)
            sample = "00:00:00.000"
        else:
            rgb_half = np.broadcast_to(np.asarray(self.rgb, dtype=np.float32), (h2, w2, 3))
            sample = "frame 0000000"
        y, u, v = _yuv_planes_from_half_rgb(rgb_half)
        y, u, v = y.copy(), u.copy(), v.copy()
        self._patch = _TextPatch(self.width, self.height, sample, self.label)
        self._patch.paint_background(y, u, v)
        self._planes = (y, u, v)

    def _text_for(self, n: int, wall: float) -> str:
        if self.pattern == "bars":
            return datetime.fromtimestamp(wall).strftime("%H:%M:%S.%f")[:-3]
        return f"frame {n:07d}"

    def make_video_frame(self, n: int, wall: float) -> av.VideoFrame:
        """Frame number ``n`` (pts=n, time_base=1/fps), stamped for wall-clock time ``wall``."""
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        for plane, src in zip(frame.planes, self._planes, strict=True):
            rows, cols = src.shape
            dst = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:rows, :cols]
            dst[:] = src
        p = self._patch
        line = p.render_line(self._text_for(n, wall))
        ydst = np.frombuffer(frame.planes[0], np.uint8).reshape(-1, frame.planes[0].line_size)
        ydst[p.y:p.y + line.shape[0], p.x:p.x + line.shape[1]] = line
        frame.pts = n
        frame.time_base = self.time_base
        return frame

    def make_audio_frame(self, first_sample: int, n_samples: int = AUDIO_CHUNK) -> av.AudioFrame:
        """``n_samples`` of 48 kHz stereo fltp starting at sample index ``first_sample``; the
        tone's phase follows the sample index, so it stays continuous across frames."""
        if self.tone_hz > 0:
            amp = 10 ** (TONE_DBFS / 20)
            t = (first_sample + np.arange(n_samples, dtype=np.float64)) / AUDIO_RATE
            mono = (amp * np.sin(2 * math.pi * self.tone_hz * t)).astype(np.float32)
        else:
            mono = np.zeros(n_samples, dtype=np.float32)
        data = np.ascontiguousarray(np.broadcast_to(mono, (AUDIO_CHANNELS, n_samples)))
        frame = av.AudioFrame.from_ndarray(data, format="fltp", layout="stereo")
        frame.sample_rate = AUDIO_RATE
        frame.pts = first_sample
        frame.time_base = Fraction(1, AUDIO_RATE)
        return frame

    # --- thread --------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("TestInput already started")
        src = self.source
        src.video_codec = "raw"
        src.audio_codec = "pcm"
        src.info = {"pattern": self.pattern, "width": self.width, "height": self.height,
                    "fps": float(self.fps), "label": self.label,
                    **({"color": self.color} if self.pattern == "solid" else
                       {"tone_hz": self.tone_hz})}
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"testsrc-{src.production_id}-{src.id}")
        self._thread.start()

    def _run(self) -> None:
        try:
            self._loop()
        except Exception as exc:  # never let the thread die silently
            log.exception("test source %s/%s failed", self.source.production_id, self.source.id)
            self.source.set_state("error", error=f"generator failed: {exc}")

    def _loop(self) -> None:
        src, fps = self.source, self.fps
        frame_s = float(1 / fps)
        cpu0 = time.thread_time()
        t0 = time.monotonic()
        n = 0
        samples = 0  # audio samples pushed so far == pts of the next audio frame
        while not self._stop.is_set():
            delay = t0 + n * frame_s - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                break
            due = int((time.monotonic() - t0) * fps)  # the frame that is due now
            if due > n + 1:  # more than one frame late: skip ahead, don't burst
                src.count_dropped(due - n)
                self.frames_skipped += due - n
                n = due
            wall = time.time()
            frame = self.make_video_frame(n, wall)
            src.push_video(frame, arrived=wall, decoded=wall, captured=wall)
            # Audio covers media time up to the next video frame.
            target = math.ceil((n + 1) * AUDIO_RATE / fps)
            if target - samples > AUDIO_MAX_CATCHUP_S * AUDIO_RATE:
                samples = target - AUDIO_CHUNK  # jump (pts gap) instead of a burst
            while samples < target:
                src.push_audio(self.make_audio_frame(samples))
                samples += AUDIO_CHUNK
            n += 1
            self.cpu_seconds = time.thread_time() - cpu0

    def stop_sync(self, wait_s: float = 2.0) -> None:
        self._stop.set()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(wait_s)

    async def stop(self, wait_s: float = 2.0) -> None:
        self._stop.set()
        t = self._thread
        if t is not None and t.is_alive():
            await asyncio.to_thread(t.join, wait_s)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
