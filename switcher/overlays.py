"""Downstream keys (overlays above program): lower third, logo/bug, clock, scrolling ticker.

Each overlay is defined from a JSON-able spec (validated with the bad field named), rendered
with Pillow into straight-alpha RGBA once per change and converted to premultiplied YUVA planes
(`compositor.KeyPlanes`), then keyed onto every program frame. The clock re-renders only when
its text changes (once per second); the ticker is one pre-rendered strip keyed through a
moving window. Show/hide fades are the state machine's job (`level` 0..1 per overlay).

Text uses a real CJK-capable font so Chinese renders as glyphs, not boxes: see `FONT_SEARCH`
(Noto Sans CJK, WenQuanYi Micro Hei, Droid Sans Fallback), falling back to DejaVu Sans with a
warning (Latin only).

Spec shapes (all kinds accept ``"fade_ms"`` 0..10000, default 500, and ``"z"``, default by
kind: ticker 10, lower_third 20, logo 30, clock 40; higher is keyed later, on top):
- ``{"kind": "lower_third", "title": "张伟", "subtitle": "Reporter, Beijing",
  "bar_color": "#1e3a8a", "text_color": "#ffffff", "opacity": 0.9}``
- ``{"kind": "logo", "png_base64": "...", "corner": "top_right", "size": 0.12,
  "margin": 0.04, "opacity": 1.0}`` (size: fraction of the canvas height; Python callers may
  pass ``png`` bytes or ``path`` instead of ``png_base64`` through `overlay_from_spec(...,
  trusted=True)`; the JSON parser never reads local paths).
- ``{"kind": "clock", "format": "%H:%M:%S", "tz": "UTC", "corner": "top_left"}``
- ``{"kind": "ticker", "text": "...", "speed": 120, "bar_color": "#000000",
  "text_color": "#ffffff"}`` (speed in pixels per second, right to left)
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import io
import json
import logging
import os
import zoneinfo
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .compositor import Canvas, KeyPlanes, key, parse_color
from .errors import Invalid
from .layouts import CORNERS, check_color, check_int, check_keys, check_name, check_number

log = logging.getLogger(__name__)

KINDS = ("lower_third", "logo", "clock", "ticker")
DEFAULT_Z = {"ticker": 10, "lower_third": 20, "logo": 30, "clock": 40}
MAX_PNG_BYTES = 4 * 1024 * 1024
MAX_TEXT = 500

# (path, ttc face index); index 2 of Noto Sans CJK is the Simplified Chinese face.
FONT_SEARCH: tuple[tuple[str, int], ...] = (
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2),
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc", 2),
    ("/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc", 2),
    ("/usr/share/fonts/opentype/noto/NotoSansCJKsc-Regular.otf", 0),
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),
    ("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf", 0),
    ("/System/Library/Fonts/PingFang.ttc", 0),
)
FALLBACK_FONTS: tuple[tuple[str, int], ...] = (
    ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 0),
)

_font_choice: tuple[str, int] | None = None
_font_cache: dict[tuple[str, int, int], ImageFont.FreeTypeFont] = {}


def find_font() -> tuple[str, int] | None:
    """(path, face index) of the first CJK font found; else DejaVu with a warning; else None
    (Pillow's built-in bitmap font is used then)."""
    global _font_choice
    if _font_choice is not None:
        return _font_choice
    env = os.environ.get("SCENECLOUD_OVERLAY_FONT")
    candidates = ([(env, 0)] if env else []) + list(FONT_SEARCH)
    for path, idx in candidates:
        if os.path.exists(path):
            _font_choice = (path, idx)
            return _font_choice
    for path, idx in FALLBACK_FONTS:
        if os.path.exists(path):
            log.warning("no CJK font found (install fonts-noto-cjk or fonts-wqy-microhei); "
                        "overlays use %s, Chinese text will show as boxes", path)
            _font_choice = (path, idx)
            return _font_choice
    log.warning("no TrueType font found; overlays use Pillow's default font")
    return None


def load_font(size: int, choice: tuple[str, int] | None = None) -> ImageFont.FreeTypeFont:
    choice = choice or find_font()
    if choice is None:
        return ImageFont.load_default(size)  # type: ignore[return-value]
    k = (choice[0], choice[1], size)
    font = _font_cache.get(k)
    if font is None:
        try:
            font = ImageFont.truetype(choice[0], size, index=choice[1])
        except OSError:
            font = ImageFont.truetype(choice[0], size)
        _font_cache[k] = font
    return font


# --- specs ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class OverlaySpec:
    name: str
    kind: str
    params: str  # JSON of the validated parameters (without image bytes)
    fade_ms: int = 500
    z: int = 0
    png: bytes | None = field(default=None, repr=False)

    @property
    def p(self) -> dict[str, Any]:
        return json.loads(self.params)

    def to_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "kind": self.kind, "fade_ms": self.fade_ms, "z": self.z,
               **self.p}
        if self.png is not None:
            out["png_bytes"] = len(self.png)
        return out


def _text(spec: dict[str, Any], key_: str, default: str | None = None) -> str:
    v = spec.get(key_, default)
    if not isinstance(v, str) or len(v) > MAX_TEXT:
        raise Invalid(f"{key_}: expected text of at most {MAX_TEXT} characters", key_)
    return v


def overlay_from_spec(name: str, spec: dict[str, Any], *, trusted: bool = False) -> OverlaySpec:
    """Validate an overlay spec (see module doc). `trusted` allows ``png`` bytes and ``path``
    (Python callers); API bodies only carry ``png_base64``. Raises Invalid naming the field."""
    check_name(name, "name")
    if not isinstance(spec, dict):
        raise Invalid("overlay: expected an object", "overlay")
    kind = spec.get("kind")
    if kind not in KINDS:
        raise Invalid(f"kind: expected one of {', '.join(KINDS)}", "kind")
    common = {"kind", "fade_ms", "z"}
    fade_ms = check_int(spec.get("fade_ms", 500), "fade_ms", 0, 10000)
    z = check_int(spec.get("z", DEFAULT_Z[kind]), "z", -1000, 1000)
    png: bytes | None = None
    p: dict[str, Any]
    if kind == "lower_third":
        check_keys(spec, common | {"title", "subtitle", "bar_color", "text_color", "opacity"})
        p = {"title": _text(spec, "title", ""), "subtitle": _text(spec, "subtitle", ""),
             "bar_color": check_color(spec.get("bar_color", "#1e3a8a"), "bar_color"),
             "text_color": check_color(spec.get("text_color", "#ffffff"), "text_color"),
             "opacity": check_number(spec.get("opacity", 0.9), "opacity", 0.0, 1.0)}
        if not p["title"] and not p["subtitle"]:
            raise Invalid("title: a title or a subtitle is needed", "title")
    elif kind == "logo":
        allowed = common | {"png_base64", "corner", "size", "margin", "opacity"}
        if trusted:
            allowed |= {"png", "path"}
        check_keys(spec, allowed)
        if "png_base64" in spec:
            b64 = spec["png_base64"]
            if not isinstance(b64, str):
                raise Invalid("png_base64: expected a base64 string", "png_base64")
            try:
                png = base64.b64decode(b64, validate=True)
            except (binascii.Error, ValueError):
                raise Invalid("png_base64: not valid base64", "png_base64") from None
        elif trusted and "png" in spec:
            png = bytes(spec["png"])
        elif trusted and "path" in spec:
            try:
                with open(spec["path"], "rb") as f:
                    png = f.read()
            except OSError as e:
                raise Invalid(f"path: cannot read ({e.strerror})", "path") from None
        else:
            raise Invalid("png_base64: required", "png_base64")
        if len(png) > MAX_PNG_BYTES:
            raise Invalid("png_base64: image larger than 4 MiB", "png_base64")
        try:
            img = Image.open(io.BytesIO(png))
            img.load()
        except Exception:
            raise Invalid("png_base64: not a readable image", "png_base64") from None
        if img.width > 4096 or img.height > 4096:
            raise Invalid("png_base64: image larger than 4096x4096", "png_base64")
        corner = spec.get("corner", "top_right")
        if corner not in CORNERS:
            raise Invalid(f"corner: expected one of {', '.join(CORNERS)}", "corner")
        p = {"corner": corner, "size": check_number(spec.get("size", 0.12), "size", 0.01, 1.0),
             "margin": check_number(spec.get("margin", 0.04), "margin", 0.0, 0.5),
             "opacity": check_number(spec.get("opacity", 1.0), "opacity", 0.0, 1.0)}
    elif kind == "clock":
        check_keys(spec, common | {"format", "tz", "corner"})
        fmt = _text(spec, "format", "%H:%M:%S")
        if not fmt or len(fmt) > 64:
            raise Invalid("format: expected a strftime format of 1..64 characters", "format")
        tz = spec.get("tz", "UTC")
        try:
            if not isinstance(tz, str):
                raise ValueError
            zoneinfo.ZoneInfo(tz)
        except (ValueError, zoneinfo.ZoneInfoNotFoundError):
            raise Invalid(f"tz: unknown time zone {tz!r}", "tz") from None
        corner = spec.get("corner", "top_left")
        if corner not in CORNERS:
            raise Invalid(f"corner: expected one of {', '.join(CORNERS)}", "corner")
        p = {"format": fmt, "tz": tz, "corner": corner}
    else:  # ticker
        check_keys(spec, common | {"text", "speed", "bar_color", "text_color"})
        text = _text(spec, "text")
        if not text.strip():
            raise Invalid("text: must not be empty", "text")
        p = {"text": text, "speed": check_number(spec.get("speed", 120), "speed", 10, 2000),
             "bar_color": check_color(spec.get("bar_color", "#000000"), "bar_color"),
             "text_color": check_color(spec.get("text_color", "#ffffff"), "text_color")}
    return OverlaySpec(name, kind, json.dumps(p, ensure_ascii=False), fade_ms, z, png)


# --- rendering -----------------------------------------------------------------------------
def _text_layer(size: tuple[int, int], rgb: tuple[int, int, int]) -> Image.Image:
    """A transparent layer whose colour is already the ink (no dark fringes when drawing)."""
    return Image.new("RGBA", size, (*rgb, 0))


def render_text_rgba(text: str, size_px: int, rgb: tuple[int, int, int] = (255, 255, 255),
                     font_choice: tuple[str, int] | None = None) -> np.ndarray:
    """Text alone on transparency, straight-alpha RGBA (h, w, 4). Used by tests and cards."""
    font = load_font(size_px, font_choice)
    x0, t, r, b = font.getbbox(text)
    img = _text_layer((max(2, r - x0 + 4), max(2, b - t + 4)), rgb)
    ImageDraw.Draw(img).text((2 - x0, 2 - t), text, font=font, fill=(*rgb, 255))
    return np.asarray(img)


def _corner_xy(corner: str, w: int, h: int, cw: int, ch: int, margin_px: int) -> tuple[int, int]:
    x = margin_px if corner.endswith("left") else cw - w - margin_px
    y = margin_px if corner.startswith("top") else ch - h - margin_px
    return max(0, x) & ~1, max(0, y) & ~1


def render_lower_third(p: dict[str, Any], cw: int, ch: int) -> KeyPlanes | None:
    rgba, x, y = lower_third_rgba(p, cw, ch)
    return KeyPlanes.from_rgba(rgba, x, y)


def lower_third_rgba(p: dict[str, Any], cw: int, ch: int) -> tuple[np.ndarray, int, int]:
    """The lower third as straight-alpha RGBA and its canvas position (even)."""
    title_px = max(10, round(ch * 0.055))
    sub_px = max(8, round(ch * 0.036))
    tfont, sfont = load_font(title_px), load_font(sub_px)
    pad = round(ch * 0.02)
    tb = tfont.getbbox(p["title"]) if p["title"] else (0, 0, 0, 0)
    sb = sfont.getbbox(p["subtitle"]) if p["subtitle"] else (0, 0, 0, 0)
    text_w = max(tb[2] - tb[0], sb[2] - sb[0])
    bar_w = min(cw - 2 * round(cw * 0.05), text_w + 2 * pad + round(ch * 0.01))
    gap = round(ch * 0.012) if p["title"] and p["subtitle"] else 0
    title_h = title_px * 5 // 4 if p["title"] else 0
    sub_h = sub_px * 5 // 4 if p["subtitle"] else 0
    bar_h = title_h + sub_h + gap + 2 * pad
    bar_rgb = parse_color(p["bar_color"])
    ink = parse_color(p["text_color"])
    img = Image.new("RGBA", (bar_w, bar_h), (*bar_rgb, round(255 * p["opacity"])))
    accent = round(ch * 0.008)
    ImageDraw.Draw(img).rectangle((0, 0, accent - 1, bar_h), fill=(255, 255, 255, 255))
    text = _text_layer((bar_w, bar_h), ink)
    d = ImageDraw.Draw(text)
    if p["title"]:
        d.text((pad + accent, pad), p["title"], font=tfont, fill=(*ink, 255))
    if p["subtitle"]:
        d.text((pad + accent, pad + title_h + gap), p["subtitle"], font=sfont,
               fill=(*ink, 230))
    img = Image.alpha_composite(img, text)
    x = round(cw * 0.05) & ~1
    y = (ch - round(ch * 0.08) - bar_h) & ~1
    return np.asarray(img), x, max(0, y)


def render_logo(p: dict[str, Any], png: bytes, cw: int, ch: int) -> KeyPlanes | None:
    img = Image.open(io.BytesIO(png)).convert("RGBA")
    h = max(2, round(ch * p["size"]))
    w = max(2, round(img.width * h / img.height))
    w, h = min(w, cw), min(h, ch)
    img = img.resize((w, h), Image.Resampling.LANCZOS)
    arr = np.array(img)
    if p["opacity"] < 1.0:
        arr[:, :, 3] = (arr[:, :, 3].astype(np.float32) * p["opacity"]).round().astype(np.uint8)
    x, y = _corner_xy(p["corner"], w, h, cw, ch, round(ch * p["margin"]))
    return KeyPlanes.from_rgba(arr, x, y)


def clock_text(p: dict[str, Any], now: float) -> str:
    return dt.datetime.fromtimestamp(now, zoneinfo.ZoneInfo(p["tz"])).strftime(p["format"])


def render_clock(p: dict[str, Any], text: str, cw: int, ch: int) -> KeyPlanes | None:
    size = max(10, round(ch * 0.045))
    font = load_font(size)
    x0, t, r, b = font.getbbox(text)
    pad = round(size * 0.35)
    w, h = r - x0 + 2 * pad, size + 2 * pad
    img = Image.new("RGBA", (w, h), (0, 0, 0, 160))
    txt = _text_layer((w, h), (255, 255, 255))
    ImageDraw.Draw(txt).text((pad - x0, pad + (size - (b - t)) // 2 - t), text, font=font,
                             fill=(255, 255, 255, 255))
    img = Image.alpha_composite(img, txt)
    x, y = _corner_xy(p["corner"], w, h, cw, ch, round(ch * 0.04))
    return KeyPlanes.from_rgba(np.asarray(img), x, y)


@dataclass
class TickerStrip:
    bar: KeyPlanes  # static background bar across the canvas
    strip: KeyPlanes  # text repeated: [text gap]*k, wider than canvas + one period
    period: int  # pixels after which the strip repeats (even)
    speed: float

    def window(self, t: float, cw: int) -> KeyPlanes:
        off = (int(t * self.speed) % self.period) & ~1
        s = self.strip
        return KeyPlanes(0, s.y, cw, s.height,
                         tuple(a[:, off // d:(off + cw) // d] for a, d in zip(s.a, (1, 2, 2),
                                                                               strict=True)),
                         tuple(a[:, off // d:(off + cw) // d] for a, d in zip(s.pm, (1, 2, 2),
                                                                                strict=True)),
                         tuple(a[:, off // d:(off + cw) // d] for a, d in zip(s.inv, (1, 2, 2),
                                                                                strict=True)))


def render_ticker(p: dict[str, Any], cw: int, ch: int) -> TickerStrip:
    bar_h = max(12, round(ch * 0.06)) & ~1
    size = round(bar_h * 0.62)
    font = load_font(size)
    bar_rgb = parse_color(p["bar_color"])
    ink = parse_color(p["text_color"])
    y = ch - bar_h
    bar = KeyPlanes.from_rgba(np.full((bar_h, cw, 4), (*bar_rgb, 200), np.uint8), 0, y)
    x0, t, r, b = font.getbbox(p["text"])
    period = ((r - x0) + round(cw * 0.15) + 1) & ~1
    reps = -(-(cw + period) // period) + 1
    width = period * reps
    img = _text_layer((width, bar_h), ink)
    d = ImageDraw.Draw(img)
    for i in range(reps):
        d.text((i * period - x0, (bar_h - (b - t)) // 2 - t), p["text"], font=font,
               fill=(*ink, 255))
    arr = np.array(img)
    arr[0, 0, 3] = max(arr[0, 0, 3], 1)  # keep the crop from moving the strip's origin
    arr[-1, -1, 3] = max(arr[-1, -1, 3], 1)
    strip = KeyPlanes.from_rgba(arr, 0, y)
    assert strip is not None
    return TickerStrip(bar, strip, period, p["speed"])


class OverlayRenderer:
    """Caches rendered overlays per (spec, canvas size) and keys them onto a canvas.

    Not thread-safe: owned by the engine's tick thread."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[Any, Any]] = {}
        self.renders = 0

    def _get(self, spec: OverlaySpec, cw: int, ch: int, now: float) -> Any:
        p = spec.p
        if spec.kind == "clock":
            ident: Any = (spec, cw, ch, clock_text(p, now))
        else:
            ident = (spec, cw, ch)
        hit = self._cache.get(spec.name)
        if hit is not None and hit[0] == ident:
            return hit[1]
        self.renders += 1
        if spec.kind == "lower_third":
            obj: Any = render_lower_third(p, cw, ch)
        elif spec.kind == "logo":
            assert spec.png is not None
            obj = render_logo(p, spec.png, cw, ch)
        elif spec.kind == "clock":
            obj = render_clock(p, ident[3], cw, ch)
        else:
            obj = render_ticker(p, cw, ch)
        self._cache[spec.name] = (ident, obj)
        return obj

    def prune(self, names: set[str]) -> None:
        for n in list(self._cache):
            if n not in names:
                del self._cache[n]

    def composite(self, canvas: Canvas, items: list[tuple[OverlaySpec, float]], *,
                  now: float, t: float) -> None:
        """Key overlays (spec, level) in z order; `now` is wall time (clock), `t` the output
        media time in seconds (ticker scroll)."""
        for spec, level in sorted(items, key=lambda it: (it[0].z, it[0].name)):
            if level <= 0.0:
                continue
            obj = self._get(spec, canvas.width, canvas.height, now)
            if obj is None:
                continue
            if isinstance(obj, TickerStrip):
                key(canvas, obj.bar, level)
                key(canvas, obj.window(t, canvas.width), level)
            else:
                key(canvas, obj, level)
