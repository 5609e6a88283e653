"""Debian's Contents index of the host's mirror (which package ships which file), for one architecture: fetched
once, checked against the signed Release, and kept in the user's cache as the lines a failed build's hint, the
dependencies found and a Debian package's programs look up (compile/provides.py, compile/found.py): headers,
static archives, .so links, .pc files and programs, PATH<tab>PACKAGES."""

from __future__ import annotations

import gzip
import logging
import time
from pathlib import Path

from .. import files
from ..errors import BuildFailed, ToolkitError
from . import mirror

log = logging.getLogger(__name__)

_MAX_AGE = 30 * 86400  # a kept index older than this is fetched again (the suite's point releases move on)
# what a kept index holds: v2 added the .so development links (a package lacking its .a), v3 the programs
_KEPT_FORM = "v3"
_CONTENTS_MAX = 128 << 20  # Contents-all.gz is 34 MB, an architecture's 11 MB: a bigger one is not read


PROGRAM_DIRS = ("usr/bin/", "usr/sbin/", "bin/", "sbin/", "usr/games/")  # where a binary package's programs are


def _interesting(path: str) -> bool:
    return path.startswith(("usr/include/", "usr/share/pkgconfig/", *PROGRAM_DIRS)) or (
        path.startswith("usr/lib/") and path.endswith((".a", ".pc", ".so")))


def cached_index(arch: str, suite: str | None = None) -> Path | None:
    """The kept index of the host suite's (or suite's) Contents-<arch>.gz (arch "all": the architecture-independent
    packages), fetched when there is none or it is old; None when it cannot be had (no mirror answers, no
    gpgv to check it with): the build's error then has no hint, and the reason is logged."""
    suite = suite or mirror.host_suite()
    where = files.cache_dir() / "contents"
    kept = where / f"{suite}-{arch}.{_KEPT_FORM}.txt"
    if kept.is_file() and time.time() - kept.stat().st_mtime < _MAX_AGE:
        return kept
    try:
        where.mkdir(parents=True, exist_ok=True)
        with files.exclusive(f"contents-{suite}-{arch}", waiting="waiting for another fromscratch process that is "
                                                                   f"fetching Debian's file index for {arch}"):
            if kept.is_file() and time.time() - kept.stat().st_mtime < _MAX_AGE:
                return kept  # the other process fetched it
            _fetch(suite, arch, kept)
        return kept
    except (ToolkitError, OSError, EOFError) as exc:  # gzip's errors are OSError and EOFError
        log.info("no package hint: Debian's file index for %s cannot be had (%s)", arch, exc)
        return None


def _fetch(suite: str, arch: str, kept: Path) -> None:
    archive = mirror.host_mirror()
    rel = mirror.release(archive, suite)
    name = f"main/Contents-{arch}.gz"
    size = rel.sha256.get(name, ("", 0))[1]
    if size > _CONTENTS_MAX:
        raise BuildFailed(f"{name} is {size:,} bytes, more than a Contents index holds")
    log.warning("looking up which Debian package has a file: fetching Debian's %s (%d MB, once; "
                "kept in %s)", name, size >> 20, kept.parent)
    with files.temp_dir("fromscratch-contents-", str(kept.parent)) as tmp:
        mirror.download_index(archive, rel, name, tmp / "Contents.gz")
        keep(tmp / "Contents.gz", kept)


def keep(contents: Path, kept: Path) -> None:
    """The lines of a Contents-<arch>.gz that name headers, static archives, .so development links and .pc files,
    as PATH<tab>PACKAGES (what a lookup reads: a fifth of the whole), written whole to kept or not at all."""
    with files.atomic_output(kept) as tmp, open(tmp, "w", encoding="utf-8") as out, \
            gzip.open(contents, "rt", encoding="utf-8", errors="replace") as lines:
        for line in lines:
            parts = line.rsplit(None, 1)  # a path may hold spaces, the packages none
            if len(parts) == 2 and _interesting(parts[0]):
                out.write(f"{parts[0]}\t{parts[1]}\n")
