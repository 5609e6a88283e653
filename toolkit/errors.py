"""The one error root: every failure a user can cause or meet leaves the toolkit as a ToolkitError."""

from __future__ import annotations


class ToolkitError(Exception):
    """A failure explained in one line, with an optional hint on what to do next."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} (hint: {self.hint})"
        return self.message


class InputError(ToolkitError):
    """An argument or input file that cannot be used as given."""

    exit_code = 2


class EngineUnavailable(ToolkitError):
    """No Docker engine answered."""

    exit_code = 2


class EngineError(ToolkitError):
    """The engine answered, but refused or failed a request."""


class BuildFailed(ToolkitError):
    """A compiler or build step failed; `log` holds its own output, `lacking` what that output says it could not
    find: (kind, name) pairs, ("header", "zlib.h"), ("library", "z"), ("pkg-config", "zlib")."""

    def __init__(self, message: str, hint: str | None = None, log: str = "",
                 lacking: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message, hint)
        self.log = log
        self.lacking = lacking


class TimedOut(BuildFailed):
    """A build that ran past its time limit (not worth running again another way)."""


def timed_out(what: str, seconds: float) -> BuildFailed:
    """A build (natively or in its container) that ran past --timeout, in the one wording every path uses."""
    return TimedOut(f"{what} stopped: it ran past its time limit of {seconds:g} s",
                       hint="give it longer with --timeout SECONDS (0: no limit)")


class VerifyFailed(ToolkitError):
    """A binary failed verification; `reasons` lists the failed checks in the user's words."""

    def __init__(self, message: str, reasons: list[str], hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.reasons = reasons
