"""The switcher state machine: buses, transitions, fade to black, layouts, overlays, audio.

Pure and single-owner: `apply(cmd, sources)` validates a command against the current state and
either changes the state or raises (`Invalid`, `NotFound`, `Conflict`) having changed nothing;
`tick()` advances time by one output frame (transition position, FTB level, overlay fades).
The engine calls both from its clock thread; tests call them directly.

Buses hold a `Scene`: a source id or a layout name (or nothing). Sources are looked up in the
`sources` collection passed to `apply` (the production's current source ids).

Timing: an auto transition of duration D spans N = max(1, round(D * fps / 1000)) frames; the
first frame rendered after the command shows position 1/N, frame N shows the target fully and
completes it (program = target, preview = the old program: buses swap). Duration 0 is a cut.

A take during a running transition (what ATEM-style switchers do — finish, never stack):
- `Cut` jumps to the end: the running transition completes on the next frame (program = its
  target, buses swap as usual). It does not start a second swap.
- `Auto` during a running *auto* transition also jumps to the end (a second press finishes
  it now). `Auto` during a *manual* (T-bar) transition continues automatically from the current
  position to the end, over the remaining share of the duration.
- `TBar` during an auto transition takes it over at the given position. The T-bar position is
  the transition progress: moving it above 0 starts a manual transition program → preview,
  1.0 completes it (and the position reads 0 again), 0 during a manual transition cancels it.
- `Program` (hot cut) aborts a running transition; the new scene is on program at once and
  preview is left as it was.
- `Preview` during a transition changes the preview bus; the transition continues to its
  original target, and at completion preview keeps the new choice instead of the swap.
- `FTB` toggles: from clear it fades to black over the duration, from black back; a toggle
  during a running fade reverses it from the current level. FTB fades the whole output,
  overlays included, and the program audio with it.

Tally: a source visible on program (directly, inside a layout, or in either scene of a running
transition) is "program"; else visible on preview is "preview"; else "off".
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace
from typing import Any

from .audio import Strip
from .commands import (
    FTB,
    MAX_DURATION_MS,
    Auto,
    Command,
    Cut,
    DefineLayout,
    DefineOverlay,
    DeleteLayout,
    DeleteOverlay,
    HideOverlay,
    Preview,
    Program,
    SetAudio,
    ShowOverlay,
    TBar,
)
from .compositor import TRANSITIONS, YUV, parse_color, rgb_to_yuv
from .errors import Conflict, Invalid, NotFound
from .layouts import Layout
from .overlays import OverlaySpec

MAX_LAYOUTS = 64
MAX_OVERLAYS = 32


@dataclass(frozen=True, slots=True)
class Scene:
    kind: str  # "source" | "layout"
    name: str

    def to_dict(self) -> dict[str, str]:
        return {self.kind: self.name}


@dataclass(frozen=True, slots=True)
class Style:
    kind: str = "mix"
    duration_ms: int = 1000
    color: str = "#000000"


@dataclass
class Transition:
    kind: str
    frm: Scene | None
    to: Scene
    frames: int  # total frames (auto) or nominal frames (manual)
    position: float = 0.0
    manual: bool = False
    color: str = "#000000"
    duration_ms: int = 1000
    preview_changed: bool = False
    start: float = 0.0  # position when the automatic run began
    k: int = 0  # frames run automatically so far

    def advance(self) -> None:
        self.k += 1
        self.position = 1.0 if self.k >= self.frames else (
            self.start + (1.0 - self.start) * self.k / self.frames)


@dataclass
class OverlayState:
    spec: OverlaySpec
    level: float = 0.0
    visible: bool = False  # the target: shown or hidden


@dataclass(frozen=True, slots=True)
class RenderPlan:
    """What the engine must draw for one program frame."""

    program: Scene | None
    transition: Transition | None  # a copy; None when no transition runs
    ftb_level: float
    overlays: tuple[tuple[OverlaySpec, float], ...]


class SwitcherState:
    def __init__(self, fps: int = 30, width: int = 1280, height: int = 720) -> None:
        self.fps, self.width, self.height = fps, width, height
        self.program: Scene | None = None
        self.preview: Scene | None = None
        self.style = Style()
        self.transition: Transition | None = None
        self.ftb_level = 0.0
        self.ftb_target = 0.0
        self.ftb_duration_ms = 1000
        self._ftb_step = 0.0
        self.layouts: dict[str, Layout] = {}
        self.overlays: dict[str, OverlayState] = {}
        self.strips: dict[str, Strip] = {}
        self.master_gain_db = 0.0
        self.master_mute = False
        self.version = 0  # bumps on every applied command and on automatic state changes

    # --- helpers -----------------------------------------------------------------------
    def frames_for(self, duration_ms: int) -> int:
        return max(1, round(duration_ms * self.fps / 1000))

    def _scene(self, source: str | None, layout: str | None,
               sources: Collection[str]) -> Scene:
        if source is not None:
            if source not in sources:
                raise NotFound(f"source {source!r} not found", "source")
            return Scene("source", source)
        if layout is None:
            raise Invalid("source: give a source or a layout", "source")
        if layout not in self.layouts:
            raise NotFound(f"layout {layout!r} not found", "layout")
        return Scene("layout", layout)

    def scene_sources(self, scene: Scene | None) -> tuple[str, ...]:
        if scene is None:
            return ()
        if scene.kind == "source":
            return (scene.name,)
        lay = self.layouts.get(scene.name)
        return lay.sources if lay is not None else ()

    def layout_of(self, scene: Scene) -> Layout | None:
        return self.layouts.get(scene.name) if scene.kind == "layout" else None

    def _complete(self) -> None:
        t = self.transition
        assert t is not None
        self.program = t.to
        if not t.preview_changed:
            self.preview = t.frm
        self.transition = None

    # --- commands ----------------------------------------------------------------------
    def apply(self, cmd: Command, sources: Collection[str]) -> None:
        """Apply one command or raise having changed nothing."""
        handler = _HANDLERS.get(type(cmd))
        if handler is None:
            raise Invalid(f"op: unknown command {type(cmd).__name__}", "op")
        handler(self, cmd, sources)
        self.version += 1

    def _preview(self, cmd: Preview, sources: Collection[str]) -> None:
        scene = self._scene(cmd.source, cmd.layout, sources)
        self.preview = scene
        if self.transition is not None:
            self.transition.preview_changed = True

    def _program(self, cmd: Program, sources: Collection[str]) -> None:
        scene = self._scene(cmd.source, cmd.layout, sources)
        self.transition = None
        self.program = scene

    def _cut(self, cmd: Cut, sources: Collection[str]) -> None:
        if self.transition is not None:
            self._complete()
            return
        if self.preview is None:
            raise Conflict("cut: preview is empty", "preview")
        self.program, self.preview = self.preview, self.program

    def _auto(self, cmd: Auto, sources: Collection[str]) -> None:
        _check_transition(cmd.transition, cmd.duration_ms, cmd.color)
        style = Style(cmd.transition or self.style.kind,
                      self.style.duration_ms if cmd.duration_ms is None else cmd.duration_ms,
                      cmd.color or self.style.color)
        t = self.transition
        if t is not None:
            if t.manual:
                t.frames = max(1, round(self.frames_for(t.duration_ms) * (1.0 - t.position)))
                t.manual, t.start, t.k = False, t.position, 0
            else:
                self._complete()
            return
        if self.preview is None:
            raise Conflict("auto: preview is empty", "preview")
        self.style = style
        if style.duration_ms == 0:
            self.program, self.preview = self.preview, self.program
            return
        n = self.frames_for(style.duration_ms)
        self.transition = Transition(style.kind, self.program, self.preview, n,
                                     color=style.color, duration_ms=style.duration_ms)

    def _tbar(self, cmd: TBar, sources: Collection[str]) -> None:
        _check_transition(cmd.transition, None, None)
        if not 0.0 <= cmd.position <= 1.0:
            raise Invalid(f"position: {cmd.position!r} is out of range [0, 1]", "position")
        pos = cmd.position
        t = self.transition
        if t is None:
            if pos <= 0.0:
                if cmd.transition:
                    self.style = replace(self.style, kind=cmd.transition)
                return
            if self.preview is None:
                raise Conflict("tbar: preview is empty", "preview")
            if cmd.transition:
                self.style = replace(self.style, kind=cmd.transition)
            s = self.style
            t = self.transition = Transition(s.kind, self.program, self.preview,
                                             self.frames_for(s.duration_ms), manual=True,
                                             color=s.color, duration_ms=s.duration_ms)
        else:
            if cmd.transition and cmd.transition != t.kind:
                raise Conflict("transition: cannot change the type of a running transition",
                               "transition")
            t.manual = True
        if pos >= 1.0:
            self._complete()
        elif pos <= 0.0:
            self.transition = None
        else:
            t.position = pos

    def _ftb(self, cmd: FTB, sources: Collection[str]) -> None:
        _check_transition(None, cmd.duration_ms, None)
        if cmd.duration_ms is not None:
            self.ftb_duration_ms = cmd.duration_ms
        target = (1.0 if self.ftb_target == 0.0 else 0.0) if cmd.on is None else float(cmd.on)
        self.ftb_target = target
        if self.ftb_duration_ms == 0:
            self.ftb_level = target
            self._ftb_step = 0.0
        else:
            self._ftb_step = 1.0 / self.frames_for(self.ftb_duration_ms)

    def _define_layout(self, cmd: DefineLayout, sources: Collection[str]) -> None:
        if cmd.layout.name not in self.layouts and len(self.layouts) >= MAX_LAYOUTS:
            raise Conflict(f"layout: at most {MAX_LAYOUTS} layouts", "name")
        self.layouts[cmd.layout.name] = cmd.layout

    def _in_use(self, scene: Scene) -> bool:
        t = self.transition
        return scene in (self.program, self.preview) or (
            t is not None and scene in (t.frm, t.to))

    def _delete_layout(self, cmd: DeleteLayout, sources: Collection[str]) -> None:
        if cmd.name not in self.layouts:
            raise NotFound(f"layout {cmd.name!r} not found", "name")
        if self._in_use(Scene("layout", cmd.name)):
            raise Conflict(f"layout {cmd.name!r} is on program or preview", "name")
        del self.layouts[cmd.name]

    def _define_overlay(self, cmd: DefineOverlay, sources: Collection[str]) -> None:
        spec = cmd.overlay
        cur = self.overlays.get(spec.name)
        if cur is None:
            if len(self.overlays) >= MAX_OVERLAYS:
                raise Conflict(f"overlay: at most {MAX_OVERLAYS} overlays", "name")
            self.overlays[spec.name] = OverlayState(spec)
        else:
            cur.spec = spec

    def _overlay(self, name: str) -> OverlayState:
        ov = self.overlays.get(name)
        if ov is None:
            raise NotFound(f"overlay {name!r} not found", "name")
        return ov

    def _show_overlay(self, cmd: ShowOverlay, sources: Collection[str]) -> None:
        ov = self._overlay(cmd.name)
        ov.visible = True
        if ov.spec.fade_ms == 0:
            ov.level = 1.0

    def _hide_overlay(self, cmd: HideOverlay, sources: Collection[str]) -> None:
        ov = self._overlay(cmd.name)
        ov.visible = False
        if ov.spec.fade_ms == 0:
            ov.level = 0.0

    def _delete_overlay(self, cmd: DeleteOverlay, sources: Collection[str]) -> None:
        self._overlay(cmd.name)
        del self.overlays[cmd.name]

    def _audio(self, cmd: SetAudio, sources: Collection[str]) -> None:
        if cmd.source is None:
            if cmd.afv is not None:
                raise Invalid("afv: not a master setting", "afv")
            if cmd.gain_db is not None:
                _check_gain(cmd.gain_db)
                self.master_gain_db = cmd.gain_db
            if cmd.mute is not None:
                self.master_mute = cmd.mute
            return
        if cmd.source not in sources:
            raise NotFound(f"source {cmd.source!r} not found", "source")
        if cmd.gain_db is not None:
            _check_gain(cmd.gain_db)
        st = self.strips.get(cmd.source, Strip())
        self.strips[cmd.source] = Strip(
            st.gain_db if cmd.gain_db is None else float(cmd.gain_db),
            st.mute if cmd.mute is None else cmd.mute,
            st.afv if cmd.afv is None else cmd.afv)

    # --- time ----------------------------------------------------------------------------
    def tick(self) -> bool:
        """Advance one output frame. Returns True when a transition or FTB completed (a
        discrete state change worth broadcasting)."""
        changed = False
        t = self.transition
        if t is not None and not t.manual:
            t.advance()
        if self._ftb_step and self.ftb_level != self.ftb_target:
            self.ftb_level = _toward(self.ftb_level, self.ftb_target, self._ftb_step)
            if self.ftb_level == self.ftb_target:
                changed = True
        for ov in self.overlays.values():
            target = 1.0 if ov.visible else 0.0
            if ov.level != target:
                step = 1.0 / self.frames_for(ov.spec.fade_ms) if ov.spec.fade_ms else 1.0
                ov.level = _toward(ov.level, target, step)
                if ov.level == target:
                    changed = True
        if changed:
            self.version += 1
        return changed

    def finish_frame(self) -> bool:
        """After the frame at position 1.0 was rendered, complete the transition."""
        t = self.transition
        if t is not None and not t.manual and t.position >= 1.0:
            self._complete()
            self.version += 1
            return True
        return False

    def plan(self) -> RenderPlan:
        t = self.transition
        return RenderPlan(
            self.program, replace(t) if t is not None else None, self.ftb_level,
            tuple((ov.spec, ov.level) for ov in self.overlays.values() if ov.level > 0.0))

    # --- derived views -------------------------------------------------------------------
    def on_air_weights(self) -> dict[str, float]:
        """AFV weight per source id: 1 on program, crossfading with the transition."""
        t = self.transition
        if t is None:
            return dict.fromkeys(self.scene_sources(self.program), 1.0)
        w: dict[str, float] = {}
        for s in self.scene_sources(t.frm):
            w[s] = w.get(s, 0.0) + (1.0 - t.position)
        for s in self.scene_sources(t.to):
            w[s] = min(1.0, w.get(s, 0.0) + t.position)
        return w

    def program_sources(self) -> set[str]:
        t = self.transition
        out = set(self.scene_sources(self.program))
        if t is not None:
            out.update(self.scene_sources(t.frm))
            out.update(self.scene_sources(t.to))
        return out

    def tally(self, sources: Iterable[str]) -> dict[str, str]:
        prog = self.program_sources()
        prev = set(self.scene_sources(self.preview))
        return {s: "program" if s in prog else "preview" if s in prev else "off"
                for s in sources}

    def dip_yuv(self, t: Transition) -> YUV:
        return rgb_to_yuv(*parse_color(t.color))

    def to_dict(self, sources: Iterable[str] = ()) -> dict[str, Any]:
        """JSON-able snapshot (what the API returns and broadcasts)."""
        srcs = list(sources)
        t = self.transition
        if t is not None:
            transition = {"running": True, "type": t.kind, "position": round(t.position, 4),
                          "duration_ms": t.duration_ms, "color": t.color, "manual": t.manual,
                          "from": t.frm.to_dict() if t.frm else None, "to": t.to.to_dict()}
        else:
            transition = {"running": False, "type": self.style.kind, "position": 0.0,
                          "duration_ms": self.style.duration_ms, "color": self.style.color,
                          "manual": False}
        strip_ids = list(dict.fromkeys([*srcs, *self.strips]))
        return {
            "program": self.program.to_dict() if self.program else None,
            "preview": self.preview.to_dict() if self.preview else None,
            "transition": transition,
            "ftb": {"active": self.ftb_target == 1.0 or self.ftb_level > 0.0,
                    "level": round(self.ftb_level, 4),
                    "running": self.ftb_level != self.ftb_target,
                    "duration_ms": self.ftb_duration_ms},
            "layouts": {n: lay.to_dict() for n, lay in self.layouts.items()},
            "overlays": {n: {**ov.spec.to_dict(), "visible": ov.visible,
                             "level": round(ov.level, 4)}
                         for n, ov in self.overlays.items()},
            "audio": {"master": {"gain_db": self.master_gain_db, "mute": self.master_mute},
                      "sources": {s: self.strips.get(s, Strip()).to_dict() for s in strip_ids}},
            "tally": self.tally(srcs),
            "format": {"width": self.width, "height": self.height, "fps": self.fps},
            "version": self.version,
        }


def _check_transition(kind: str | None, duration_ms: int | None, color: str | None) -> None:
    if kind is not None and kind not in TRANSITIONS:
        raise Invalid(f"transition: expected one of {', '.join(TRANSITIONS)}", "transition")
    if duration_ms is not None and not 0 <= duration_ms <= MAX_DURATION_MS:
        raise Invalid(f"duration_ms: {duration_ms!r} is out of range [0, {MAX_DURATION_MS}]",
                      "duration_ms")
    if color is not None:
        try:
            parse_color(color)
        except ValueError:
            raise Invalid("color: expected a colour '#rrggbb'", "color") from None


def _toward(level: float, target: float, step: float) -> float:
    """One step of a linear fade; snaps to the target within float rounding."""
    level = min(target, level + step) if target > level else max(target, level - step)
    return target if abs(level - target) < 1e-6 else level


def _check_gain(db: float) -> None:
    if not -100.0 <= db <= 20.0:
        raise Invalid(f"gain_db: {db!r} is out of range [-100, 20]", "gain_db")


_HANDLERS: dict[type, Any] = {
    Preview: SwitcherState._preview,
    Program: SwitcherState._program,
    Cut: SwitcherState._cut,
    Auto: SwitcherState._auto,
    TBar: SwitcherState._tbar,
    FTB: SwitcherState._ftb,
    DefineLayout: SwitcherState._define_layout,
    DeleteLayout: SwitcherState._delete_layout,
    DefineOverlay: SwitcherState._define_overlay,
    ShowOverlay: SwitcherState._show_overlay,
    HideOverlay: SwitcherState._hide_overlay,
    DeleteOverlay: SwitcherState._delete_overlay,
    SetAudio: SwitcherState._audio,
}
