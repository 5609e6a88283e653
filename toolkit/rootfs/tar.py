"""A root filesystem as one layer tar: a directory or a tarball checked entry by entry, then streamed once.

A directory is scanned first (sorted entries, numeric owners, mtimes clamped), so the layer's exact size is known
before a byte is written; a tarball is read once to check it and count its size, then once more to stream it.
The stream itself is written in a single pass by `deliver` (rootfs/load.py).
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import stat
import tarfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from ..errors import InputError
from .tarsafe import Checker

CHUNK = 1 << 20
_BLOCK = tarfile.BLOCKSIZE
_RECORD = tarfile.RECORDSIZE
_CAPABILITY = "security.capability"  # file capabilities (ping's cap_net_raw): Docker keeps them as PAX xattrs
_ELF = b"\x7fELF"
_HEAD = 64  # enough of an ELF header for its class, byte order, machine and flags


@dataclass
class Plan:
    """What a layer will hold, known before it is written: its exact size and a way to produce its bytes."""

    source: str
    size: int
    entries: int
    checker: Checker
    chunks: Callable[[], Iterator[bytes]]
    newest: int = 0  # the latest mtime among the entries, before clamping
    head: Callable[[str], bytes | None] = lambda name: None  # the first bytes of a file entry, if ELF
    skipped: list[str] = field(default_factory=list)  # entries a tar cannot hold (sockets)


@dataclass(frozen=True)
class Budget:
    """How big a layer may be: a limit the user can raise (FROMSCRATCH_IMPORT_MAX) and, where it can be known,
    the free space where the layer goes (the engine's data directory). A tarball is stopped as soon as the sizes
    its entries declare, or the bytes it expands to, pass the smaller of the two: a small gzip that expands to
    gigabytes (a tar bomb) is refused after reading at most that much, and before a byte reaches the engine."""

    limit: int
    room: tuple[str, int] | None = None  # (directory, free bytes)

    @property
    def cap(self) -> int:
        return min(self.limit, self.room[1]) if self.room else self.limit

    def refuse(self, source: str, what: str) -> InputError:
        if self.room and self.room[1] < self.limit:
            where, free = self.room
            return InputError(f"{source}: {what} more than the {_bytes(free)} free in {where}, where the engine "
                              "keeps its images", hint="free some space there first")
        return InputError(f"{source}: {what} more than {_bytes(self.limit)}, the most an import may be (a tar "
                          "bomb?)", hint=f"FROMSCRATCH_IMPORT_MAX={max(2 * self.limit >> 30, 1)}g raises the limit")


def _bytes(n: int) -> str:
    return f"{n / (1 << 30):,.1f} GiB" if n >= 1 << 30 else f"{n / (1 << 20):,.1f} MiB"


def _pad(size: int) -> int:
    return -size % _BLOCK


def _tail(size: int) -> bytes:
    """End-of-archive: two zero blocks, then zeros up to a whole record, as tar(1) and tarfile write it."""
    end = size + 2 * _BLOCK
    return bytes(2 * _BLOCK + (-end % _RECORD))


# ---------------------------------------------------------------------------------------------- a directory


_MODE_KINDS = ((stat.S_ISREG, "file"), (stat.S_ISDIR, "dir"), (stat.S_ISLNK, "symlink"), (stat.S_ISCHR, "chardev"),
               (stat.S_ISBLK, "blockdev"), (stat.S_ISFIFO, "fifo"))


def _kind(mode: int) -> str:
    return next((kind for test, kind in _MODE_KINDS if test(mode)), "socket")


_TAR_TYPE = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
             "hardlink": tarfile.LNKTYPE, "chardev": tarfile.CHRTYPE, "blockdev": tarfile.BLKTYPE,
             "fifo": tarfile.FIFOTYPE}
_KIND_OF_TYPE = {t: kind for kind, t in _TAR_TYPE.items()}


def _scan(root: Path) -> Iterator[tuple[str, os.stat_result]]:
    """Every path below root with its lstat, depth first, each directory's names sorted (as tar --sort=name)."""
    stack: list[tuple[str, Iterator[os.DirEntry[str]]]] = []
    base = str(root)  # plain strings: pathlib's joins cost more than the rest of a scan step

    def listing(rel: str) -> Iterator[os.DirEntry[str]]:
        with os.scandir(os.path.join(base, rel) if rel else base) as it:
            return iter(sorted(it, key=lambda e: e.name))

    stack.append(("", listing("")))
    while stack:
        rel, it = stack[-1]
        entry = next(it, None)
        if entry is None:
            stack.pop()
            continue
        child = f"{rel}/{entry.name}" if rel else entry.name
        st = entry.stat(follow_symlinks=False)
        yield child, st
        if stat.S_ISDIR(st.st_mode):
            stack.append((child, listing(child)))


def plan_tree(root: Path, epoch: int, allow_devices: bool = False,
              owner: tuple[int, int] | None = None, budget: Budget | None = None) -> Plan:
    """Scan root into tar headers: sorted, numeric owners (or owner for all), mtimes clamped to epoch, hard links
    kept, file capabilities kept; every entry checked. Nothing in root is changed."""
    if not root.is_dir():
        raise InputError(f"{root}: not a directory")
    checker = Checker(str(root), allow_devices=allow_devices)
    base = str(root)
    items: list[tuple[bytes, str | None, int]] = []  # (header, file to copy or None, its size)
    first_link: dict[tuple[int, int], str] = {}
    skipped: list[str] = []
    size = newest = 0
    try:
        for rel, st in _scan(root):
            kind = _kind(st.st_mode)
            if kind == "socket":
                skipped.append(rel)
                continue
            info = tarfile.TarInfo(rel)
            info.mode = stat.S_IMODE(st.st_mode)
            info.uid, info.gid = owner if owner else (st.st_uid, st.st_gid)
            info.uname = info.gname = ""
            newest = max(newest, int(st.st_mtime))
            info.mtime = min(int(st.st_mtime), epoch)
            full = os.path.join(base, rel)
            copy: str | None = None
            if kind == "file" and st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                if key in first_link:
                    kind, info.linkname = "hardlink", first_link[key]
                else:
                    first_link[key] = rel
            if kind == "symlink":
                info.linkname = os.readlink(full)
            elif kind in ("chardev", "blockdev"):
                info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
            elif kind == "file":
                info.size, copy = st.st_size, full
                cap = _capability(full)
                if cap is not None:
                    info.pax_headers = {f"SCHILY.xattr.{_CAPABILITY}": cap.decode("utf-8", "surrogateescape")}
            info.type = _TAR_TYPE[kind]
            checker.add(rel, kind, info.linkname,
                        (info.devmajor, info.devminor) if kind in ("chardev", "blockdev") else None)
            header = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
            items.append((header, copy, info.size))
            size += len(header) + info.size + _pad(info.size)
    except OSError as exc:
        raise InputError(f"{root}: cannot read {exc.filename or ''} ({exc.strerror})",
                         hint="a full root filesystem is only readable as root") from None
    checker.finish()
    size += len(_tail(size))
    if budget is not None and size > budget.cap:
        raise budget.refuse(str(root), f"the tree holds {size:,} bytes,")

    def chunks() -> Iterator[bytes]:
        return _batched(_tree_pieces(items, size))

    def head(name: str) -> bytes | None:
        path = root / name
        return _head(path) if checker.kind(name) == "file" and path.is_file() else None

    return Plan(str(root), size, len(items), checker, chunks, newest, head, skipped)


def _capability(path: str) -> bytes | None:
    try:
        return os.getxattr(path, _CAPABILITY, follow_symlinks=False)
    except OSError:
        return None


def _head(path: Path) -> bytes | None:
    with open(path, "rb") as fh:
        data = fh.read(_HEAD)
    return data if data.startswith(_ELF) else None


def _tree_pieces(items: list[tuple[bytes, str | None, int]], total: int) -> Iterator[bytes]:
    written = 0
    for header, path, size in items:
        yield header
        written += len(header)
        if path is None:
            continue
        left = size
        try:
            with open(path, "rb") as fh:
                while left:
                    data = fh.read(min(CHUNK, left))
                    if not data:
                        break
                    left -= len(data)
                    yield data
                grew = bool(fh.read(1))
        except OSError as exc:
            raise InputError(f"{path} could not be read ({exc.strerror})",
                             hint="nothing may change the tree while it is imported") from None
        if left or grew:
            raise InputError(f"{path} changed size while it was being read",
                             hint="nothing may change the tree while it is imported")
        yield bytes(_pad(size))
        written += size + _pad(size)
    yield _tail(written)


def _batched(pieces: Iterator[bytes]) -> Iterator[bytes]:
    """Pieces joined into chunks of about CHUNK bytes: few large writes to the hash, the file and the socket."""
    buf = bytearray()
    for piece in pieces:
        if len(piece) >= CHUNK and not buf:
            yield piece
            continue
        buf += piece
        if len(buf) >= CHUNK:
            yield bytes(buf)
            buf.clear()
    if buf:
        yield bytes(buf)


# ---------------------------------------------------------------------------------------------- a tarball


_OPENERS: dict[str, Callable[..., Any]] = {"gzip": gzip.open, "bzip2": bz2.open, "xz": lzma.open}


def compression(path: Path) -> str | None:
    """gzip, bzip2 or xz by the file's magic bytes; None for a plain file."""
    with open(path, "rb") as fh:
        magic = fh.read(6)
    for name, prefix in (("gzip", b"\x1f\x8b"), ("bzip2", b"BZh"), ("xz", b"\xfd7zXZ")):
        if magic.startswith(prefix):
            return name
    return None


def open_decompressed(path: Path) -> BinaryIO:
    """The file as a plain tar stream (layers are stored uncompressed, so their digest is their diff_id)."""
    kind = compression(path)
    return _OPENERS[kind](path, "rb") if kind else open(path, "rb")  # type: ignore[no-any-return]


class _Counting(io.RawIOBase):
    """A decompressed stream whose bytes are counted, and stopped past the budget's cap."""

    def __init__(self, fh: BinaryIO, budget: Budget | None, source: str) -> None:
        self._fh = fh
        self._budget = budget
        self._source = source
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        data = self._fh.read(len(b))
        b[:len(data)] = data
        self.count += len(data)
        if self._budget is not None and self.count > self._budget.cap:
            raise self._budget.refuse(self._source, "it expands to")
        return len(data)


def _member_kind(m: tarfile.TarInfo) -> str:
    return "file" if m.isreg() else _KIND_OF_TYPE.get(m.type, "other")  # isreg: also old, contiguous, sparse


def plan_tarball(path: Path, allow_devices: bool = False, budget: Budget | None = None) -> Plan:
    """Read a tarball (plain, gzip, bzip2 or xz) once: check every member and count the uncompressed size, within
    the budget (the sizes the members declare, and the bytes the file expands to)."""
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    if not path.is_file():
        raise InputError(f"{path}: not a regular file or directory")
    checker = Checker(str(path), allow_devices=allow_devices)
    heads: dict[str, bytes] = {}  # executable ELF files only: the few hundred a rootfs has, 64 bytes each
    entries = newest = declared = 0
    compressed = compression(path) is not None
    try:
        with open_decompressed(path) as raw:
            # a plain tar is read seeking over file data; a compressed one has to be decompressed to be counted
            counting = _Counting(raw, budget, str(path)) if compressed else raw
            if budget is not None and not compressed and os.fstat(raw.fileno()).st_size > budget.cap:
                raise budget.refuse(str(path), "it is")
            with tarfile.open(fileobj=counting, mode="r|" if compressed else "r:") as tar:  # type: ignore[call-overload]
                for member in tar:
                    kind = _member_kind(member)
                    if kind == "other":
                        raise InputError(f"{path}: entry {member.name!r} has a tar type "
                                         f"({member.type!r}) an image layer cannot hold")
                    name = checker.add(member.name, kind, member.linkname,
                                       (member.devmajor, member.devminor))
                    entries += 1
                    newest = max(newest, int(member.mtime))
                    declared += member.size if kind == "file" else 0  # a sparse file's full size
                    if budget is not None and declared > budget.cap:
                        raise budget.refuse(str(path), "its entries declare")
                    if kind == "file" and member.mode & 0o111 and member.size >= _HEAD:
                        extracted = tar.extractfile(member)
                        data = extracted.read(_HEAD) if extracted is not None else b""
                        if data.startswith(_ELF):
                            heads[name] = data
            if isinstance(counting, _Counting):
                while counting.read(CHUNK):
                    pass
                size = counting.count
            else:
                size = os.fstat(raw.fileno()).st_size
    except (tarfile.TarError, EOFError, lzma.LZMAError, OSError, zlib.error) as exc:
        raise InputError(f"{path}: not a readable tar archive ({exc})") from None
    if entries == 0:
        raise InputError(f"{path}: an empty tar archive")
    checker.finish()

    def chunks() -> Iterator[bytes]:
        done = 0
        with open_decompressed(path) as fh:
            while data := fh.read(CHUNK):
                done += len(data)
                yield data
        if done != size:
            raise InputError(f"{path} changed while it was being imported")

    return Plan(str(path), size, entries, checker, chunks, newest, heads.get)

