"""Fit any `av.VideoFrame` into a box as yuv420p planes: letter/pillar-box, never stretched.

Scaling and pixel-format conversion go through libswscale (PyAV's `VideoReformatter`); one
reformatter is kept per (source size, source format, fitted size) so its SwsContext stays warm.
Pixels are assumed square (sample aspect ratio is ignored). Fitted sizes and offsets are even so
the chroma planes line up with the canvas.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import av
import numpy as np
from av.video.reformatter import Interpolation, VideoReformatter


@dataclass(frozen=True, slots=True)
class Fitted:
    """A picture fitted into a box of `box_w` x `box_h`: planes of the picture itself (no bars)
    and its even offset (`ox`, `oy`) inside the box. The bars are the box background."""

    y: np.ndarray  # (fh, fw) uint8
    u: np.ndarray  # (fh/2, fw/2) uint8
    v: np.ndarray
    ox: int
    oy: int
    box_w: int
    box_h: int
    frame: av.VideoFrame | None = None  # the yuv420p frame the planes view (read-only)

    @property
    def covers_box(self) -> bool:
        return self.ox == 0 and self.oy == 0 and self.y.shape == (self.box_h, self.box_w)


def _even(x: float) -> int:
    return max(2, round(x / 2.0) * 2)


def fit_size(src_w: int, src_h: int, box_w: int, box_h: int) -> tuple[int, int, int, int]:
    """(fitted_w, fitted_h, ox, oy) of a src_w x src_h picture fitted into the box keeping its
    aspect ratio; all even, fitted size within the box."""
    if src_w <= 0 or src_h <= 0:
        raise ValueError("empty source")
    scale = min(box_w / src_w, box_h / src_h)
    fw = min(box_w, _even(src_w * scale))
    fh = min(box_h, _even(src_h * scale))
    # Snap to the box when within a pixel pair (e.g. 1920x1080 -> 1280x720 exactly).
    if abs(fw - box_w) <= 2 and fh == box_h:
        fw = box_w
    if abs(fh - box_h) <= 2 and fw == box_w:
        fh = box_h
    ox = ((box_w - fw) // 2) & ~1
    oy = ((box_h - fh) // 2) & ~1
    return fw, fh, ox, oy


def yuv420p_planes(frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Numpy views (no copy) of a yuv420p frame's planes, cropped to the visible size.
    The views keep the frame's buffers alive."""
    if frame.format.name != "yuv420p":
        raise ValueError(f"expected yuv420p, got {frame.format.name}")
    out = []
    for i, plane in enumerate(frame.planes):
        w = frame.width if i == 0 else (frame.width + 1) // 2
        h = frame.height if i == 0 else (frame.height + 1) // 2
        arr = np.frombuffer(memoryview(plane), dtype=np.uint8)
        out.append(arr[: h * plane.line_size].reshape(h, plane.line_size)[:, :w])
    return out[0], out[1], out[2]


class Scaler:
    """Fits frames into boxes; keeps one warm libswscale context per conversion (LRU bounded).

    Not thread-safe: one per tick thread."""

    def __init__(self, *, interpolation: str = "BILINEAR", threads: int = 1,
                 max_contexts: int = 64) -> None:
        self._interp = Interpolation[interpolation]
        self._threads = threads
        self._max = max_contexts
        self._reformatters: OrderedDict[tuple, VideoReformatter] = OrderedDict()
        self.reformats = 0  # scaling/conversion calls done (for stats and tests)

    def fit(self, frame: av.VideoFrame, box_w: int, box_h: int) -> Fitted:
        fw, fh, ox, oy = fit_size(frame.width, frame.height, box_w, box_h)
        fmt = frame.format.name
        if fmt == "yuv420p" and frame.width == fw and frame.height == fh:
            y, u, v = yuv420p_planes(frame)
            return Fitted(y, u, v, ox, oy, box_w, box_h, frame)
        key = (frame.width, frame.height, fmt, fw, fh)
        ref = self._reformatters.get(key)
        if ref is None:
            ref = VideoReformatter()
            self._reformatters[key] = ref
            if len(self._reformatters) > self._max:
                self._reformatters.popitem(last=False)
        else:
            self._reformatters.move_to_end(key)
        out = ref.reformat(frame, width=fw, height=fh, format="yuv420p",
                           interpolation=self._interp, threads=self._threads)
        self.reformats += 1
        y, u, v = yuv420p_planes(out)
        return Fitted(y, u, v, ox, oy, box_w, box_h, out)

    @property
    def contexts(self) -> int:
        return len(self._reformatters)


class FrameRef:
    """New `av.VideoFrame` objects sharing another frame's (refcounted) buffers: zero copy.

    PyAV has no frame-ref API, so this pushes the frame through FFmpeg's ``null`` filter (an
    av_frame_ref). The new object gets its own pts/time_base; its pixels must be treated as
    read-only (they are the source's). Not thread-safe."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._src: Any = None
        self._sink: Any = None

    def ref(self, frame: av.VideoFrame) -> av.VideoFrame:
        key = (frame.width, frame.height, frame.format.name)
        if key != self._key:
            g = av.filter.Graph()
            self._src = g.add_buffer(width=frame.width, height=frame.height,
                                     format=frame.format.name, time_base="1/90000")
            null, self._sink = g.add("null"), g.add("buffersink")
            self._src.link_to(null)
            null.link_to(self._sink)
            g.configure()
            self._graph, self._key = g, key
        self._src.push(frame)
        return self._sink.pull()


def jpeg_image(frame: av.VideoFrame) -> Any:
    """A Pillow RGB image of a frame that other threads may be using too.

    `frame.to_image()`/`frame.reformat()` go through a converter cached on the frame object
    itself; two threads doing that on one frame (two consoles polling program.jpg, a snapshot
    while an encoder scales) crash or deadlock inside PyAV. A converter of our own per call
    only reads the shared pixels."""
    return VideoReformatter().reformat(frame, format="rgb24").to_image()


def encode_jpeg(frame: av.VideoFrame, quality: int = 80) -> bytes:
    """JPEG bytes of a (possibly shared) frame, for snapshots. Blocking: call off the loop."""
    buf = io.BytesIO()
    jpeg_image(frame).save(buf, format="JPEG", quality=int(quality))
    return buf.getvalue()
