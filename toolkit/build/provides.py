"""Which Debian package provides what a failed build lacked: the headers, -l libraries and pkg-config files its
output says it could not find, looked up for the target's architecture in the archive's Contents index. The index
is fetched from the host's mirror once per architecture (checked against the signed Release) and kept in the
user's cache as the lines that matter here: headers, static archives and .pc files."""

from __future__ import annotations

import gzip
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .. import files, targets
from ..errors import BuildFailed, ToolkitError

log = logging.getLogger(__name__)

Lacked = tuple[str, str]  # (kind, name): ("header", "zlib.h"), ("library", "z"), ("pkg-config", "zlib")

# How gcc, clang (zig cc), GNU ld, lld, pkg-config and Meson say that a file is not there.
_SAID = (
    ("header", re.compile(r"fatal error: '?([\w./+-]+\.(?:h|hh|hpp|hxx|H|h\+\+))'?(?::| file not found)")),
    ("library", re.compile(r"(?:cannot find|unable to find library) -l([\w.+-]+)")),
    ("pkg-config", re.compile(r"Package '?([\w.+-]+)'?,? (?:was not found in the pkg-config search path"
                              r"|required by '[^']*', not found)")),
    ("pkg-config", re.compile(r'ERROR: Dependency "([\w.+-]+)" not found')),
)
_SCAN_MAX = 8 << 20  # of a build's output, the last 8 MiB are read: its failing step is at the end
_MAX_AGE = 30 * 86400  # a cached index older than this is fetched again (the suite's point releases move on)
_CONTENTS_MAX = 128 << 20  # Contents-all.gz is 34 MB, an architecture's 11 MB: a bigger one is not read


def lacking(output: Path) -> tuple[Lacked, ...]:
    """What a build's output (a file) says it could not find, each once, in the order said."""
    found: dict[Lacked, None] = {}
    try:
        with open(output, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > _SCAN_MAX:
                fh.seek(size - _SCAN_MAX)
                fh.readline()  # a line cut in two is not read
            for raw in fh:
                line = raw[:4096].decode("utf-8", "replace")
                for kind, said in _SAID:
                    for name in said.findall(line):
                        found[(kind, name)] = None
    except OSError:
        return ()
    return tuple(found)


def paths(lacked: Lacked, target: targets.Target) -> list[str]:
    """Where Debian puts such a file for target, most likely first (paths as the Contents index writes them)."""
    kind, name = lacked
    multiarch = target.lib_dir_name
    if kind == "header":
        return [f"usr/include/{name}", f"usr/include/{multiarch}/{name}"]
    if kind == "library":
        return [f"usr/lib/{multiarch}/lib{name}.a", f"usr/lib/lib{name}.a"]
    return [f"usr/lib/{multiarch}/pkgconfig/{name}.pc", f"usr/share/pkgconfig/{name}.pc"]


def _describe(lacked: Lacked) -> str:
    kind, name = lacked
    return {"header": name, "library": f"-l{name} (lib{name}.a)", "pkg-config": f"{name}.pc"}[kind]


def find(lacked: Sequence[Lacked], target: targets.Target,
         index: Callable[[str], Path | None] | None = None) -> list[tuple[str, str]]:
    """(what was lacking, the package that provides it for target) for each one Debian has a package for; the
    architecture's index first, the architecture-independent packages' (Contents-all) only for what is left."""
    index = index or cached_index
    found: list[tuple[str, str]] = []
    left = list(lacked)
    for arch in (target.debian_arch, "all"):
        if not left:
            break
        path = index(arch)
        if path is None:
            break
        wanted = {p: item for item in left for p in paths(item, target)}
        # a header by a path of its own (libxml/parser.h) may sit deeper (usr/include/libxml2/...); a bare name
        # (config.h) could be any package's
        suffixes = {f"/{name}": (kind, name) for kind, name in left if kind == "header" and "/" in name}
        packages = _search(path, wanted, suffixes)
        for item in list(left):
            exact = [packages[p] for p in paths(item, target) if p in packages]
            inside = packages.get(f"*/{item[1]}") if item[0] == "header" and "/" in item[1] else None
            choice = exact[0] if exact else inside
            if choice:
                found.append((_describe(item), choice))
                left.remove(item)
    return found


def _search(index: Path, wanted: dict[str, Lacked], suffixes: dict[str, Lacked]) -> dict[str, str]:
    """One pass over an index: the package of each wanted path, and of the first header path ending in one of
    suffixes (usr/include/libxml2/libxml/parser.h for libxml/parser.h), under "*/NAME"."""
    out: dict[str, str] = {}
    with open(index, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            path, _, packages = line.rstrip("\n").partition("\t")
            if path in wanted:
                out[path] = _pick(packages)
            elif suffixes and path.startswith("usr/include/"):
                for suffix in suffixes:
                    if path.endswith(suffix) and f"*{suffix}" not in out:
                        out[f"*{suffix}"] = _pick(packages)
    return out


def _pick(packages: str) -> str:
    """Of the packages that ship a file, a -dev package (what a build installs) when there is one."""
    names = [p.rsplit("/", 1)[-1] for p in packages.split(",") if p]
    return next((n for n in names if n.endswith("-dev")), names[0] if names else "")


def _interesting(path: str) -> bool:
    return path.startswith(("usr/include/", "usr/share/pkgconfig/")) or (
        path.startswith("usr/lib/") and path.endswith((".a", ".pc")))


def cached_index(arch: str) -> Path | None:
    """The kept index of the host suite's Contents-<arch>.gz (arch "all": the architecture-independent
    packages), fetched when there is none or it is old; None when it cannot be had (no mirror answers, no
    gpgv to check it with): the build's error then has no hint, and the reason is logged."""
    from ..rootfs import mirror  # the Debian archive reader lives with rootfs, which reads the same mirror

    suite = mirror.host_suite()
    where = files.cache_dir() / "contents"
    kept = where / f"{suite}-{arch}.txt"
    if kept.is_file() and time.time() - kept.stat().st_mtime < _MAX_AGE:
        return kept
    try:
        where.mkdir(parents=True, exist_ok=True)
        with files.exclusive(f"contents-{suite}-{arch}", waiting="waiting for another fromscratch process that is "
                                                                   f"fetching Debian's file index for {arch}"):
            if kept.is_file() and time.time() - kept.stat().st_mtime < _MAX_AGE:
                return kept  # the other process fetched it
            _fetch(mirror, suite, arch, kept)
        return kept
    except (ToolkitError, OSError, EOFError) as exc:  # gzip's errors are OSError and EOFError
        log.info("no package hint: Debian's file index for %s cannot be had (%s)", arch, exc)
        return None


def _fetch(mirror: Any, suite: str, arch: str, kept: Path) -> None:
    archive = mirror.host_mirror()
    rel = mirror.release(archive, suite)
    name = f"main/Contents-{arch}.gz"
    size = rel.sha256.get(name, ("", 0))[1]
    if size > _CONTENTS_MAX:
        raise BuildFailed(f"{name} is {size:,} bytes, more than a Contents index holds")
    log.warning("looking up which package has what the build lacked: fetching Debian's %s (%d MB, once; "
                "kept in %s)", name, size >> 20, kept.parent)
    with files.temp_dir("fromscratch-contents-", str(kept.parent)) as tmp:
        mirror.download_index(archive, rel, name, tmp / "Contents.gz")
        keep(tmp / "Contents.gz", kept)


def keep(contents: Path, kept: Path) -> None:
    """The lines of a Contents-<arch>.gz that name headers, static archives and .pc files, as PATH<tab>PACKAGES
    (what a lookup reads: a fifth of the whole), written whole to kept or not at all."""
    with files.atomic_output(kept) as tmp, open(tmp, "w", encoding="utf-8") as out, \
            gzip.open(contents, "rt", encoding="utf-8", errors="replace") as lines:
        for line in lines:
            parts = line.rsplit(None, 1)  # a path may hold spaces, the packages none
            if len(parts) == 2 and _interesting(parts[0]):
                out.write(f"{parts[0]}\t{parts[1]}\n")


def explain(errors: Sequence[BaseException | None], targets_of: Sequence[targets.Target],
            phrase: Callable[[targets.Target, list[tuple[str, str]]], str]) -> None:
    """Give each failed build that lacked a file Debian packages a hint naming the package, in phrase's words
    (which differ by build: --package for a project, apt-get for a native --src build...)."""
    for error, target in zip(errors, targets_of, strict=True):
        if isinstance(error, BuildFailed) and error.lacking:
            found = find(error.lacking, target)
            if found:
                said = phrase(target, found)
                error.hint = f"{said}; {error.hint}" if error.hint else said


def _said(found: list[tuple[str, str]]) -> tuple[str, list[str]]:
    """"zlib.h is in Debian's zlib1g-dev, png.h in libpng-dev", and the packages, each once."""
    parts = [f"{what} {'is in' if i == 0 else 'in'} {'Debian' + chr(39) + 's ' if i == 0 else ''}{pkg}"
             for i, (what, pkg) in enumerate(found)]
    return ", ".join(parts), list(dict.fromkeys(pkg for _, pkg in found))


def for_project(toolchain: str) -> Callable[[targets.Target, list[tuple[str, str]]], str]:
    """The hint of a --project build: the --package to add (zig links musl, so it says to use gcc for that)."""

    def phrase(target: targets.Target, found: list[tuple[str, str]]) -> str:
        said, packages = _said(found)
        flags = " ".join(f"--package {p}" for p in packages)
        if toolchain == "zig":
            return f"{said}, built for glibc, which zig does not link: use --toolchain container with {flags}"
        return f"{said}: add {flags}"

    return phrase


def for_sources(toolchain: str) -> Callable[[targets.Target, list[tuple[str, str]]], str]:
    """The hint of a --src build: natively, the package to install on this host for the target; in the build
    container or with zig, a project build with --package (a --src build takes no packages)."""
    from .toolchain import apt_hint

    def phrase(target: targets.Target, found: list[tuple[str, str]]) -> str:
        said, packages = _said(found)
        flags = " ".join(f"--package {p}" for p in packages)
        host = targets.host()
        if toolchain == "native":
            own = target.architecture == host.architecture
            return f"{said}: {apt_hint(' '.join(p if own else f'{p}:{target.debian_arch}' for p in packages), host)}"
        how = "zig does not link Debian's glibc builds: " if toolchain == "zig" else ""
        return (f"{said}; {how}a --src build takes no packages: build the sources as a --project with "
                f"--toolchain container and {flags}")

    return phrase
