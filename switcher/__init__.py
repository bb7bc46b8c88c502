"""The soft switcher: a pure core (state machine, numpy compositor, audio mixer) and a
frame-synced clock engine around it. See `engine.Switcher` for the entry point."""

from .commands import (
    FTB,
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
    command_from_json,
)
from .engine import OutputQueue, Switcher
from .errors import Busy, Conflict, Invalid, NotFound, SwitcherError
from .program import ProgramFrame, samples_for_frame
from .state import SwitcherState

__all__ = [
    "FTB", "Auto", "Busy", "Command", "Conflict", "Cut", "DefineLayout", "DefineOverlay",
    "DeleteLayout", "DeleteOverlay", "HideOverlay", "Invalid", "NotFound", "OutputQueue",
    "Preview", "Program", "ProgramFrame", "SetAudio", "ShowOverlay", "Switcher",
    "SwitcherError", "SwitcherState", "TBar", "command_from_json", "samples_for_frame",
]
