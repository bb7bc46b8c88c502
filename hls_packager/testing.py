"""Synthetic program frames (moving gradient + tone) for tests and benchmarks."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from fractions import Fraction

import av
import numpy as np

from switcher.program import AUDIO_RATE, ProgramFrame, first_sample_of_frame, samples_for_frame


def make_program_frame(index: int, fps: int = 30, width: int = 320, height: int = 180,
                       tone_hz: float = 440.0, marks: dict[str, float] | None = None
                       ) -> ProgramFrame:
    """Frame `index` of a moving luma gradient with a box, and a sine tone (exact samples).

    `height` must be a multiple of 4 (yuv420p planes packed as one (h*3/2, w) array)."""
    if width % 2 or height % 4:
        raise ValueError("width must be even and height a multiple of 4")
    x = np.arange(width, dtype=np.uint16)
    y = np.arange(height, dtype=np.uint16)[:, None]
    luma = ((x[None, :] + y + index * 4) % 220 + 16).astype(np.uint8)
    bx = (index * 7) % max(1, width - 32)
    luma[height // 4 : height // 4 + 32, bx : bx + 32] = 235
    cw, ch = width // 2, height // 2
    u = np.full((ch, cw), 128 + (index % 60) - 30, np.uint8)
    v = np.full((ch, cw), 128, np.uint8)
    planes = np.concatenate([luma, u.reshape(-1, width), v.reshape(-1, width)])
    frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
    frame.pts = index
    frame.time_base = Fraction(1, fps)
    n = samples_for_frame(index, fps)
    t = (first_sample_of_frame(index, fps) + np.arange(n)) / AUDIO_RATE
    mono = (0.2 * np.sin(2 * np.pi * tone_hz * t)).astype(np.float32)
    audio = np.stack([mono, mono], axis=1)
    now = time.time()
    m = {"captured": now, "tick": now, "composited": now} if marks is None else marks
    return ProgramFrame(index, fps, frame, audio, m)


def program_frames(count: int, fps: int = 30, width: int = 320, height: int = 180,
                   start: int = 0) -> Iterator[ProgramFrame]:
    for i in range(start, start + count):
        yield make_program_frame(i, fps, width, height)


class RealtimeFeeder:
    """Pushes synthetic frames into a packager from a thread, paced like the switcher clock.

    `push` is anything taking a ProgramFrame (e.g. ``Packager.push``). Frames whose time has
    passed are pushed at once (a late clock catches up), so media time follows the wall clock.
    With `cycle` > 0 the first `cycle` pictures (and their audio) are made once and repeated,
    so drawing them costs the process nothing (a load benchmark measures the server, not the
    synthetic source); at 30 fps a cycle of 30 keeps the 440 Hz tone continuous.
    """

    def __init__(self, push: Callable[[ProgramFrame], None], fps: int = 30, width: int = 320,
                 height: int = 180, start: int = 0, cycle: int = 0) -> None:
        self._push = push
        self.fps, self.width, self.height = fps, width, height
        self.index = start
        self._cycle = [make_program_frame(start + i, fps, width, height) for i in range(cycle)]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hls-feeder", daemon=True)

    def start(self) -> RealtimeFeeder:
        self._thread.start()
        return self

    def _frame(self, index: int) -> ProgramFrame:
        if not self._cycle:
            return make_program_frame(index, self.fps, self.width, self.height)
        c = self._cycle[index % len(self._cycle)]
        now = time.time()
        return ProgramFrame(index, self.fps, c.video, c.audio,
                            {"captured": now, "tick": now, "composited": now})

    def _run(self) -> None:
        t0 = time.monotonic()
        n = 0
        while not self._stop.is_set():
            self._push(self._frame(self.index))
            self.index += 1
            n += 1
            self._stop.wait(max(0.0, t0 + n / self.fps - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
