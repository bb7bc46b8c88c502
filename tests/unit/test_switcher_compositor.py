"""Compositor, scaler and transition maths on yuv420p planes (pure numpy, no engine)."""

import av
import numpy as np
import pytest

from switcher.compositor import (
    BLACK,
    Blender,
    Canvas,
    KeyPlanes,
    draw_border,
    key,
    paint,
    rgb_to_yuv,
    weight,
)
from switcher.scale import Scaler, fit_size, yuv420p_planes


def flat(w, h, yuv):
    return Canvas.alloc(w, h, yuv)


def blend(a, b, k):
    """Key arithmetic: 8.8 fixed point, rounded."""
    return (a * (256 - k) + b * k + 128) >> 8


def is_mix(plane, a, b, k):
    """Every pixel is (a * (256 - k) + b * k) / 256 rounded to the nearest integer (an exact
    .5 may go either way)."""
    exact = (a * (256 - k) + b * k) / 256
    return bool((np.abs(plane.astype(np.float64) - exact) <= 0.5 + 1e-9).all())


@pytest.mark.parametrize("pos", [0.0, 0.25, 0.5, 0.75, 1.0])
def test_mix_known_values(pos):
    a, b = flat(64, 36, (50, 100, 150)), flat(64, 36, (200, 60, 90))
    out = Canvas.alloc(64, 36, None)
    Blender(64, 36).mix(a, b, pos, out)
    k = weight(pos)
    assert is_mix(out.y, 50, 200, k)
    assert is_mix(out.u, 100, 60, k)
    assert is_mix(out.v, 150, 90, k)
    if pos == 0.25:  # 50 * 0.75 + 200 * 0.25 = 87.5 -> 87 or 88, never 87 truncated alone
        assert set(np.unique(out.y)) <= {87, 88}


def test_mix_midway_exact_value():
    a, b = flat(64, 36, (16, 128, 128)), flat(64, 36, (235, 128, 128))
    out = Canvas.alloc(64, 36, None)
    Blender(64, 36).mix(a, b, 0.5, out)
    assert out.y[0, 0] in (125, 126)  # (16 + 235) / 2 = 125.5, rounded


@pytest.mark.parametrize("direction", ["wipe_right", "wipe_left", "wipe_down", "wipe_up"])
def test_wipes_split_at_position(direction):
    w, h = 64, 40
    a, b = flat(w, h, (20, 128, 128)), flat(w, h, (220, 128, 128))
    out = Canvas.alloc(w, h, None)
    Blender(w, h).wipe(a, b, 0.25, direction, out)
    if direction == "wipe_right":
        assert (out.y[:, :16] == 220).all() and (out.y[:, 16:] == 20).all()
    elif direction == "wipe_left":
        assert (out.y[:, -16:] == 220).all() and (out.y[:, :-16] == 20).all()
    elif direction == "wipe_down":
        assert (out.y[:10] == 220).all() and (out.y[10:] == 20).all()
    else:
        assert (out.y[-10:] == 220).all() and (out.y[:-10] == 20).all()
    for pos, expect in ((0.0, 20), (1.0, 220)):
        Blender(w, h).wipe(a, b, pos, direction, out)
        assert (out.y == expect).all()


def test_dip_goes_through_colour():
    w, h = 64, 36
    a, b = flat(w, h, (40, 100, 100)), flat(w, h, (200, 150, 150))
    white = rgb_to_yuv(255, 255, 255)
    out = Canvas.alloc(w, h, None)
    bl = Blender(w, h)
    bl.dip(a, b, 0.5, white, out)
    assert (out.y == white[0]).all() and (out.u == white[1]).all()
    bl.dip(a, b, 0.25, white, out)
    assert is_mix(out.y, 40, white[0], 128)
    bl.dip(a, b, 0.75, white, out)
    assert is_mix(out.y, 200, white[0], 128)
    bl.dip(a, b, 1.0, white, out)
    assert (out.y == 200).all()


def test_fade_to_black_in_place():
    c = flat(64, 36, (200, 90, 160))
    Blender(64, 36).fade(c, BLACK, 0.5)
    assert is_mix(c.y, 200, 16, 128) and is_mix(c.v, 160, 128, 128)
    Blender(64, 36).fade(c, BLACK, 1.0)
    assert (c.y == 16).all() and (c.u == 128).all()


def test_canvas_of_frame_writes_the_frame():
    frame = av.VideoFrame(64, 36, "yuv420p")
    c = Canvas.of_frame(frame)
    c.fill((100, 110, 120))
    y, u, v = yuv420p_planes(frame)
    assert (y == 100).all() and (u == 110).all() and (v == 120).all()


def test_fit_size_letter_and_pillar_box():
    assert fit_size(1920, 1080, 1280, 720) == (1280, 720, 0, 0)
    assert fit_size(640, 480, 1280, 720) == (960, 720, 160, 0)  # 4:3 -> pillar-box
    assert fit_size(1080, 1920, 1280, 720) == (404, 720, 438, 0)  # portrait phone
    fw, fh, ox, oy = fit_size(2560, 720, 1280, 720)  # very wide -> letter-box
    assert (fw, fh) == (1280, 360) and (ox, oy) == (0, 180)
    for fwh in (fit_size(1279, 719, 640, 360), fit_size(333, 777, 200, 100)):
        assert all(v % 2 == 0 for v in fwh)


def test_scaler_letterboxes_without_stretching():
    # A 4:3 RGB frame, left half red, right half blue, painted into a 16:9 canvas.
    rgb = np.zeros((480, 640, 3), np.uint8)
    rgb[:, :320] = (255, 0, 0)
    rgb[:, 320:] = (0, 0, 255)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    sc = Scaler()
    pic = sc.fit(frame, 1280, 720)
    assert (pic.ox, pic.oy, pic.y.shape) == (160, 0, (720, 960))
    c = Canvas.alloc(1280, 720, (200, 128, 128))
    paint(c, pic, 0, 0)
    red, blue = rgb_to_yuv(255, 0, 0), rgb_to_yuv(0, 0, 255)
    assert (c.y[:, :160] == 16).all() and (c.y[:, -160:] == 16).all()  # black bars
    assert abs(int(c.y[360, 400]) - red[0]) <= 2 and abs(int(c.v[180, 200]) - red[2]) <= 2
    assert abs(int(c.y[360, 900]) - blue[0]) <= 2 and abs(int(c.u[180, 450]) - blue[1]) <= 2
    # Same source size/box again reuses the warm context.
    sc.fit(frame, 1280, 720)
    assert sc.contexts == 1 and sc.reformats == 2


def test_scaler_passthrough_same_size_yuv420p():
    frame = av.VideoFrame(64, 36, "yuv420p")
    Canvas.of_frame(frame).fill((77, 88, 99))
    pic = Scaler().fit(frame, 64, 36)
    assert pic.covers_box and pic.y[0, 0] == 77


def test_border_outside_box():
    c = flat(64, 36, BLACK)
    draw_border(c, 10, 10, 20, 10, 2, (235, 128, 128))
    assert c.y[9, 15] == 235 and c.y[20, 31] == 235
    assert c.y[12, 15] == 16  # inside untouched


def test_key_opaque_and_translucent_and_faded():
    rgba = np.zeros((8, 10, 4), np.uint8)
    rgba[:, :, :3] = 255
    rgba[:, :5, 3] = 255  # left half opaque white
    rgba[:, 5:, 3] = 128  # right half half-transparent
    k = KeyPlanes.from_rgba(rgba, 4, 2)
    assert k is not None and (k.x, k.y, k.width, k.height) == (4, 2, 10, 8)
    c = flat(32, 16, BLACK)
    key(c, k, 1.0)
    assert c.y[5, 6] == 235  # opaque white
    a = 128 + (128 >> 7)
    assert c.y[5, 12] == (16 * (256 - a) + 235 * a + 128) >> 8
    assert c.y[0, 0] == 16 and c.y[5, 20] == 16  # outside the key
    c2 = flat(32, 16, BLACK)
    key(c2, k, 0.5)
    assert abs(int(c2.y[5, 6]) - blend(16, 235, 128)) <= 1
    c3 = flat(32, 16, BLACK)
    key(c3, k, 0.0)
    assert (c3.y == 16).all()


def test_key_fully_transparent_is_none():
    assert KeyPlanes.from_rgba(np.zeros((4, 4, 4), np.uint8)) is None


def test_blends_write_into_frame_planes_with_row_padding():
    # Canvases over av.VideoFrames have padded rows (line_size > width): the OpenCV kernels
    # must write into those views, not into a new array.
    fa, fb, fo = (av.VideoFrame(100, 50, "yuv420p") for _ in range(3))
    a, b, out = Canvas.of_frame(fa), Canvas.of_frame(fb), Canvas.of_frame(fo)
    assert fo.planes[0].line_size > 100
    a.fill((20, 100, 100))
    b.fill((220, 140, 140))
    bl = Blender(100, 50)
    bl.mix(a, b, 0.5, out)
    assert (yuv420p_planes(fo)[0] == 120).all() and (yuv420p_planes(fo)[1] == 120).all()
    bl.fade(out, BLACK, 1.0 - 1 / 256)  # k = 255: almost all black
    assert is_mix(yuv420p_planes(fo)[0], 120, 16, 255)


def test_mix_of_random_pictures_matches_the_formula():
    rng = np.random.default_rng(3)
    w, h = 640, 360
    a = Canvas(*(rng.integers(0, 256, s, dtype=np.uint8) for s in ((h, w), (h // 2, w // 2),
                                                                   (h // 2, w // 2))))
    b = Canvas(*(rng.integers(0, 256, s, dtype=np.uint8) for s in ((h, w), (h // 2, w // 2),
                                                                   (h // 2, w // 2))))
    out = Canvas.alloc(w, h, None)
    for pos in (0.1, 0.5, 0.9):
        Blender(w, h).mix(a, b, pos, out)
        k = weight(pos)
        for pa, pb, po in zip(a.planes, b.planes, out.planes, strict=True):
            exact = (pa.astype(np.float64) * (256 - k) + pb.astype(np.float64) * k) / 256
            assert (np.abs(po - exact) <= 0.5 + 1e-6).all()


def test_frame_ref_shares_buffers_with_own_pts():
    from fractions import Fraction

    from switcher.scale import FrameRef

    src = av.VideoFrame(64, 36, "yuv420p")
    Canvas.of_frame(src).fill((90, 100, 110))
    src.pts = 1234
    out = FrameRef().ref(src)
    out.pts, out.time_base = 7, Fraction(1, 30)
    assert src.pts == 1234 and out.pts == 7
    assert yuv420p_planes(out)[0].ctypes.data == yuv420p_planes(src)[0].ctypes.data
    assert (yuv420p_planes(out)[0] == 90).all()
