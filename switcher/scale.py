"""Fit any `av.VideoFrame` into a box as yuv420p planes: letter/pillar-box, never stretched.

yuv420p pictures are scaled plane by plane with OpenCV; other pixel formats are converted
and scaled by libswscale in a small FFmpeg filter graph (see `Scaler`).
Pixels are assumed square (sample aspect ratio is ignored). Fitted sizes and offsets are even so
the chroma planes line up with the canvas.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import av
import cv2
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


class _ScaleGraph:
    """buffer -> scale -> format=yuv420p -> buffersink, for one input shape and box.

    A filter graph rather than PyAV's `VideoReformatter`: ~15 % faster (its output frames come
    from a warm pool), and pushing a frame only takes a reference, so the shared, read-only
    source frame is never touched (the reformatter rewrites the source frame's colour tags
    while it scales, a race when another thread reads the same frame)."""

    def __init__(self, frame: av.VideoFrame, fw: int, fh: int, flags: str) -> None:
        g = self.graph = av.filter.Graph()
        g.threads = 1
        args = (f"video_size={frame.width}x{frame.height}:pix_fmt={frame.format.name}"
                f":time_base=1/90000:pixel_aspect=1/1")
        cs, rng = _color_tags(frame)
        if cs is not None:
            args += f":colorspace={cs}"
        if rng is not None:
            args += f":range={rng}"
        self.src = g.add("buffer", args)
        scale = g.add("scale", f"{fw}:{fh}:flags={flags}")
        fmt = g.add("format", "yuv420p")
        self.sink = g.add("buffersink")
        self.src.link_to(scale)
        scale.link_to(fmt)
        fmt.link_to(self.sink)
        g.configure()

    def run(self, frame: av.VideoFrame) -> av.VideoFrame:
        self.src.push(frame)
        return self.sink.pull()


def _color_tags(frame: av.VideoFrame) -> tuple[int | None, int | None]:
    """(colorspace, color range) of a frame as FFmpeg's numeric values, None if unknown."""
    cs = getattr(frame, "colorspace", None)
    rng = getattr(frame, "color_range", None)
    return (None if cs is None else int(cs)), (None if rng is None else int(rng))


def resize_plane(src: np.ndarray, dst: np.ndarray) -> None:
    """Scale one 8-bit plane into `dst` (a view; written in place).

    Shrinking is done in halvings while the picture is still at least twice the box (OpenCV's
    area filter, 2 x 2 averages, on its SIMD path), then one bilinear step for the rest;
    enlarging is bilinear. OpenCV's area filter off the 2x path is 5-15 times slower, and
    bilinear alone on a large reduction would alias."""
    dh, dw = dst.shape
    while src.shape[1] >= 2 * dw and src.shape[0] >= 2 * dh:
        ch, cw = src.shape[0] & ~1, src.shape[1] & ~1  # an odd edge pixel at most is dropped
        half = (cw // 2, ch // 2)
        if half == (dw, dh):
            in_place(cv2.resize(src[:ch, :cw], half, dst=dst, interpolation=cv2.INTER_AREA), dst)
            return
        src = cv2.resize(src[:ch, :cw], half, interpolation=cv2.INTER_AREA)
    in_place(cv2.resize(src, (dw, dh), dst=dst, interpolation=cv2.INTER_LINEAR), dst)


def in_place(result: np.ndarray, dst: np.ndarray) -> None:
    """OpenCV silently allocates a new array when it cannot write into `dst`: never let that
    go unnoticed."""
    if result is not dst and not np.shares_memory(result, dst):
        raise RuntimeError("OpenCV did not write into the destination plane")


class Scaler:
    """Fits frames into boxes. Not thread-safe: one per thread.

    yuv420p frames (what the WHIP decoders and test sources give) are scaled plane by plane
    with OpenCV (`resize_plane`) straight into a new yuv420p frame — for 720p -> 360p about
    five times faster than libswscale's bilinear (benchmarks/bench_compositor.py), and within
    0.1-0.2 levels of it on average. Any other pixel format goes through libswscale
    (`_ScaleGraph`, one warm graph per conversion, LRU bounded), which converts and scales in
    one pass."""

    def __init__(self, *, interpolation: str = "BILINEAR", max_contexts: int = 64) -> None:
        if interpolation.upper() not in Interpolation.__members__:
            raise ValueError(f"unknown interpolation {interpolation!r}")
        self._flags = interpolation.lower()  # libswscale's, for the conversions
        self._max = max_contexts
        self._graphs: OrderedDict[tuple, _ScaleGraph] = OrderedDict()
        self.reformats = 0  # scaling/conversion calls done (for stats and tests)

    def fit(self, frame: av.VideoFrame, box_w: int, box_h: int) -> Fitted:
        fw, fh, ox, oy = fit_size(frame.width, frame.height, box_w, box_h)
        fmt = frame.format.name
        if fmt == "yuv420p" and frame.width == fw and frame.height == fh:
            y, u, v = yuv420p_planes(frame)
            return Fitted(y, u, v, ox, oy, box_w, box_h, frame)
        if fmt == "yuv420p":
            out = av.VideoFrame(fw, fh, "yuv420p")
            for src, dst in zip(yuv420p_planes(frame), yuv420p_planes(out), strict=True):
                resize_plane(src, dst)
        else:
            key = (frame.width, frame.height, fmt, *_color_tags(frame), fw, fh)
            graph = self._graphs.get(key)
            if graph is None:
                graph = self._graphs[key] = _ScaleGraph(frame, fw, fh, self._flags)
                if len(self._graphs) > self._max:
                    self._graphs.popitem(last=False)
            else:
                self._graphs.move_to_end(key)
            out = graph.run(frame)
        self.reformats += 1
        y, u, v = yuv420p_planes(out)
        return Fitted(y, u, v, ox, oy, box_w, box_h, out)

    @property
    def contexts(self) -> int:
        """Warm libswscale graphs (format conversions)."""
        return len(self._graphs)


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
