"""What a link put into a program, as its linker names the inputs and as the package manager of the machine that
linked knows them: links.sh (POSIX sh and awk, on the host and in the build container alike) traces and
resolves a link; its record is read by records.py (apart: a build loads this module before it starts, that one
while it runs)."""

from __future__ import annotations

import functools
from pathlib import Path

GNU, ZIG = "gnu", "zig"
SCRIPT_NAME = "links.sh"


@functools.cache
def script() -> str:
    """links.sh, the functions the compiler wrappers and the project build source (read once, from beside this
    module: the wheel ships it there), its own sum first: the records it keeps are another script's no more."""
    import hashlib

    text = (Path(__file__).parent / SCRIPT_NAME).read_text()
    return f"FS_LINKS_SUM={hashlib.sha256(text.encode()).hexdigest()[:16]}\n{text}"


def argv(function: str, *args: str) -> list[str]:
    """A command that runs one of links.sh's functions with args (for a run in a container too, where this file is
    not: the script travels as sh's argument)."""
    return ["sh", "-c", f'{script()}\n{function} "$@"', "sh", *args]
