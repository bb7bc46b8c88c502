"""Switcher commands: typed frozen dataclasses, and the parser for API bodies.

`command_from_json(body)` turns the JSON body of ``POST /api/productions/{id}/switcher`` into a
command, rejecting unknown ops/fields and bad values with `Invalid` naming the field. Whether
the named sources/layouts/overlays exist is checked when the command is applied
(`SwitcherState.apply` → `NotFound`), because that depends on the live state.

Body shapes (``op`` selects):
- ``{"op": "preview", "source": "cam1"}`` or ``{"op": "preview", "layout": "grid"}``
- ``{"op": "program", "source": "cam1"}`` / ``{"op": "program", "layout": "grid"}`` (hot cut)
- ``{"op": "cut"}``
- ``{"op": "auto", "transition": "mix", "duration_ms": 1000, "color": "#000000"}`` — all
  optional; given values become the current transition style (used by later autos and the
  T-bar). transition: mix, dip, wipe_right, wipe_left, wipe_down, wipe_up; duration 0..10000 ms;
  color is the dip colour.
- ``{"op": "tbar", "position": 0.5, "transition": "mix"}`` — position 0..1, transition optional.
- ``{"op": "ftb", "duration_ms": 1000, "on": true}`` — both optional; without ``on`` it toggles.
- ``{"op": "layout", "name": "grid", "kind": "grid2x2", "sources": [...], ...}`` defines or
  updates a layout (all keys besides op/action/name are the layout spec, see `layouts`);
  ``{"op": "layout", "action": "delete", "name": "grid"}`` deletes one.
- ``{"op": "overlay", "action": "define", "name": "lt1", "kind": "lower_third", ...}`` (spec
  keys as in `overlays`); ``{"op": "overlay", "action": "show"|"hide"|"delete", "name": "lt1"}``.
- ``{"op": "audio", "source": "cam1", "gain_db": -6, "mute": false, "afv": true}`` or
  ``{"op": "audio", "master": true, "gain_db": -3, "mute": false}``; settings not given are
  left as they are. gain_db -100..+20 (-100 = silent).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .compositor import TRANSITIONS
from .errors import Invalid
from .layouts import (
    Layout,
    check_color,
    check_int,
    check_keys,
    check_name,
    check_number,
    check_source_id,
    layout_from_spec,
)
from .overlays import OverlaySpec, overlay_from_spec

MAX_DURATION_MS = 10000


@dataclass(frozen=True, slots=True)
class Preview:
    source: str | None = None
    layout: str | None = None


@dataclass(frozen=True, slots=True)
class Program:
    """Hot cut: put a source/layout straight on program (no transition; preview unchanged)."""

    source: str | None = None
    layout: str | None = None


@dataclass(frozen=True, slots=True)
class Cut:
    """Swap preview and program on the next frame."""


@dataclass(frozen=True, slots=True)
class Auto:
    """Transition preview to program; None fields use the current style."""

    transition: str | None = None
    duration_ms: int | None = None
    color: str | None = None


@dataclass(frozen=True, slots=True)
class TBar:
    position: float
    transition: str | None = None


@dataclass(frozen=True, slots=True)
class FTB:
    """Fade to black. on=None toggles; duration None keeps the current FTB rate."""

    duration_ms: int | None = None
    on: bool | None = None


@dataclass(frozen=True, slots=True)
class DefineLayout:
    layout: Layout

    @classmethod
    def from_spec(cls, name: str, spec: dict[str, Any]) -> DefineLayout:
        return cls(layout_from_spec(name, spec))


@dataclass(frozen=True, slots=True)
class DeleteLayout:
    name: str


@dataclass(frozen=True, slots=True)
class DefineOverlay:
    overlay: OverlaySpec

    @classmethod
    def from_spec(cls, name: str, spec: dict[str, Any], *, trusted: bool = True) -> DefineOverlay:
        return cls(overlay_from_spec(name, spec, trusted=trusted))


@dataclass(frozen=True, slots=True)
class ShowOverlay:
    name: str


@dataclass(frozen=True, slots=True)
class HideOverlay:
    name: str


@dataclass(frozen=True, slots=True)
class DeleteOverlay:
    name: str


@dataclass(frozen=True, slots=True)
class SetAudio:
    """Channel strip (source given) or master (source None) settings; None = unchanged."""

    source: str | None = None
    gain_db: float | None = None
    mute: bool | None = None
    afv: bool | None = None


Command = (Preview | Program | Cut | Auto | TBar | FTB | DefineLayout | DeleteLayout
           | DefineOverlay | ShowOverlay | HideOverlay | DeleteOverlay | SetAudio)
OPS = ("preview", "program", "cut", "auto", "tbar", "ftb", "layout", "overlay", "audio")


def _bool(v: Any, field: str) -> bool:
    if not isinstance(v, bool):
        raise Invalid(f"{field}: expected true or false", field)
    return v


def _transition(v: Any, field: str = "transition") -> str:
    if v not in TRANSITIONS:
        raise Invalid(f"{field}: expected one of {', '.join(TRANSITIONS)}", field)
    return v


def _bus_target(body: dict[str, Any]) -> tuple[str | None, str | None]:
    has_s, has_l = "source" in body, "layout" in body
    if has_s == has_l:
        raise Invalid("source: give exactly one of source or layout", "source")
    if has_s:
        return check_source_id(body["source"], "source"), None
    return None, check_name(body["layout"], "layout")


def command_from_json(body: Any) -> Command:
    """Parse an API body into a command; raises Invalid naming the bad field."""
    if not isinstance(body, dict):
        raise Invalid("body: expected a JSON object", "body")
    op = body.get("op")
    if op not in OPS:
        raise Invalid(f"op: expected one of {', '.join(OPS)}", "op")
    if op in ("preview", "program"):
        check_keys(body, {"op", "source", "layout"})
        s, lay = _bus_target(body)
        return Preview(s, lay) if op == "preview" else Program(s, lay)
    if op == "cut":
        check_keys(body, {"op"})
        return Cut()
    if op == "auto":
        check_keys(body, {"op", "transition", "duration_ms", "color"})
        return Auto(
            _transition(body["transition"]) if "transition" in body else None,
            check_int(body["duration_ms"], "duration_ms", 0, MAX_DURATION_MS)
            if "duration_ms" in body else None,
            check_color(body["color"], "color") if "color" in body else None)
    if op == "tbar":
        check_keys(body, {"op", "position", "transition"})
        if "position" not in body:
            raise Invalid("position: required", "position")
        return TBar(check_number(body["position"], "position", 0.0, 1.0),
                    _transition(body["transition"]) if "transition" in body else None)
    if op == "ftb":
        check_keys(body, {"op", "duration_ms", "on"})
        return FTB(check_int(body["duration_ms"], "duration_ms", 0, MAX_DURATION_MS)
                   if "duration_ms" in body else None,
                   _bool(body["on"], "on") if "on" in body else None)
    if op == "layout":
        action = body.get("action", "define")
        if action not in ("define", "delete"):
            raise Invalid("action: expected define or delete", "action")
        name = check_name(body.get("name"), "name")
        if action == "delete":
            check_keys(body, {"op", "action", "name"})
            return DeleteLayout(name)
        spec = {k: v for k, v in body.items() if k not in ("op", "action", "name")}
        return DefineLayout(layout_from_spec(name, spec))
    if op == "overlay":
        action = body.get("action")
        if action not in ("define", "show", "hide", "delete"):
            raise Invalid("action: expected define, show, hide or delete", "action")
        name = check_name(body.get("name"), "name")
        if action == "define":
            spec = {k: v for k, v in body.items() if k not in ("op", "action", "name")}
            return DefineOverlay(overlay_from_spec(name, spec, trusted=False))
        check_keys(body, {"op", "action", "name"})
        return {"show": ShowOverlay, "hide": HideOverlay, "delete": DeleteOverlay}[action](name)
    # audio
    check_keys(body, {"op", "source", "master", "gain_db", "mute", "afv"})
    master = _bool(body["master"], "master") if "master" in body else False
    if master == ("source" in body):
        raise Invalid("source: give exactly one of source or master: true", "source")
    source = None if master else check_source_id(body["source"], "source")
    if master and "afv" in body:
        raise Invalid("afv: not a master setting", "afv")
    gain = (check_number(body["gain_db"], "gain_db", -100.0, 20.0)
            if "gain_db" in body else None)
    mute = _bool(body["mute"], "mute") if "mute" in body else None
    afv = _bool(body["afv"], "afv") if "afv" in body else None
    if gain is None and mute is None and afv is None:
        raise Invalid("gain_db: nothing to change (give gain_db, mute or afv)", "gain_db")
    return SetAudio(source, gain, mute, afv)
