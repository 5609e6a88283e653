"""The user's disk: inputs checked before they are opened, outputs written under a temporary name and renamed into
place only when complete, scratch directories and locks that never outlive the run."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
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


def small_text(path: Path, limit: int, what: str) -> str:
    """A regular file's UTF-8 text, refused in one line when it is larger than limit bytes or not UTF-8."""
    regular_input(path, what)
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
        if len(data) > limit:
            raise InputError(f"{path}: more than a {what} holds ({limit} bytes)")
        return data.decode()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the {what} ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: the {what} is not UTF-8 text") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def output_file(out: Path) -> Path:
    """out, if an output file may be written there: nothing there yet, or a regular file (through a symlink).
    A directory, a device (/dev/full, /dev/null), a FIFO or a socket is refused: renaming over it would silently
    replace, say, /dev/null with a regular file. Checked again when the file is written (atomic_output)."""
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        st = out.stat()
        if stat.S_ISDIR(st.st_mode):
            raise InputError(f"{out}: is a directory", hint="give a file path for the output")
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"{out}: is {_kind(st.st_mode)}; refusing to replace it with the output",
                             hint="give a regular file path for the output")
    return out


@contextlib.contextmanager
def atomic_output(out: Path, mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary path in out's directory; on success it becomes out, on any failure it is removed, and
    so are the directories made for it when they are still empty.

    mode defaults to what a plain open() would give (0666 less the umask), not mkstemp's private 0600.
    """
    if out.is_symlink():
        out = Path(os.path.realpath(out))  # replace the file the link names, keep the link
    parent = out.parent if str(out.parent) else Path(".")
    made = [d for d in (parent, *parent.parents) if not d.exists()]  # removed again if nothing is written
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise InputError(f"{out}: cannot create the output directory {parent}: a file is in the way") from None
    except OSError as exc:
        raise InputError(f"{out}: cannot create the output directory {parent} ({exc.strerror})") from None
    output_file(out)
    try:
        fd, name = tempfile.mkstemp(dir=parent, prefix=f".{out.name}.", suffix=".partial")
    except OSError as exc:
        raise InputError(f"{out}: cannot write to {parent} ({exc.strerror})",
                         hint="choose an output directory you can write to") from None
    os.close(fd)
    tmp = Path(name)
    done = False
    try:
        yield tmp
        os.chmod(tmp, mode if mode is not None else 0o666 & ~_umask())
        with interrupts.deferred():
            os.replace(tmp, out)
        done = True
    finally:
        with interrupts.deferred():
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            for directory in made if not done else ():
                with contextlib.suppress(OSError):  # still empty: ours to remove; else someone wrote there
                    directory.rmdir()


def keep(path: Path, data: str | bytes) -> bool:
    """An entry of a cache written whole, or not at all: a cache that cannot be written (read-only, full, a file
    in the way of its directory) costs the next run the work again, never this run its result. False when it was
    not kept."""
    try:
        with atomic_output(path) as tmp:
            if isinstance(data, bytes):
                tmp.write_bytes(data)
            else:
                tmp.write_text(data)
    except (OSError, InputError) as exc:  # atomic_output says a directory it cannot make as an InputError
        log.info("not kept in %s: %s", path, exc)
        return False
    return True


def scratch_dir() -> str | None:
    """Where big temporary files go: TMPDIR when set, else /var/tmp (disk) rather than a tmpfs /tmp."""
    if os.environ.get("TMPDIR"):
        return None
    return "/var/tmp" if os.path.isdir("/var/tmp") and os.access("/var/tmp", os.W_OK) else None


def cache_dir() -> Path:
    """What the toolkit keeps between runs: $XDG_CACHE_HOME/fromscratch, else ~/.cache/fromscratch."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fromscratch"


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


@dataclass(frozen=True)
class TreeEntry:
    """One entry of a tree to copy, relative to its top: a directory, a regular file (read from source, which is
    a symlink's target when the link led out of the tree), or a symlink whose target stays inside the tree."""

    rel: str
    kind: str  # "dir", "file" or "link"
    mode: int
    mtime_ns: int
    source: str = ""
    link: str = ""


def tree(root: Path, skip: Callable[[str], bool] = lambda path: False) -> Iterator[TreeEntry]:
    """The entries of root, parents before children, in name order, for a copy a build may write to without
    reaching anything else: regular files, directories and symlinks only (a FIFO, socket or device is refused in
    one line: reading one may never end, /dev/zero fills the disk); a symlink that points into the tree points
    into the copy (relative), one that leads out of it to a file becomes a copy of that file, one to a directory
    outside is refused, and a dangling one that leads out is left out. skip(path) leaves a path out."""
    top = os.path.realpath(root)

    def inside(path: str) -> bool:
        return path == top or path.startswith(top + os.sep)

    def refuse(path: str, what: str) -> InputError:
        return InputError(f"{path}: is {what}; a build copies only files, directories and symlinks",
                          hint="remove it from the project or move it out, then build again")

    def link(path: str, rel: str, st: os.stat_result) -> Iterator[TreeEntry]:
        target = os.readlink(path)
        if not os.path.isabs(target) and inside(os.path.normpath(os.path.join(os.path.dirname(path), target))):
            yield TreeEntry(rel, "link", 0o777, st.st_mtime_ns, link=target)
            return
        real = os.path.realpath(path)
        if inside(real):
            yield TreeEntry(rel, "link", 0o777, st.st_mtime_ns, link=os.path.relpath(real, os.path.dirname(path)))
            return
        try:
            target_st = os.stat(real)
        except OSError:
            log.warning("left out %s: a symlink to %s, which is missing and outside the project", path, target)
            return
        if stat.S_ISDIR(target_st.st_mode):
            raise refuse(path, f"a symlink to the directory {real}, outside the project (a build could write there)")
        if not stat.S_ISREG(target_st.st_mode):
            raise refuse(path, f"a symlink to {real}, {_kind(target_st.st_mode)}")
        log.info("copying %s in place of the symlink %s, which leads out of the project", real, path)
        yield TreeEntry(rel, "file", target_st.st_mode, target_st.st_mtime_ns, source=real)

    pending = [(top, "")]  # a stack, not recursion: a tree may nest deeper than Python's recursion limit
    while pending:
        path, rel = pending.pop()
        try:
            st = os.lstat(path)
        except OSError as exc:
            raise InputError(f"{path}: cannot read it ({exc.strerror})") from None
        if stat.S_ISLNK(st.st_mode):
            yield from link(path, rel, st)
        elif stat.S_ISREG(st.st_mode):
            yield TreeEntry(rel, "file", st.st_mode, st.st_mtime_ns, source=path)
        elif stat.S_ISDIR(st.st_mode):
            yield TreeEntry(rel, "dir", st.st_mode, st.st_mtime_ns, source=path)
            try:
                names = sorted(os.listdir(path), reverse=True)  # popped in name order
            except OSError as exc:
                raise InputError(f"{path}: cannot list the directory ({exc.strerror})") from None
            pending += [(os.path.join(path, n), f"{rel}/{n}" if rel else n) for n in names
                        if not skip(os.path.join(path, n))]
        else:
            raise refuse(path, _kind(st.st_mode))


def copy_tree(root: Path, dest: Path, skip: Callable[[str], bool] = lambda path: False) -> None:
    """root's tree (see tree()) copied to dest, which must not exist."""
    copy_entries(tree(root, skip), dest)


def copy_entries(entries: Iterable[TreeEntry], dest: Path) -> None:
    """Entries (parents before children) copied under dest, made here: modes and modification times kept (make
    decides what to rebuild by them); directories stay writable by their owner, so the build can write."""
    dirs: list[tuple[Path, TreeEntry]] = []
    dest.mkdir(mode=0o700, exist_ok=True)
    for entry in entries:
        path = dest / entry.rel if entry.rel else dest
        if path == dest:
            dirs.append((path, entry))
            continue
        try:
            if entry.kind == "dir":
                path.mkdir(mode=0o700)
                dirs.append((path, entry))
            elif entry.kind == "link":
                os.symlink(entry.link, path)
                os.utime(path, ns=(entry.mtime_ns, entry.mtime_ns), follow_symlinks=False)
            else:
                shutil.copyfile(entry.source, path, follow_symlinks=False)
                os.chmod(path, stat.S_IMODE(entry.mode))
                os.utime(path, ns=(entry.mtime_ns, entry.mtime_ns))
        except OSError as exc:
            raise InputError(f"{entry.source or dest / entry.rel}: cannot copy it ({exc.strerror})") from None
    for path, entry in reversed(dirs):  # children first: writing into a directory changes its mtime
        os.chmod(path, stat.S_IMODE(entry.mode) | stat.S_IRWXU)
        os.utime(path, ns=(entry.mtime_ns, entry.mtime_ns))


def excerpt(path: Path, whole: int = 64 << 10, head: int = 16 << 10, tail: int = 32 << 10) -> str:
    """A long output file as a person reads it, in bounded memory: all of it when it is short, else its first
    and last parts (a compiler's first error, a build's last lines) around a note of what was left out."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size <= max(whole, head + tail):
            return fh.read().decode("utf-8", "replace")
        first = fh.read(head).decode("utf-8", "replace").rsplit("\n", 1)[0]
        fh.seek(size - tail)
        last = fh.read(tail).decode("utf-8", "replace").split("\n", 1)[-1]
    return f"{first}\n[... {size - head - tail:,} bytes of output left out ...]\n{last}"
