"""The switcher state machine and the command parser (pure, no engine, no clock)."""

import copy

import pytest

from switcher.commands import (
    FTB,
    Auto,
    Cut,
    DefineLayout,
    DefineOverlay,
    DeleteLayout,
    HideOverlay,
    Preview,
    Program,
    SetAudio,
    ShowOverlay,
    TBar,
    command_from_json,
)
from switcher.errors import Conflict, Invalid, NotFound
from switcher.state import SwitcherState

SRC = ("cam1", "cam2", "cam3", "cam4")


def state(**kw):
    st = SwitcherState(fps=30, width=1280, height=720, **kw)
    return st


def apply(st, cmd):
    st.apply(cmd, SRC)
    return st.to_dict(SRC)


def run(st, frames):
    for _ in range(frames):
        st.tick()
        st.finish_frame()


def test_preview_program_cut_swap():
    st = state()
    apply(st, Program(source="cam1"))
    d = apply(st, Preview(source="cam2"))
    assert d["program"] == {"source": "cam1"} and d["preview"] == {"source": "cam2"}
    d = apply(st, Cut())
    assert d["program"] == {"source": "cam2"} and d["preview"] == {"source": "cam1"}
    assert d["tally"] == {"cam1": "preview", "cam2": "program", "cam3": "off", "cam4": "off"}


def test_auto_mix_positions_and_completion():
    st = state()
    apply(st, Program(source="cam1"))
    apply(st, Preview(source="cam2"))
    apply(st, Auto("mix", 1000))  # 30 frames
    st.tick()
    assert st.transition.position == pytest.approx(1 / 30)
    for _ in range(14):
        st.finish_frame()
        st.tick()
    assert st.transition.position == pytest.approx(0.5)
    d = st.to_dict(SRC)
    assert d["transition"]["running"] and d["transition"]["type"] == "mix"
    # during the transition both are on program
    assert d["tally"]["cam1"] == "program" and d["tally"]["cam2"] == "program"
    assert st.on_air_weights() == {"cam1": pytest.approx(0.5), "cam2": pytest.approx(0.5)}
    run(st, 15)
    d = st.to_dict(SRC)
    assert not d["transition"]["running"]
    assert d["program"] == {"source": "cam2"} and d["preview"] == {"source": "cam1"}


def test_auto_zero_duration_is_a_cut():
    st = state()
    apply(st, Program(source="cam1"))
    apply(st, Preview(source="cam2"))
    d = apply(st, Auto("wipe_right", 0))
    assert d["program"] == {"source": "cam2"} and not d["transition"]["running"]


def test_cut_during_auto_jumps_to_end():
    st = state()
    apply(st, Program(source="cam1"))
    apply(st, Preview(source="cam2"))
    apply(st, Auto("mix", 2000))
    run(st, 10)
    d = apply(st, Cut())
    assert d["program"] == {"source": "cam2"} and d["preview"] == {"source": "cam1"}
    assert not d["transition"]["running"]


def test_second_auto_finishes_running_auto():
    st = state()
    apply(st, Program(source="cam1"))
    apply(st, Preview(source="cam2"))
    apply(st, Auto("mix", 2000))
    run(st, 5)
    d = apply(st, Auto())
    assert d["program"] == {"source": "cam2"} and not d["transition"]["running"]


def test_tbar_manual_then_auto_continues():
    st = state()
    apply(st, Program(source="cam1"))
    apply(st, Preview(source="cam2"))
    apply(st, Auto("mix", 1000))  # sets the style; finish it
    run(st, 30)
    apply(st, Preview(source="cam3"))
    d = apply(st, TBar(0.4))
    assert d["transition"]["running"] and d["transition"]["manual"]
    run(st, 5)
    assert st.transition.position == pytest.approx(0.4)  # manual: does not move by itself
    apply(st, Auto())  # continue from 0.4 over the remaining 60% of 1 s = 18 frames
    run(st, 17)
    assert st.transition is not None and st.transition.position < 1.0
    run(st, 1)
    assert st.program.name == "cam3"


def test_tbar_zero_cancels_and_one_completes():
    st = state()
    apply(st, Program(source="cam1"))
    apply(st, Preview(source="cam2"))
    apply(st, TBar(0.3))
    d = apply(st, TBar(0.0))
    assert not d["transition"]["running"] and d["program"] == {"source": "cam1"}
    apply(st, TBar(0.6))
    d = apply(st, TBar(1.0))
    assert d["program"] == {"source": "cam2"} and d["transition"]["position"] == 0.0


def test_hot_cut_aborts_transition_and_preview_change_sticks():
    st = state()
    apply(st, Program(source="cam1"))
    apply(st, Preview(source="cam2"))
    apply(st, Auto("mix", 1000))
    run(st, 3)
    apply(st, Preview(source="cam4"))
    run(st, 30)
    assert st.program.name == "cam2" and st.preview.name == "cam4"  # no swap: kept new preview
    apply(st, Auto("mix", 1000))
    run(st, 3)
    d = apply(st, Program(source="cam3"))
    assert d["program"] == {"source": "cam3"} and not d["transition"]["running"]
    assert d["preview"] == {"source": "cam4"}


def test_ftb_toggle_and_reverse():
    st = state()
    apply(st, FTB(duration_ms=1000))
    run(st, 15)
    assert st.ftb_level == pytest.approx(0.5)
    apply(st, FTB())  # reverse from 0.5
    run(st, 15)
    assert st.ftb_level == pytest.approx(0.0)
    d = apply(st, FTB(duration_ms=0, on=True))
    assert d["ftb"] == {"active": True, "level": 1.0, "running": False, "duration_ms": 0}


def test_layout_tally_includes_sources_inside_layouts():
    st = state()
    apply(st, DefineLayout.from_spec("pip", {"kind": "pip", "sources": ["cam1", "cam3"]}))
    apply(st, Program(layout="pip"))
    d = apply(st, Preview(source="cam2"))
    assert d["tally"] == {"cam1": "program", "cam2": "preview", "cam3": "program",
                          "cam4": "off"}
    assert d["layouts"]["pip"]["kind"] == "pip"
    assert set(st.on_air_weights()) == {"cam1", "cam3"}


def test_overlay_fades():
    st = state()
    apply(st, DefineOverlay.from_spec("lt", {"kind": "lower_third", "title": "A",
                                             "fade_ms": 500}))
    apply(st, ShowOverlay("lt"))
    run(st, 5)
    assert st.overlays["lt"].level == pytest.approx(5 / 15)
    run(st, 10)
    assert st.overlays["lt"].level == 1.0
    apply(st, HideOverlay("lt"))
    run(st, 15)
    assert st.overlays["lt"].level == 0.0


def test_audio_settings():
    st = state()
    d = apply(st, SetAudio("cam1", gain_db=-6, mute=True))
    assert d["audio"]["sources"]["cam1"] == {"gain_db": -6.0, "mute": True, "afv": True}
    d = apply(st, SetAudio(None, gain_db=-3))
    assert d["audio"]["master"] == {"gain_db": -3, "mute": False}


@pytest.mark.parametrize("cmd, exc, field", [
    (Preview(source="nope"), NotFound, "source"),
    (Program(layout="nope"), NotFound, "layout"),
    (Cut(), Conflict, "preview"),
    (Auto(), Conflict, "preview"),
    (TBar(0.5), Conflict, "preview"),
    (Auto("spin"), Invalid, "transition"),
    (Auto("mix", 20000), Invalid, "duration_ms"),
    (TBar(1.5), Invalid, "position"),
    (FTB(duration_ms=-1), Invalid, "duration_ms"),
    (DeleteLayout("nope"), NotFound, "name"),
    (ShowOverlay("nope"), NotFound, "name"),
    (SetAudio("nope", gain_db=0), NotFound, "source"),
    (SetAudio("cam1", gain_db=99), Invalid, "gain_db"),
    (SetAudio(None, afv=False), Invalid, "afv"),
])
def test_invalid_commands_change_nothing(cmd, exc, field):
    st = state()
    apply(st, Program(source="cam1"))
    before = copy.deepcopy(st.to_dict(SRC))
    with pytest.raises(exc) as ei:
        st.apply(cmd, SRC)
    assert ei.value.field == field
    assert st.to_dict(SRC) == before


def test_delete_layout_in_use_conflicts():
    st = state()
    apply(st, DefineLayout.from_spec("g", {"kind": "grid2x2", "sources": list(SRC)}))
    apply(st, Preview(layout="g"))
    with pytest.raises(Conflict):
        st.apply(DeleteLayout("g"), SRC)
    apply(st, Preview(source="cam1"))
    assert "g" not in apply(st, DeleteLayout("g"))["layouts"]


# --- parser ---------------------------------------------------------------------------------
def test_parse_all_ops():
    assert command_from_json({"op": "preview", "source": "cam1"}) == Preview(source="cam1")
    assert command_from_json({"op": "program", "layout": "g"}) == Program(layout="g")
    assert command_from_json({"op": "cut"}) == Cut()
    assert command_from_json({"op": "auto", "transition": "dip", "duration_ms": 500,
                              "color": "#FFFFFF"}) == Auto("dip", 500, "#ffffff")
    assert command_from_json({"op": "tbar", "position": 0.5}) == TBar(0.5)
    assert command_from_json({"op": "ftb"}) == FTB()
    assert command_from_json({"op": "ftb", "duration_ms": 0, "on": False}) == FTB(0, False)
    lay = command_from_json({"op": "layout", "name": "sbs", "kind": "side_by_side",
                             "sources": ["a", "b"]})
    assert isinstance(lay, DefineLayout) and lay.layout.sources == ("a", "b")
    assert command_from_json({"op": "layout", "action": "delete", "name": "sbs"}) \
        == DeleteLayout("sbs")
    ov = command_from_json({"op": "overlay", "action": "define", "name": "t", "kind": "ticker",
                            "text": "新闻 news"})
    assert isinstance(ov, DefineOverlay) and ov.overlay.kind == "ticker"
    assert command_from_json({"op": "overlay", "action": "show", "name": "t"}) \
        == ShowOverlay("t")
    assert command_from_json({"op": "audio", "source": "cam1", "gain_db": -6}) \
        == SetAudio("cam1", -6.0)
    assert command_from_json({"op": "audio", "master": True, "mute": True}) \
        == SetAudio(None, mute=True)


@pytest.mark.parametrize("body, field", [
    ([], "body"),
    ({"op": "jump"}, "op"),
    ({}, "op"),
    ({"op": "preview"}, "source"),
    ({"op": "preview", "source": "a", "layout": "b"}, "source"),
    ({"op": "preview", "source": ""}, "source"),
    ({"op": "preview", "source": "a", "extra": 1}, "extra"),
    ({"op": "auto", "transition": "spin"}, "transition"),
    ({"op": "auto", "duration_ms": 10001}, "duration_ms"),
    ({"op": "auto", "duration_ms": "1000"}, "duration_ms"),
    ({"op": "auto", "color": "red"}, "color"),
    ({"op": "tbar"}, "position"),
    ({"op": "tbar", "position": 1.2}, "position"),
    ({"op": "tbar", "position": True}, "position"),
    ({"op": "ftb", "on": "yes"}, "on"),
    ({"op": "layout", "name": "bad name!", "kind": "full", "sources": ["a"]}, "name"),
    ({"op": "layout", "name": "l", "kind": "hex"}, "kind"),
    ({"op": "layout", "name": "l", "kind": "pip", "sources": ["a"]}, "sources"),
    ({"op": "layout", "name": "l", "kind": "pip", "sources": ["a", "b"], "corner": "mid"},
     "corner"),
    ({"op": "layout", "name": "l", "kind": "pip", "sources": ["a", "b"], "size": 2}, "size"),
    ({"op": "layout", "name": "l", "kind": "custom", "boxes": [{"source": "a", "x": 0.6,
                                                                "y": 0, "w": 0.5, "h": 1}]},
     "boxes[0].w"),
    ({"op": "layout", "name": "l", "kind": "custom", "boxes": [{"source": "a", "x": 0, "y": 0,
                                                                "w": 1}]}, "boxes[0].h"),
    ({"op": "layout", "name": "l", "kind": "custom", "units": "em", "boxes": []}, "units"),
    ({"op": "overlay", "action": "blink", "name": "x"}, "action"),
    ({"op": "overlay", "action": "define", "name": "x", "kind": "logo"}, "png_base64"),
    ({"op": "overlay", "action": "define", "name": "x", "kind": "logo",
      "png_base64": "!!"}, "png_base64"),
    ({"op": "overlay", "action": "define", "name": "x", "kind": "logo",
      "path": "/etc/passwd"}, "path"),
    ({"op": "overlay", "action": "define", "name": "x", "kind": "clock", "tz": "Mars/Base"},
     "tz"),
    ({"op": "overlay", "action": "define", "name": "x", "kind": "lower_third"}, "title"),
    ({"op": "overlay", "action": "define", "name": "x", "kind": "lower_third", "title": "t",
      "fade_ms": 20000}, "fade_ms"),
    ({"op": "audio", "gain_db": 0}, "source"),
    ({"op": "audio", "source": "a", "master": True, "gain_db": 0}, "source"),
    ({"op": "audio", "source": "a"}, "gain_db"),
    ({"op": "audio", "source": "a", "gain_db": 21}, "gain_db"),
    ({"op": "audio", "master": True, "afv": True}, "afv"),
    ({"op": "audio", "source": "a", "mute": 1}, "mute"),
])
def test_parse_errors_name_the_field(body, field):
    with pytest.raises(Invalid) as ei:
        command_from_json(body)
    assert ei.value.field == field, ei.value.message
    assert ei.value.status == 400
    assert ei.value.to_dict()["field"] == field
