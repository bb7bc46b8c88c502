"""Typed errors of the switcher core; each maps to one HTTP status for the API glue.

An error raised by `SwitcherState.apply` (or resolved into a `Switcher.submit` future) means the
command changed nothing.
"""

from __future__ import annotations


class SwitcherError(Exception):
    """Base class. `status` is the HTTP status the API answers with; `field` names the bad
    field of the command body when there is one."""

    status = 500
    code = "error"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"error": self.code, "message": self.message}
        if self.field is not None:
            out["field"] = self.field
        return out


class Invalid(SwitcherError):
    """Malformed command: unknown op, missing/extra field, wrong type, value out of range."""

    status = 400
    code = "invalid"


class NotFound(SwitcherError):
    """The command names a source, layout or overlay that does not exist."""

    status = 404
    code = "not_found"


class Conflict(SwitcherError):
    """The command is well-formed but not possible now (e.g. cut with an empty preview)."""

    status = 409
    code = "conflict"


class Busy(SwitcherError):
    """The command queue is full (the switcher is not keeping up); retry later."""

    status = 503
    code = "busy"
