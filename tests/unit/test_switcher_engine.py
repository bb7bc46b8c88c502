"""The engine driven tick by tick (deterministic: manual `tick()`, injectable clock)."""

import itertools
import threading
import time

import av
import numpy as np
import pytest

from media_server.source import Source
from switcher.commands import (
    FTB,
    Auto,
    Cut,
    DefineLayout,
    DefineOverlay,
    Preview,
    Program,
    SetAudio,
    ShowOverlay,
)
from switcher.compositor import Canvas, rgb_to_yuv
from switcher.engine import OutputQueue, Switcher
from switcher.errors import Busy, Conflict, NotFound
from switcher.program import samples_for_frame
from switcher.scale import yuv420p_planes


class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def yuv_frame(w, h, y, u=128, v=128):
    f = av.VideoFrame(w, h, "yuv420p")
    Canvas.of_frame(f).fill((y, u, v))
    return f


def source(sid, y, w=1280, h=720, u=128, v=128):
    s = Source("p", sid, "test")
    s.push_video(yuv_frame(w, h, y, u, v))
    return s


def planes(pf):
    return yuv420p_planes(pf.video)


def blend(a, b, k):
    return (a * (256 - k) + b * k + 128) >> 8


@pytest.fixture
def rig():
    srcs = {"cam1": source("cam1", 60), "cam2": source("cam2", 180),
            "cam3": source("cam3", 100), "cam4": source("cam4", 220)}
    clock = FakeClock()
    sw = Switcher(lambda: srcs, clock=clock)
    return sw, srcs, clock


def run(sw, cmd):
    fut = sw.submit(cmd)
    pf = sw.tick()
    return fut.result(timeout=0), pf


def test_empty_program_is_black_and_silent(rig):
    sw, _, _ = rig
    pf = sw.tick()
    y, u, _ = planes(pf)
    assert (y == 16).all() and (u == 128).all()
    assert pf.audio.shape == (1600, 2) and not pf.audio.any()
    assert pf.index == 0 and pf.video.pts == 0 and pf.video.time_base == pf.time_base


def test_cut_lands_on_next_frame(rig):
    sw, _, _ = rig
    state, pf = run(sw, Program(source="cam1"))
    assert state["program"] == {"source": "cam1"} and pf.on_air == ("cam1",)
    assert (planes(pf)[0] == 60).all()
    sw.submit(Preview(source="cam2"))
    state, pf = run(sw, Cut())
    assert state["program"] == {"source": "cam2"}
    assert (planes(pf)[0] == 180).all() and pf.on_air == ("cam2",)
    assert pf.marks["tick"] <= pf.marks["composited"] and "arrived" in pf.marks


def test_auto_mix_known_pixels_and_completion(rig):
    sw, _, _ = rig
    sw.submit(Program(source="cam1"))
    sw.submit(Preview(source="cam2"))
    run(sw, Auto("mix", 1000))  # frame 1 of 30
    for _ in range(14):
        pf = sw.tick()
    assert sw.state_dict()["transition"]["position"] == pytest.approx(0.5)
    assert (planes(pf)[0] == (60 + 180) // 2).all()  # 120 exactly
    assert set(pf.on_air) == {"cam1", "cam2"}
    for _ in range(15):
        pf = sw.tick()
    assert (planes(pf)[0] == 180).all()  # frame 30 shows the target fully
    assert sw.state_dict()["program"] == {"source": "cam2"}
    assert not sw.state_dict()["transition"]["running"]


def test_wipe_and_dip_through_engine(rig):
    sw, _, _ = rig
    sw.submit(Program(source="cam1"))
    sw.submit(Preview(source="cam2"))
    run(sw, Auto("wipe_right", 1000))
    for _ in range(14):
        pf = sw.tick()
    y = planes(pf)[0]
    assert (y[:, :640] == 180).all() and (y[:, 640:] == 60).all()
    run(sw, Cut())  # finish it: cam2 on program, cam1 on preview
    run(sw, Auto("dip", 1000, "#ffffff"))
    for _ in range(14):
        pf = sw.tick()
    assert (planes(pf)[0] == rgb_to_yuv(255, 255, 255)[0]).all()


def test_ftb_covers_everything(rig):
    sw, _, _ = rig
    sw.submit(Program(source="cam1"))
    sw.submit(DefineOverlay.from_spec("lt", {"kind": "lower_third", "title": "直播",
                                             "fade_ms": 0}))
    sw.submit(ShowOverlay("lt"))
    run(sw, FTB(duration_ms=0))
    pf = sw.tick()
    assert (planes(pf)[0] == 16).all()


def test_grid2x2_places_sources(rig):
    sw, _, _ = rig
    sw.submit(DefineLayout.from_spec("g", {"kind": "grid2x2",
                                           "sources": ["cam1", "cam2", "cam3", "cam4"]}))
    _, pf = run(sw, Program(layout="g"))
    y = planes(pf)[0]
    assert (y[180, 320], y[180, 960], y[540, 320], y[540, 960]) == (60, 180, 100, 220)
    assert pf.on_air == ("cam1", "cam2", "cam3", "cam4")
    assert sw.state_dict()["tally"] == dict.fromkeys(["cam1", "cam2", "cam3", "cam4"],
                                                     "program")


def test_pip_corner_size_border(rig):
    sw, _, _ = rig
    sw.submit(DefineLayout.from_spec("p", {"kind": "pip", "sources": ["cam1", "cam2"],
                                           "corner": "top_left", "size": 0.25, "margin": 0.1,
                                           "border": 4, "border_color": "#ffffff"}))
    _, pf = run(sw, Program(layout="p"))
    y = planes(pf)[0]
    # inset: x from 0.1*9/16*1280=72, y from 72, 320x180
    assert y[72 + 90, 72 + 160] == 180
    assert y[72 - 2, 72 + 160] == 235  # border above the inset
    assert y[400, 900] == 60  # main picture


def test_side_by_side_letterboxes_each_half(rig):
    sw, _, _ = rig
    sw.submit(DefineLayout.from_spec("s", {"kind": "side_by_side", "sources": ["cam1", "cam2"]}))
    _, pf = run(sw, Program(layout="s"))
    y = planes(pf)[0]
    # 16:9 into a 640x720 half: 640x360 picture centred vertically (bars of 180)
    assert y[90, 320] == 16 and y[360, 320] == 60 and y[360, 960] == 180 and y[700, 960] == 16


def test_custom_px_boxes_z_order(rig):
    sw, _, _ = rig
    sw.submit(DefineLayout.from_spec("c", {"kind": "custom", "units": "px", "background":
                                           "#ffffff", "boxes": [
        {"source": "cam1", "x": 100, "y": 100, "w": 320, "h": 180, "z": 2},
        {"source": "cam2", "x": 200, "y": 150, "w": 320, "h": 180, "z": 1}]}))
    _, pf = run(sw, Program(layout="c"))
    y = planes(pf)[0]
    assert y[150, 250] == 60  # overlap: cam1 (z=2) on top
    assert y[300, 450] == 180
    assert y[10, 10] == 235  # background white


def test_pillarbox_full_screen(rig):
    sw, srcs, _ = rig
    srcs["sd"] = source("sd", 150, 640, 480)
    _, pf = run(sw, Program(source="sd"))
    y = planes(pf)[0]
    assert (y[:, :158] == 16).all() and (y[:, 1122:] == 16).all()
    assert (y[:, 162:1118] == 150).all()


def test_stall_freezes_then_signal_lost_card_then_recovers(rig):
    sw, srcs, clock = rig
    run(sw, Program(source="cam1"))
    clock.t += 1.5
    pf = sw.tick()
    assert (planes(pf)[0] == 60).all()  # frozen on the last frame
    clock.t += 0.6
    pf = sw.tick()
    y = planes(pf)[0]
    card_y = rgb_to_yuv(32, 32, 40)[0]
    assert abs(int(y[10, 10]) - card_y) <= 1 and y.max() > 150  # card with text
    srcs["cam1"].push_video(yuv_frame(1280, 720, 61))
    pf = sw.tick()
    assert (planes(pf)[0] == 61).all()


def test_source_marks_go_with_a_frame_once_not_with_its_repeats(rig):
    sw, srcs, _ = rig
    run(sw, Program(source="cam1"))
    srcs["cam1"].push_video(yuv_frame(1280, 720, 70), captured=time.time() - 0.1)
    first = sw.tick()
    assert {"captured", "arrived", "decoded"} <= first.marks.keys()
    again = sw.tick()  # no new frame: the same picture is repeated
    assert (planes(again)[0] == 70).all()
    assert not {"captured", "arrived", "decoded"} & again.marks.keys()
    assert {"tick", "composited"} <= again.marks.keys()
    srcs["cam1"].push_video(yuv_frame(1280, 720, 80))
    assert "arrived" in sw.tick().marks  # a new frame carries its marks again


def test_slow_source_repeats_fast_source_drops_and_scaling_is_cached(rig):
    sw, srcs, _ = rig
    srcs["hd"] = Source("p", "hd", "test")
    srcs["hd"].push_video(yuv_frame(1920, 1080, 70))
    run(sw, Program(source="hd"))
    n0 = sw._scaler.reformats
    for _ in range(3):
        pf = sw.tick()  # no new frame: repeats without rescaling
    assert sw._scaler.reformats == n0 and (planes(pf)[0] == 70).all()
    for y in (80, 90, 100):  # faster than the output: the oldest beyond the sync depth drop
        srcs["hd"].push_video(yuv_frame(1920, 1080, y))
    pf = sw.tick()
    assert (planes(pf)[0] == 90).all() and sw._scaler.reformats == n0 + 1
    pf = sw.tick()
    assert (planes(pf)[0] == 100).all() and sw._scaler.reformats == n0 + 2


def test_frame_sync_absorbs_phase_jitter(rig):
    """A source at the output's own rate whose frames land on either side of the ticks (0 new
    frames at one tick, 2 at the next) is shown frame by frame: no repeat, no skip."""
    sw, srcs, _ = rig
    srcs["j"] = Source("p", "j", "test")
    run(sw, Program(source="j"))
    n = 0
    shown = []
    for t in range(60):
        arrivals = (0, 2)[t % 2] if t > 3 else 1  # jitter: 0, 2, 0, 2, ... after a steady start
        for _ in range(arrivals):
            n += 1
            srcs["j"].push_video(yuv_frame(64, 36, n))
        shown.append(int(planes(sw.tick())[0][0, 0]))
    steady = shown[6:]
    assert all(b - a == 1 for a, b in itertools.pairwise(steady)), shown


@pytest.mark.parametrize("fps", [30, 25])
def test_av_alignment_over_10000_frames(fps):
    """Every output frame carries exactly its samples; a click pushed with a flash frame comes
    out in the same output frame as the flash, over 10 000 frames."""
    w, h = 32, 18
    src = Source("p", "cam", "test", audio_buffer_ms=1000)
    sw = Switcher(lambda: {"cam": src}, width=w, height=h, fps=fps, clock=FakeClock())
    sw.submit(Program(source="cam"))
    dark, flash = yuv_frame(w, h, 16), yuv_frame(w, h, 235)
    total_samples = 0
    flashes = clicks = 0
    for i in range(10000):
        n = samples_for_frame(i, fps)
        audio = np.zeros((n, 2), np.float32)
        is_flash = i >= 5 and i % 97 == 0
        if is_flash:
            audio[0] = 0.9
        src.push_video(flash if is_flash else dark)
        src.audio.push(audio)
        pf = sw.tick()
        assert pf.index == i and pf.audio.shape == (n, 2)
        total_samples += pf.audio.shape[0]
        lit = bool(planes(pf)[0][0, 0] == 235)
        click = bool(np.abs(pf.audio).max() > 0.5)
        assert lit == is_flash and click == is_flash, i
        flashes += lit
        clicks += click
    assert total_samples == 10000 * 48000 // fps
    assert flashes == clicks > 100
    assert src.audio.underrun_samples == 0 and src.audio.dropped_samples == 0


def test_unheard_sources_are_read_every_tick(rig):
    sw, srcs, _ = rig
    for s in srcs.values():
        s.audio.push(np.full((4800, 2), 0.1, np.float32))
    pf = sw.tick()
    assert all(s.audio.buffered == 4800 - 1600 for s in srcs.values())
    assert not pf.audio.any()  # nothing on program: AFV keeps them silent


def test_afv_and_gain_through_engine(rig):
    sw, srcs, _ = rig
    sw.submit(Program(source="cam1"))
    sw.submit(SetAudio("cam1", gain_db=-6.0))
    for _ in range(3):
        for s in srcs.values():
            s.audio.push(np.full((1600, 2), 0.5, np.float32))
        pf = sw.tick()
    assert pf.audio[-1, 0] == pytest.approx(0.5 * 10 ** (-6 / 20), rel=1e-4)


def test_command_errors_resolve_futures_and_change_nothing(rig):
    sw, _, _ = rig
    run(sw, Program(source="cam1"))
    before = sw.state_dict()
    f1, f2 = sw.submit(Preview(source="nope")), sw.submit(Cut())
    sw.tick()
    with pytest.raises(NotFound):
        f1.result(timeout=0)
    with pytest.raises(Conflict):
        f2.result(timeout=0)
    after = sw.state_dict()
    assert {k: v for k, v in after.items() if k != "version"} == \
        {k: v for k, v in before.items() if k != "version"}
    assert sw.stats()["commands_rejected"] == 2


def test_busy_when_queue_full():
    sw = Switcher(dict, width=32, height=18, command_queue=2)
    sw.submit(Cut())
    sw.submit(Cut())
    with pytest.raises(Busy):
        sw.submit(Cut()).result(timeout=0)


def test_outputs_drop_oldest_and_count(rig):
    sw, _, _ = rig
    q = sw.add_output("slow", maxsize=2)
    for _ in range(5):
        sw.tick()
    assert len(q) == 2 and q.dropped == 3
    assert q.get_nowait().index == 3 and q.get(timeout=0).index == 4
    sw.remove_output(q)
    sw.tick()
    assert q.get(timeout=0) is None


def test_events_state_tally_meters(rig):
    sw, _, _ = rig
    events = []
    sw.add_listener(events.append)
    sw.add_listener(lambda e: 1 / 0)  # a failing listener does not break the tick
    run(sw, Program(source="cam1"))
    kinds = [e["type"] for e in events]
    assert "state" in kinds and "tally" in kinds and "meters" in kinds
    tally = next(e for e in events if e["type"] == "tally")["tally"]
    assert tally["cam1"] == "program" and tally["cam2"] == "off"
    events.clear()
    for _ in range(6):
        sw.tick()
    assert [e["type"] for e in events] == ["meters", "meters"]  # ~10 Hz at 30 fps, no state
    assert sw.stats()["listener_errors"] >= 1


def test_snapshots(rig):
    sw, _, _ = rig
    assert sw.snapshot_jpeg("program") is None
    sw.submit(Program(source="cam1"))
    sw.submit(Preview(source="cam2"))
    assert sw.snapshot_jpeg("preview") is None  # asks for preview rendering
    for _ in range(3):
        sw.tick()
    jp, jv = sw.snapshot_jpeg("program"), sw.snapshot_jpeg("preview", quality=60)
    assert jp[:2] == b"\xff\xd8" and jv[:2] == b"\xff\xd8"
    assert sw.last_frame("preview") is not None
    with pytest.raises(ValueError):
        sw.last_frame("aux")


def test_thread_clock_and_cut_latency():
    """The real clock thread: frames flow at fps, a cut shows on the frame of the tick that
    applied it (the future resolves in that tick), then stop. No sleeps: waits on queues."""
    srcs = {"a": source("a", 60, 64, 36), "b": source("b", 180, 64, 36)}
    sw = Switcher(lambda: srcs, width=64, height=36, fps=50)
    q = sw.add_output("t", maxsize=100)
    sw.submit(Program(source="a"))
    sw.start()
    try:
        assert q.get(timeout=2.0) is not None
        done = threading.Event()
        fut = sw.submit(Program(source="b"))
        fut.add_done_callback(lambda _: done.set())
        t0 = time.monotonic()
        assert done.wait(2.0)
        state = fut.result()
        assert state["program"] == {"source": "b"}
        pf = None
        while pf is None or pf.on_air != ("b",):
            pf = q.get(timeout=2.0)
            assert pf is not None
        assert time.monotonic() - t0 < 1.0
        assert (yuv420p_planes(pf.video)[0] == 180).all()
    finally:
        sw.stop()
    assert not sw.running and sw.stats()["ticks"] > 1


def test_thread_skips_instead_of_bursting():
    offset = [0.0]
    src = source("a", 60, 32, 18)
    sw = Switcher(lambda: {"a": src}, width=32, height=18, fps=30,
                  clock=lambda: time.monotonic() + offset[0])
    q = sw.add_output("t", maxsize=1000)
    sw.start()
    try:
        first = q.get(timeout=2.0)
        assert first is not None
        indices = [first.index]
        src.audio.push(np.zeros((48000, 2), np.float32))
        offset[0] += 1.0  # the clock jumps a second ahead: 30 slots missed
        deadline = time.monotonic() + 3.0
        while (sw.skipped_frames == 0 or len(indices) < 5) and time.monotonic() < deadline:
            pf = q.get(timeout=0.1)
            if pf is not None:
                indices.append(pf.index)
        assert sw.skipped_frames >= 25 and sw.late_ticks >= 1
        assert indices == list(range(indices[0], indices[0] + len(indices)))  # no gaps
        assert src.audio.buffered < 48000 - 25 * 1600  # skipped slots' audio was discarded
    finally:
        sw.stop()


def test_output_queue_get_wakes_on_put():
    q = OutputQueue("x", 2)
    got = []
    t = threading.Thread(target=lambda: got.append(q.get(timeout=2.0)))
    t.start()
    sw = Switcher(dict, width=32, height=18)
    q.put(sw.tick())
    t.join(2.0)
    assert got and got[0].index == 0


def test_output_frames_reused_only_when_released(rig):
    sw, _, _ = rig
    sw.submit(DefineLayout.from_spec("g", {"kind": "grid2x2",
                                           "sources": ["cam1", "cam2", "cam3", "cam4"]}))
    sw.submit(Program(layout="g"))
    held = [sw.tick() for _ in range(3)]
    assert len({id(pf.video) for pf in held}) == 3  # held frames are never reused
    y0 = planes(held[0])[0].copy()
    for _ in range(5):
        sw.tick()  # previous frames released: the pool recycles them
    assert sw._pool.reused > 0
    assert np.array_equal(planes(held[0])[0], y0)  # what a consumer holds never changes


def test_frame_sync_drops_an_unneeded_reserve(rig):
    """After jitter stops, the spare frame is dropped once: the source is then shown as soon
    as it arrives (one frame less latency), without a repeat or skip from then on."""
    sw, srcs, _ = rig
    srcs["s"] = Source("p", "s", "test")
    run(sw, Program(source="s"))
    n = 0
    shown, newest = [], []
    for t in range(300):
        arrivals = (0, 2)[t % 2] if t < 40 else 1  # jitter first, then steady
        for _ in range(arrivals):
            n += 1
            srcs["s"].push_video(yuv_frame(64, 36, n % 250))
        shown.append(int(planes(sw.tick())[0][0, 0]))
        newest.append(n % 250)
    assert shown[-1] == newest[-1]  # no reserve any more: the newest frame is on screen
    tail = shown[-50:]
    assert all((b - a) % 250 == 1 for a, b in itertools.pairwise(tail)), tail


def test_jpeg_of_a_frame_shared_by_threads() -> None:
    """Several threads (consoles polling program.jpg, an encoder scaling) use one frame at once:
    with the frame's own cached converter (frame.to_image/reformat) PyAV crashes or hangs."""
    import threading

    from switcher.scale import jpeg_image

    frame = yuv_frame(640, 360, 120)
    errors: list[BaseException] = []

    def snap() -> None:
        try:
            for _ in range(30):
                assert jpeg_image(frame).size == (640, 360)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=snap) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads) and not errors, errors
