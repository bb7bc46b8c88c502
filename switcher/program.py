"""The unit the switcher hands to its outputs (the packager, snapshots, monitors)."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np

AUDIO_RATE = 48000


def samples_for_frame(index: int, fps: int, rate: int = AUDIO_RATE) -> int:
    """Audio samples that belong to output frame `index` (exact over any run: no drift)."""
    return (index + 1) * rate // fps - index * rate // fps


def first_sample_of_frame(index: int, fps: int, rate: int = AUDIO_RATE) -> int:
    return index * rate // fps


@dataclass(frozen=True, slots=True)
class ProgramFrame:
    """One output frame of a production, on the output clock.

    Timestamps come from the output clock (frame counter x frame duration), never from inputs,
    so cuts and reconnects cannot break monotonicity. `audio` holds exactly the samples that
    belong to this frame (see `samples_for_frame`), so audio and video cannot drift.
    """

    index: int  # output frame counter, from 0
    fps: int
    video: av.VideoFrame  # yuv420p, production size, pts == index, time_base == 1/fps
    audio: np.ndarray  # (n, 2) float32 in [-1, 1], 48 kHz stereo, n == samples_for_frame(index)
    # Wall-clock marks (time.time()): 'captured'/'arrived'/'decoded' of the frame on air (when
    # a source is on air), 'tick' when the output clock fired, 'composited' when done.
    marks: dict[str, float] = field(default_factory=dict)
    on_air: tuple[str, ...] = ()  # source ids visible in program

    @property
    def pts(self) -> int:
        return self.index

    @property
    def time_base(self) -> Fraction:
        return Fraction(1, self.fps)

    @property
    def audio_pts(self) -> int:
        """First audio sample index of this frame (time base 1/48000)."""
        return first_sample_of_frame(self.index, self.fps)
