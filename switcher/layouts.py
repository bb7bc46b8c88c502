"""Layouts (composites) as first-class scenes: a named list of boxes, each showing one source.

A layout is defined from a JSON-able spec (what the API receives), validated up front with the
bad field named (`Invalid.field`, dotted like ``boxes[1].w``), and resolved to even pixel
rectangles for a given canvas size at render time.

Spec shapes (``kind`` selects; ``sources`` lists source ids, ``null`` leaves a cell empty):
- ``{"kind": "full", "sources": ["cam1"]}``
- ``{"kind": "pip", "sources": ["main", "inset"], "corner": "bottom_right", "size": 0.3,
  "margin": 0.04, "border": 4, "border_color": "#ffffff"}`` — the inset is ``size`` of the
  canvas width and height (so it keeps the canvas aspect), ``margin`` is a fraction of the canvas
  height kept from the corner edges, ``border`` is in pixels, drawn outside the inset.
  corner: top_left, top_right, bottom_left, bottom_right.
- ``{"kind": "side_by_side", "sources": ["left", "right"], "gap": 0.0}`` — two halves, pictures
  letter-boxed inside each half.
- ``{"kind": "grid2x2", "sources": ["a", "b", "c", "d"], "gap": 0.0}`` — row-major cells.
- ``{"kind": "custom", "units": "fraction", "boxes": [{"source": "cam1", "x": 0, "y": 0,
  "w": 0.5, "h": 0.5, "z": 0, "border": 0, "border_color": "#ffffff"}, ...]}``.
  ``units`` is ``"fraction"`` (default: x, y, w, h are fractions 0..1 of the canvas width /
  height; a box must lie within the canvas) or ``"px"`` (integer pixels; boxes are clipped to
  the canvas at render time, so a layout can be reused at other sizes only in fraction units).
  Higher ``z`` is painted later (on top); equal z keeps list order.
Every kind accepts ``"background": "#rrggbb"`` (default black), painted where no box is.
Inside each box the picture is fitted keeping its aspect ratio (letter/pillar-box, never
stretched); the bars are black.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from .compositor import YUV, parse_color, rgb_to_yuv
from .errors import Invalid

KINDS = ("full", "pip", "side_by_side", "grid2x2", "custom")
CORNERS = ("top_left", "top_right", "bottom_left", "bottom_right")
NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
MAX_BOXES = 16


@dataclass(frozen=True, slots=True)
class Box:
    source: str | None
    x: float
    y: float
    w: float
    h: float
    z: int = 0
    border: int = 0
    border_color: str = "#ffffff"


@dataclass(frozen=True, slots=True)
class Rect:
    """A box resolved to even canvas pixels (x, y, w, h all even, inside the canvas)."""

    source: str | None
    x: int
    y: int
    w: int
    h: int
    z: int
    border: int
    border_yuv: YUV


@dataclass(frozen=True, slots=True)
class Layout:
    name: str
    kind: str
    boxes: tuple[Box, ...]
    units: str = "fraction"
    background: str = "#000000"
    spec_json: str = "{}"  # the validated spec, for state snapshots

    @property
    def sources(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for b in self.boxes:
            if b.source is not None:
                seen[b.source] = None
        return tuple(seen)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **json.loads(self.spec_json)}

    def resolve(self, width: int, height: int) -> list[Rect]:
        rects = []
        for i, b in enumerate(self.boxes):
            if self.units == "fraction":
                x0, y0 = _even(b.x * width), _even(b.y * height)
                x1, y1 = _even((b.x + b.w) * width), _even((b.y + b.h) * height)
            else:
                x0, y0 = _even(b.x), _even(b.y)
                x1, y1 = _even(b.x + b.w), _even(b.y + b.h)
            x0, x1 = max(0, min(width, x0)), max(0, min(width, x1))
            y0, y1 = max(0, min(height, y0)), max(0, min(height, y1))
            if x1 - x0 < 2 or y1 - y0 < 2:
                continue
            rects.append((b.z, i, Rect(b.source, x0, y0, x1 - x0, y1 - y0, b.z, b.border,
                                       rgb_to_yuv(*parse_color(b.border_color)))))
        rects.sort(key=lambda t: (t[0], t[1]))
        return [r for _, _, r in rects]

    def background_yuv(self) -> YUV:
        return rgb_to_yuv(*parse_color(self.background))


def _even(v: float) -> int:
    return round(v / 2.0) * 2


# --- validation helpers (shared with the command parser) ------------------------------------
def check_name(value: Any, field: str) -> str:
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise Invalid(f"{field}: expected 1-64 characters of A-Z a-z 0-9 _ . -", field)
    return value


def check_source_id(value: Any, field: str, *, allow_none: bool = False) -> str | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, str) or not value or len(value) > 128:
        raise Invalid(f"{field}: expected a source id (non-empty string)", field)
    return value


def check_number(value: Any, field: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid(f"{field}: expected a number", field)
    if not lo <= value <= hi:
        raise Invalid(f"{field}: {value!r} is out of range [{lo}, {hi}]", field)
    return float(value)


def check_int(value: Any, field: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise Invalid(f"{field}: expected an integer", field)
    if not lo <= value <= hi:
        raise Invalid(f"{field}: {value!r} is out of range [{lo}, {hi}]", field)
    return int(value)


def check_color(value: Any, field: str) -> str:
    try:
        if not isinstance(value, str):
            raise ValueError
        r, g, b = parse_color(value)
    except ValueError:
        raise Invalid(f"{field}: expected a colour '#rrggbb'", field) from None
    return f"#{r:02x}{g:02x}{b:02x}"


def check_keys(spec: dict[str, Any], allowed: set[str], prefix: str = "") -> None:
    for k in spec:
        if k not in allowed:
            raise Invalid(f"{prefix}{k}: unknown field", f"{prefix}{k}")


def _sources(spec: dict[str, Any], n_min: int, n_max: int) -> list[str | None]:
    srcs = spec.get("sources")
    if not isinstance(srcs, list) or not n_min <= len(srcs) <= n_max:
        raise Invalid(f"sources: expected a list of {n_min}..{n_max} source ids", "sources")
    return [check_source_id(s, f"sources[{i}]", allow_none=True) for i, s in enumerate(srcs)]


# --- builders ------------------------------------------------------------------------------
def layout_from_spec(name: str, spec: dict[str, Any]) -> Layout:
    """Validate a layout spec (see module doc) and build the Layout. Raises Invalid."""
    check_name(name, "name")
    if not isinstance(spec, dict):
        raise Invalid("layout: expected an object", "layout")
    kind = spec.get("kind")
    if kind not in KINDS:
        raise Invalid(f"kind: expected one of {', '.join(KINDS)}", "kind")
    common = {"kind", "background"}
    background = check_color(spec.get("background", "#000000"), "background")
    clean: dict[str, Any] = {"kind": kind, "background": background}
    units = "fraction"
    boxes: list[Box]
    if kind == "full":
        check_keys(spec, common | {"sources"})
        srcs = _sources(spec, 1, 1)
        boxes = [Box(srcs[0], 0.0, 0.0, 1.0, 1.0)]
        clean["sources"] = srcs
    elif kind == "pip":
        check_keys(spec, common | {"sources", "corner", "size", "margin", "border",
                                   "border_color"})
        srcs = _sources(spec, 2, 2)
        corner = spec.get("corner", "bottom_right")
        if corner not in CORNERS:
            raise Invalid(f"corner: expected one of {', '.join(CORNERS)}", "corner")
        size = check_number(spec.get("size", 0.3), "size", 0.05, 0.95)
        margin = check_number(spec.get("margin", 0.04), "margin", 0.0, 0.45)
        border = check_int(spec.get("border", 4), "border", 0, 64)
        color = check_color(spec.get("border_color", "#ffffff"), "border_color")
        if size + margin > 1.0:
            raise Invalid("margin: size + margin must be <= 1", "margin")
        mx = margin * 9 / 16  # margin is relative to height; keep it square on 16:9
        x = mx if corner.endswith("left") else 1.0 - size - mx
        y = margin if corner.startswith("top") else 1.0 - size - margin
        boxes = [Box(srcs[0], 0.0, 0.0, 1.0, 1.0, 0),
                 Box(srcs[1], x, y, size, size, 1, border, color)]
        clean.update(sources=srcs, corner=corner, size=size, margin=margin, border=border,
                     border_color=color)
    elif kind == "side_by_side":
        check_keys(spec, common | {"sources", "gap"})
        srcs = _sources(spec, 2, 2)
        gap = check_number(spec.get("gap", 0.0), "gap", 0.0, 0.2)
        half = (1.0 - gap) / 2
        boxes = [Box(srcs[0], 0.0, 0.0, half, 1.0), Box(srcs[1], half + gap, 0.0, half, 1.0)]
        clean.update(sources=srcs, gap=gap)
    elif kind == "grid2x2":
        check_keys(spec, common | {"sources", "gap"})
        srcs = _sources(spec, 1, 4)
        srcs += [None] * (4 - len(srcs))
        gap = check_number(spec.get("gap", 0.0), "gap", 0.0, 0.2)
        cell = (1.0 - gap) / 2
        boxes = [Box(s, (i % 2) * (cell + gap), (i // 2) * (cell + gap), cell, cell)
                 for i, s in enumerate(srcs)]
        clean.update(sources=srcs, gap=gap)
    else:  # custom
        check_keys(spec, common | {"boxes", "units"})
        units = spec.get("units", "fraction")
        if units not in ("fraction", "px"):
            raise Invalid("units: expected 'fraction' or 'px'", "units")
        raw = spec.get("boxes")
        if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_BOXES:
            raise Invalid(f"boxes: expected a list of 1..{MAX_BOXES} boxes", "boxes")
        boxes = []
        out_boxes = []
        for i, rb in enumerate(raw):
            p = f"boxes[{i}]."
            if not isinstance(rb, dict):
                raise Invalid(f"boxes[{i}]: expected an object", f"boxes[{i}]")
            check_keys(rb, {"source", "x", "y", "w", "h", "z", "border", "border_color"}, p)
            for k in ("x", "y", "w", "h"):
                if k not in rb:
                    raise Invalid(f"{p}{k}: required", f"{p}{k}")
            src = check_source_id(rb.get("source"), p + "source", allow_none=True)
            if units == "fraction":
                x = check_number(rb["x"], p + "x", 0.0, 1.0)
                y = check_number(rb["y"], p + "y", 0.0, 1.0)
                w = check_number(rb["w"], p + "w", 0.001, 1.0)
                h = check_number(rb["h"], p + "h", 0.001, 1.0)
                if x + w > 1.0 + 1e-9:
                    raise Invalid(f"{p}w: x + w must be <= 1", p + "w")
                if y + h > 1.0 + 1e-9:
                    raise Invalid(f"{p}h: y + h must be <= 1", p + "h")
            else:
                x = check_int(rb["x"], p + "x", 0, 8192)
                y = check_int(rb["y"], p + "y", 0, 8192)
                w = check_int(rb["w"], p + "w", 2, 8192)
                h = check_int(rb["h"], p + "h", 2, 8192)
            z = check_int(rb.get("z", 0), p + "z", -1000, 1000)
            border = check_int(rb.get("border", 0), p + "border", 0, 64)
            color = check_color(rb.get("border_color", "#ffffff"), p + "border_color")
            boxes.append(Box(src, x, y, w, h, z, border, color))
            out_boxes.append({"source": src, "x": x, "y": y, "w": w, "h": h, "z": z,
                              "border": border, "border_color": color})
        clean.update(units=units, boxes=out_boxes)
    return Layout(name, kind, tuple(boxes), units, background, json.dumps(clean))


def full_screen(source: str) -> Layout:
    """The implicit scene of a bus holding a plain source."""
    return Layout(f"source:{source}", "full", (Box(source, 0.0, 0.0, 1.0, 1.0),))
