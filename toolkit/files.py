"""The user's disk: inputs checked before they are opened, outputs written under a temporary name and renamed into
place only when complete, scratch directories and locks that never outlive the run."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from . import interrupts
from .errors import InputError

log = logging.getLogger(__name__)

_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def sha256(path: Path) -> tuple[str, int]:
    """The hex sha256 of a file's bytes and their count, read in 1 MiB chunks (a file of any size)."""
    import hashlib  # here, not at the top: every task imports this module, few hash (OpenSSL ~2 ms)

    sha, size = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            sha.update(chunk)
            size += len(chunk)
    return sha.hexdigest(), size


def regular_input(path: Path, what: str = "input", allow_dir: bool = False) -> Path:
    """path itself, after checking (through symlinks) that it is a regular file that can be opened without
    blocking: a FIFO, device or socket is refused, because reading one could wait for ever or never end."""
    try:
        st = path.stat()
    except FileNotFoundError:
        dangling = " (a symlink to a missing file)" if path.is_symlink() else ""
        raise InputError(f"{path}: no such {what}{dangling}") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the {what} ({exc.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        if allow_dir:
            return path
        raise InputError(f"{path}: is a directory, not a {what}")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{path}: is {_kind(st.st_mode)}, not a regular file", hint=f"pass the {what} itself")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: cannot read the {what} (permission denied)")
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(out: Path, mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary path in out's directory; on success it becomes out, on any failure it is removed.

    mode defaults to what a plain open() would give (0666 less the umask), not mkstemp's private 0600.
    """
    if out.is_symlink():
        out = Path(os.path.realpath(out))  # replace the file the link names, keep the link
    parent = out.parent if str(out.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise InputError(f"{out}: cannot create the output directory {parent}: a file is in the way") from None
    except OSError as exc:
        raise InputError(f"{out}: cannot create the output directory {parent} ({exc.strerror})") from None
    with contextlib.suppress(FileNotFoundError):
        st = out.stat()
        if stat.S_ISDIR(st.st_mode):
            raise InputError(f"{out}: is a directory", hint="give a file path for the output")
        if not stat.S_ISREG(st.st_mode):
            # renaming over it would silently replace, say, /dev/null with a regular file
            raise InputError(f"{out}: is {_kind(st.st_mode)}; refusing to replace it with the output",
                             hint="give a regular file path for the output")
    try:
        fd, name = tempfile.mkstemp(dir=parent, prefix=f".{out.name}.", suffix=".partial")
    except OSError as exc:
        raise InputError(f"{out}: cannot write to {parent} ({exc.strerror})",
                         hint="choose an output directory you can write to") from None
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, mode if mode is not None else 0o666 & ~_umask())
        with interrupts.deferred():
            os.replace(tmp, out)
    finally:
        with interrupts.deferred(), contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def scratch_dir() -> str | None:
    """Where big temporary files go: TMPDIR when set, else /var/tmp (disk) rather than a tmpfs /tmp."""
    if os.environ.get("TMPDIR"):
        return None
    return "/var/tmp" if os.path.isdir("/var/tmp") and os.access("/var/tmp", os.W_OK) else None


@contextlib.contextmanager
def temp_dir(prefix: str, parent: str | None = None) -> Iterator[Path]:
    """A scratch directory (in TMPDIR unless parent is given) removed on the way out, however the block ends."""
    path: Path | None = None
    try:
        path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
        yield path
    finally:
        if path is not None:
            mounted = _mounts_under(path)
            if mounted:
                # a child killed mid-way (debootstrap) can leave /proc or a bind mount of /dev inside: deleting
                # through it would reach the host's files
                log.warning("left the scratch directory %s: %s still mounted there", path, ", ".join(mounted))
            else:
                with interrupts.deferred():
                    shutil.rmtree(path, ignore_errors=True)
                if path.exists():
                    log.warning("could not remove the scratch directory %s completely; remove it by hand", path)


def _mounts_under(path: Path) -> list[str]:
    """Mount points at or below path (Linux's /proc/self/mountinfo; elsewhere none are known)."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    root = os.path.realpath(path)
    points = [line.split()[4].encode().decode("unicode_escape") for line in lines if len(line.split()) > 4]
    return [p for p in points if p == root or p.startswith(root + os.sep)]


@contextlib.contextmanager
def exclusive(name: str, waiting: str) -> Iterator[None]:
    """Hold the machine-wide lock called name for the block; say `waiting` once if another process holds it.

    The lock is flock(2) on a file in $TMPDIR/fromscratch-locks: the kernel releases it when the holder exits,
    however it exits, so no stale lock can outlive a crash. The files themselves stay (removing a lock file
    that another process is about to open would split the lock in two).
    """
    import fcntl

    locks = Path(tempfile.gettempdir()) / "fromscratch-locks"
    try:
        locks.mkdir(exist_ok=True)
        with contextlib.suppress(PermissionError):
            os.chmod(locks, 0o1777)  # every user of this machine shares the engine, so they share the locks
        path = locks / f"{name}.lock"
        try:
            fd = os.open(path, os.O_RDONLY)  # no O_CREAT on another user's file: fs.protected_regular
        except FileNotFoundError:
            fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
    except OSError as exc:
        raise InputError(f"cannot create the lock file for {name} in {locks} ({exc.strerror})",
                         hint="is TMPDIR writable?") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning("%s", waiting)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
