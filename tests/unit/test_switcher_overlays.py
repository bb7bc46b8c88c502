"""Overlays: real CJK glyphs, lower third, logo with alpha, clock, ticker, layout specs."""

import base64
import io
import os

import numpy as np
import pytest
from PIL import Image

from switcher.compositor import BLACK, Canvas
from switcher.errors import Invalid
from switcher.layouts import layout_from_spec
from switcher.overlays import (
    FALLBACK_FONTS,
    OverlayRenderer,
    find_font,
    overlay_from_spec,
    render_lower_third,
    render_text_rgba,
    render_ticker,
)

CJK = "中文字幕直播"
TOFU = "\U000f0000"  # a private-use code point no font has: renders the missing glyph


def mask(text, font=None):
    a = render_text_rgba(text, 48, font_choice=font)[:, :, 3]
    return a


def same(a, b):
    return a.shape == b.shape and np.array_equal(a, b)


def test_cjk_font_renders_real_glyphs():
    font = find_font()
    assert font is not None and "dejavu" not in font[0].lower(), "no CJK font installed"
    tofu = mask(TOFU, font)
    glyphs = [mask(ch, font) for ch in CJK]
    for ch, g in zip(CJK, glyphs, strict=True):
        assert (g > 128).sum() > 50, ch  # non-empty
        assert not same(g, tofu), ch  # not the missing-glyph box
    for i in range(len(glyphs)):
        for j in range(i + 1, len(glyphs)):
            assert not same(glyphs[i], glyphs[j])  # distinct characters, distinct shapes


def test_comparison_method_detects_tofu():
    """Sanity check of the method: a Latin-only font draws the same box for every CJK char."""
    path, idx = FALLBACK_FONTS[0]
    if not os.path.exists(path):
        pytest.skip("DejaVu not installed")
    assert same(mask("中", (path, idx)), mask("文", (path, idx)))


def test_lower_third_keys_glyph_pixels():
    spec = overlay_from_spec("lt", {"kind": "lower_third", "title": "张伟 直播",
                                    "subtitle": "北京 Beijing"})
    k = render_lower_third(spec.p, 1280, 720)
    assert k is not None and k.x < 200 and k.y > 500  # bottom-left
    c = Canvas.alloc(1280, 720, BLACK)
    OverlayRenderer().composite(c, [(spec, 1.0)], now=0.0, t=0.0)
    region = c.y[k.y:k.y + k.height, k.x:k.x + k.width]
    assert (region > 200).sum() > 500  # white glyph pixels on the bar
    assert c.y[10, 10] == 16  # the rest untouched


def test_logo_from_png_with_alpha():
    img = Image.new("RGBA", (100, 50), (255, 255, 255, 0))
    img.paste((255, 255, 255, 255), (0, 0, 50, 50))  # left half opaque white
    buf = io.BytesIO()
    img.save(buf, "PNG")
    spec = overlay_from_spec("logo", {"kind": "logo", "png_base64":
                                      base64.b64encode(buf.getvalue()).decode(),
                                      "corner": "top_left", "size": 0.1, "margin": 0.0})
    c = Canvas.alloc(1280, 720, BLACK)
    OverlayRenderer().composite(c, [(spec, 1.0)], now=0.0, t=0.0)
    assert c.y[30, 30] == 235  # opaque part: 72 px high, 144 wide, left half white
    assert c.y[30, 120] == 16  # transparent part shows program
    bytes_spec = overlay_from_spec("logo", {"kind": "logo", "png": buf.getvalue()},
                                   trusted=True)
    assert bytes_spec.png == buf.getvalue()


def test_clock_renders_once_per_second():
    spec = overlay_from_spec("clk", {"kind": "clock", "tz": "Asia/Shanghai"})
    r = OverlayRenderer()
    c = Canvas.alloc(640, 360, BLACK)
    for i in range(30):
        r.composite(c, [(spec, 1.0)], now=1_700_000_000.0 + i / 30, t=i / 30)
    assert r.renders == 1
    r.composite(c, [(spec, 1.0)], now=1_700_000_001.0, t=1.0)
    assert r.renders == 2


def test_ticker_scrolls():
    spec = overlay_from_spec("tk", {"kind": "ticker", "text": "突发新闻 Breaking news",
                                    "speed": 100})
    strip = render_ticker(spec.p, 640, 360)
    w0, w1 = strip.window(0.0, 640), strip.window(1.0, 640)
    assert w0.a[0].shape == w1.a[0].shape == (strip.strip.height, 640)
    assert not np.array_equal(w0.pm[0], w1.pm[0])
    # shifted by speed * 1 s = 100 px
    assert np.array_equal(w1.pm[0][:, :500], w0.pm[0][:, 100:600])
    c = Canvas.alloc(640, 360, BLACK)
    OverlayRenderer().composite(c, [(spec, 1.0)], now=0.0, t=12.34)
    assert (c.y[-strip.strip.height:] > 200).sum() > 100


def test_layout_validation_and_resolution():
    lay = layout_from_spec("g", {"kind": "grid2x2", "sources": ["a", "b", None]})
    rects = lay.resolve(1280, 720)
    assert [(r.source, r.x, r.y, r.w, r.h) for r in rects] == [
        ("a", 0, 0, 640, 360), ("b", 640, 0, 640, 360), (None, 0, 360, 640, 360),
        (None, 640, 360, 640, 360)]
    assert lay.sources == ("a", "b")
    with pytest.raises(Invalid) as ei:
        layout_from_spec("x", {"kind": "custom", "boxes": [{"source": "a", "x": 0, "y": 0,
                                                            "w": 0.5, "h": 0.5, "q": 1}]})
    assert ei.value.field == "boxes[0].q"
    with pytest.raises(Invalid) as ei:
        layout_from_spec("x", {"kind": "side_by_side", "sources": ["a", 5]})
    assert ei.value.field == "sources[1]"
    d = layout_from_spec("p", {"kind": "pip", "sources": ["a", "b"]}).to_dict()
    assert d["corner"] == "bottom_right" and d["size"] == 0.3 and d["name"] == "p"
