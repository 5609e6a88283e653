"""The other names a program was installed under: the symlinks a build installed beside its programs (collect.sh
lists them), made beside the programs written, by name, once they are written. No symlink leads anywhere but to a
program beside it."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import BuildFailed
from ..sbom import spdx

LIST = ".symlinks"  # in out/.records: collect.sh's list of the symlinks installed beside the programs, LINK/PROGRAM
_MAX_LINES = 1000


def deliver(listed: Path, place: Callable[[str], Path], programs: set[str],
            outputs: contextlib.ExitStack) -> dict[str, list[str]]:
    """The links listed (LINK/PROGRAM a line), each made beside its program where place puts them, pointing at it
    by name, as outputs closes without error; a name that is not a plain printable file name, that is a program's
    or an SBOM's, or that place would put in another directory is left out. By program, the names it also goes
    by."""
    lines = listed.read_text(errors="replace").splitlines()[:_MAX_LINES] if listed.is_file() else []
    also: dict[str, list[str]] = {}
    for line in lines:
        name, _, program = line.partition("/")
        if (program not in programs or name in programs or not name or name.startswith(".") or "/" in program
                or not name.isprintable() or name.endswith(spdx.SUFFIX) or name in also.get(program, [])):
            continue
        link = place(name)
        if link.parent != place(program).parent:
            continue
        outputs.enter_context(_when_done(link, program))
        also.setdefault(program, []).append(name)
    return also


@contextlib.contextmanager
def _when_done(link: Path, to: str) -> Iterator[None]:
    """link -> to (a name in the same directory), made when the block ends without error: under a temporary name,
    then renamed over whatever link was (a program's earlier copy there is replaced by the link)."""
    yield
    if link.is_dir() and not link.is_symlink():
        raise BuildFailed(f"{link}: a directory is in the way of the link to {to}")
    tmp = link.with_name(f".{link.name}.{os.getpid()}.{threading.get_ident()}.symlink")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    tmp.symlink_to(to)
    os.replace(tmp, link)
