"""--src files as a build sees them: checked, named relative to one base directory, with the headers they may
include. compile/plan.py makes them a one-rule plan."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..files import regular_input

log = logging.getLogger(__name__)

# A source with one of these endings is C++: compiled and linked by g++ (libstdc++ static with the rest).
CXX_SUFFIXES = (".cc", ".cpp", ".cxx", ".C", ".c++")
HEADER_SUFFIXES = (".h", ".hh", ".hpp", ".hxx", ".H", ".h++", ".inc", ".inl", ".ipp", ".tcc")
_HEADER_WALK_CAP = 20_000  # entries looked at for headers: a source dropped into a huge tree stays cheap


@dataclass(frozen=True)
class Sources:
    """Sources as the compiler sees them: paths relative to one base directory, which becomes the build's src/
    natively and in the build container alike, so every build sees the same names (__FILE__, #include
    "sub/x.h", diagnostics) and gives the same binary. The base is the current directory when every source is
    under it (so relative -I flags mean what they meant), else the sources' common directory."""

    base: Path
    files: tuple[str, ...]

    @property
    def cxx(self) -> bool:
        return any(f.endswith(CXX_SUFFIXES) for f in self.files)

    def headers(self, cflags: Sequence[str] = ()) -> list[str]:
        """Header files an #include may name, relative to base: those under each source's directory and under
        each relative -I directory (copied into the build with the sources)."""
        roots = {os.path.dirname(f) for f in self.files}
        roots.update(f[2:] for f in cflags if f.startswith("-I") and len(f) > 2 and not os.path.isabs(f[2:]))
        found: set[str] = set()
        seen = 0
        for root in sorted(roots):
            top = self.base / root
            if not top.resolve().is_relative_to(self.base.resolve()):
                continue
            for dirpath, dirnames, filenames in os.walk(top):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                seen += len(filenames) + len(dirnames)
                if seen > _HEADER_WALK_CAP:
                    log.warning("stopped looking for headers under %s after %d entries", top, _HEADER_WALK_CAP)
                    return sorted(found)
                rel = os.path.relpath(dirpath, self.base)
                found.update(os.path.normpath(os.path.join(rel, n)) for n in filenames
                             if n.endswith(HEADER_SUFFIXES) and os.path.isfile(os.path.join(dirpath, n)))
        return sorted(found - {os.path.normpath(f) for f in self.files})


def sources(paths: Sequence[Path]) -> Sources:
    """The --src files, each a regular file given once."""
    if not paths:
        raise InputError("no source file given", hint="pass --src FILE.c")
    for src in paths:
        regular_input(src, "source file")
    absolute = [Path(os.path.abspath(s)) for s in paths]
    cwd = Path(os.getcwd())
    if all(p.is_relative_to(cwd) for p in absolute):
        base = cwd
    else:
        base = Path(os.path.commonpath([str(p.parent) for p in absolute]))
    # a name gcc would read as an option (-o.c, --help.c) is given as ./NAME: a file name is never a flag
    files = tuple(f"./{rel}" if rel.startswith("-") else rel for rel in (os.path.relpath(p, base) for p in absolute))
    dup = {f for f in files if files.count(f) > 1}
    if dup:
        raise InputError(f"{sorted(dup)[0]} is given twice", hint="pass each source once")
    return Sources(base, files)
