"""Writing output files safely: a temporary name beside the target, renamed into place only when complete."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import InputError


@contextlib.contextmanager
def atomic_output(out: Path, mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary path in out's directory; on success it becomes out, on any failure it is removed."""
    parent = out.parent if str(out.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{out}: cannot create the output directory {parent} ({exc.strerror})") from None
    if out.is_dir():
        raise InputError(f"{out}: is a directory", hint="give a file path for the output")
    try:
        fd, name = tempfile.mkstemp(dir=parent, prefix=f".{out.name}.", suffix=".partial")
    except OSError as exc:
        raise InputError(f"{out}: cannot write to {parent} ({exc.strerror})") from None
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, out)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def scratch_dir() -> str | None:
    """Where big temporary files go: TMPDIR when set, else /var/tmp (disk) rather than a tmpfs /tmp."""
    if os.environ.get("TMPDIR"):
        return None
    return "/var/tmp" if os.path.isdir("/var/tmp") and os.access("/var/tmp", os.W_OK) else None
