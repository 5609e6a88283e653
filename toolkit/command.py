"""Foundation: the command the user typed, `fromscratch` or `invoke`, for every hint that shows a command line."""

from __future__ import annotations

# `fromscratch` (the installed console script, `python -m toolkit`) works in any directory; `invoke` only in this
# checkout, whose tasks.py says so when Invoke loads it.
_name = "fromscratch"


def use(name: str) -> None:
    """Name the command in use: tasks.py calls it with "invoke" (or "inv", as the user typed it)."""
    global _name
    _name = name


def name() -> str:
    return _name


def line(args: str) -> str:
    """A command line to show the user: `line("image --tag hello")` is "fromscratch image --tag hello" when they
    ran fromscratch, "invoke image --tag hello" when they ran invoke."""
    return f"{_name} {args}"
