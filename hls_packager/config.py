"""Typed, strict configuration of the HLS output (frozen dataclasses, bad field named).

Defaults follow gohlslib/MediaMTX: 200 ms parts, 1 s segments, 7 segments in the live window.
The default ladder (720p30 ~2.5 Mbit/s + 360p30 ~0.6 Mbit/s) is what a 2-core machine sustains
with libx264 `veryfast`.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class HlsConfigError(ValueError):
    """A configuration value is unknown or invalid; the message names the field."""


VIDEO_ENCODERS = ("libx264", "h264_nvenc")
X264_PRESETS = (
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
    "veryslow",
)
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


@dataclass(frozen=True)
class RenditionConfig:
    name: str = "720p"
    width: int = 1280
    height: int = 720
    video_bitrate: int = 2_500_000  # bit/s, average (x264 ABR with VBV)
    # Peak rate the VBV enforces; BANDWIDTH in the multivariant playlist is derived from it.
    max_bitrate: int = 0  # 0: 1.25 x video_bitrate
    audio_bitrate: int = 128_000
    encoder: str = "libx264"  # or "h264_nvenc" where FFmpeg has it

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise HlsConfigError(f"name: {self.name!r} must match [A-Za-z0-9_-]{{1,32}}")
        for fname in ("width", "height"):
            v = getattr(self, fname)
            if not isinstance(v, int) or v < 16 or v > 7680 or v % 2:
                raise HlsConfigError(f"{fname}: {v!r} must be an even int in 16..7680")
        if not isinstance(self.video_bitrate, int) or not 50_000 <= self.video_bitrate <= 50e6:
            raise HlsConfigError(f"video_bitrate: {self.video_bitrate!r} out of 50k..50M")
        if not isinstance(self.max_bitrate, int) or (
            self.max_bitrate and self.max_bitrate < self.video_bitrate
        ):
            raise HlsConfigError("max_bitrate: must be 0 or >= video_bitrate")
        if not isinstance(self.audio_bitrate, int) or not 32_000 <= self.audio_bitrate <= 512_000:
            raise HlsConfigError(f"audio_bitrate: {self.audio_bitrate!r} out of 32k..512k")
        if self.encoder not in VIDEO_ENCODERS:
            raise HlsConfigError(f"encoder: {self.encoder!r} not one of {VIDEO_ENCODERS}")

    @property
    def peak_video_bitrate(self) -> int:
        return self.max_bitrate or int(self.video_bitrate * 1.25)


def default_ladder() -> tuple[RenditionConfig, ...]:
    return (
        RenditionConfig("720p", 1280, 720, 2_500_000),
        RenditionConfig("360p", 640, 360, 600_000, audio_bitrate=96_000),
    )


@dataclass(frozen=True)
class HlsConfig:
    part_target_s: float = 0.2
    segment_target_s: float = 1.0
    window_segments: int = 7
    preset: str = "veryfast"
    renditions: tuple[RenditionConfig, ...] = field(default_factory=default_ladder)
    # Program frames waiting for one rendition's encoder; the oldest is dropped (counted).
    queue_frames: int = 4
    # Blocking playlist/part requests are answered 503 after this many target durations.
    block_timeout_targets: float = 3.0
    # Optional: also write plain files (playlists, init, parts, segments) here for nginx/a CDN.
    output_dir: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.part_target_s, int | float) or not 0.05 <= self.part_target_s <= 2:
            raise HlsConfigError(f"part_target_s: {self.part_target_s!r} out of 0.05..2")
        if not isinstance(self.segment_target_s, int | float) or not (
            0.5 <= self.segment_target_s <= 10
        ):
            raise HlsConfigError(f"segment_target_s: {self.segment_target_s!r} out of 0.5..10")
        if self.segment_target_s < self.part_target_s:
            raise HlsConfigError("segment_target_s: must be >= part_target_s")
        if not isinstance(self.window_segments, int) or not 3 <= self.window_segments <= 100:
            raise HlsConfigError(f"window_segments: {self.window_segments!r} out of 3..100")
        if self.preset not in X264_PRESETS:
            raise HlsConfigError(f"preset: {self.preset!r} not one of {X264_PRESETS}")
        if not isinstance(self.renditions, tuple) or not self.renditions:
            raise HlsConfigError("renditions: at least one rendition (a tuple) is needed")
        names = [r.name for r in self.renditions]
        if len(set(names)) != len(names):
            raise HlsConfigError(f"renditions: duplicate names {names}")
        if not isinstance(self.queue_frames, int) or not 1 <= self.queue_frames <= 64:
            raise HlsConfigError(f"queue_frames: {self.queue_frames!r} out of 1..64")
        if not 1.0 <= self.block_timeout_targets <= 10.0:
            raise HlsConfigError("block_timeout_targets: out of 1..10")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HlsConfig:
        """Build from a TOML/JSON mapping; unknown keys are rejected with their dotted name."""
        known = {f.name for f in dataclasses.fields(cls)}
        for key in data:
            if key not in known:
                raise HlsConfigError(f"hls.{key}: unknown key")
        kwargs = dict(data)
        if "renditions" in kwargs:
            rknown = {f.name for f in dataclasses.fields(RenditionConfig)}
            rends = []
            for i, r in enumerate(kwargs["renditions"]):
                for key in r:
                    if key not in rknown:
                        raise HlsConfigError(f"hls.renditions[{i}].{key}: unknown key")
                try:
                    rends.append(RenditionConfig(**r))
                except HlsConfigError as e:
                    raise HlsConfigError(f"hls.renditions[{i}].{e}") from None
            kwargs["renditions"] = tuple(rends)
        try:
            return cls(**kwargs)
        except HlsConfigError as e:
            raise HlsConfigError(f"hls.{e}") from None


@dataclass(frozen=True)
class Timing:
    """Frame-exact part and segment grid for one frame rate (derived from HlsConfig)."""

    fps: int
    part_frames: int
    segment_frames: int  # == GOP; a multiple of part_frames

    @classmethod
    def from_config(cls, cfg: HlsConfig, fps: int) -> Timing:
        if not isinstance(fps, int) or not 1 <= fps <= 240:
            raise HlsConfigError(f"fps: {fps!r} out of 1..240")
        pf = max(1, round(cfg.part_target_s * fps))
        sf = max(pf, round(cfg.segment_target_s * fps))
        sf = -(-sf // pf) * pf  # round up to whole parts
        return cls(fps, pf, sf)

    @property
    def part_target_s(self) -> float:
        return self.part_frames / self.fps

    @property
    def segment_target_s(self) -> float:
        return self.segment_frames / self.fps

    @property
    def target_duration(self) -> int:
        """EXT-X-TARGETDURATION: integer seconds, >= every rounded segment duration."""
        return max(1, math.floor(self.segment_target_s + 0.5))

    @property
    def parts_per_segment(self) -> int:
        return self.segment_frames // self.part_frames
