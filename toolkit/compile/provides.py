"""Which Debian package provides what a failed build lacked: the headers, -l libraries and pkg-config files its
output says it could not find, looked up for the target's architecture in the archive's Contents index (its lines
PATH<tab>PACKAGES, as rootfs/contents.py keeps them; given as a function of the architecture, so that the build
wing never reaches for the mirror itself)."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from .. import targets
from ..errors import BuildFailed

log = logging.getLogger(__name__)

Lacked = tuple[str, str]  # (kind, name): ("header", "zlib.h"), ("library", "z"), ("pkg-config", "zlib"),
# ("shared", "onig"): the shared library only, libonig.so (what a package that lacks the static archive ships);
# ("program", "tclsh"): a build tool, /usr/bin/tclsh (looked up in the build machine's architecture's index)

# How gcc, clang (zig cc), GNU ld, lld, pkg-config and Meson say that a file is not there. (These patterns are
# compiled when a failed build's output is read, not by every command that imports this module.)
_SAID = (
    ("header", r"fatal error: '?([\w./+-]+\.(?:h|hh|hpp|hxx|H|h\+\+))'?(?::| file not found)"),
    ("library", r"(?:cannot find|unable to find library) -l([\w.+-]+)"),
    ("pkg-config", r"Package '?([\w.+-]+)'?,? (?:was not found in the pkg-config search path"
                   r"|required by '[^']*', not found)"),
    ("pkg-config", r'ERROR: Dependency "([\w.+-]+)" not found'),
)
# How make, dash and bash say that a command is not there (a build tool the project runs); counted only when a
# step failed for it soon after (make's Error 127, ninja stopping): a script that tries `git describe` and goes
# on without it (jq's) lacks nothing.
_FAILED_RUN = r"\bError 127\b|^ninja: build stopped"
_RUN_NEAR = 30  # lines
_SAID_RUN = (
    r"\bmake(?:\[\d+\])?: ([\w.+-]+): (?:No such file or directory|Command not found)",
    r"\bsh: (?:\d+: )?([\w.+-]+): (?:command )?not found",
    r": line \d+: ([\w.+-]+): command not found",
)
_SCAN_MAX = 8 << 20  # of a build's output, the last 8 MiB are read: its failing step is at the end
Index = Callable[[str], "Path | None"]  # a Debian architecture (arm64, all) -> its kept index, None if there is none


def lacking(output: Path) -> tuple[Lacked, ...]:
    """What a build's output (a file) says it could not find, each once, in the order said."""
    said_lacking = [(kind, re.compile(pattern)) for kind, pattern in _SAID]
    said_run = [re.compile(pattern) for pattern in _SAID_RUN]
    failed_run = re.compile(_FAILED_RUN)
    found: dict[Lacked, None] = {}
    try:
        with open(output, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > _SCAN_MAX:
                fh.seek(size - _SCAN_MAX)
                fh.readline()  # a line cut in two is not read
            tried: list[tuple[int, str]] = []  # commands not there: (line number, name)
            for number, raw in enumerate(fh):
                line = raw[:4096].decode("utf-8", "replace")
                for kind, said in said_lacking:
                    for name in said.findall(line):
                        found[(kind, name)] = None
                tried += [(number, name) for said in said_run for name in said.findall(line)]
                if failed_run.search(line):
                    for at, name in tried:
                        if number - at <= _RUN_NEAR:
                            found[("program", name)] = None
                    tried.clear()
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
    if kind == "shared":
        return [f"usr/lib/{multiarch}/lib{name}.so", f"usr/lib/lib{name}.so"]
    if kind == "program":
        return [f"usr/bin/{name}", f"bin/{name}", f"usr/sbin/{name}", f"sbin/{name}"]
    return [f"usr/lib/{multiarch}/pkgconfig/{name}.pc", f"usr/share/pkgconfig/{name}.pc"]


def _describe(lacked: Lacked) -> str:
    kind, name = lacked
    return {"header": name, "library": f"-l{name} (lib{name}.a)", "pkg-config": f"{name}.pc",
            "shared": f"lib{name}.so", "program": f"the program {name}"}[kind]


def find(lacked: Sequence[Lacked], target: targets.Target, index: Index) -> list[tuple[str, str]]:
    """(what was lacking, the package that provides it for target) for each one Debian has a package for; the
    architecture's index first, the architecture-independent packages' (Contents-all) only for what is left."""
    return [(_describe(item), package) for item, package in locate(lacked, target, index).items()]


def locate(lacked: Sequence[Lacked], target: targets.Target, index: Index,
           also_all: Callable[[Lacked], bool] = lambda item: True) -> dict[Lacked, str]:
    """The package that provides each of lacked for target that Debian has one for, in lacked's order: the
    architecture's index first, then the architecture-independent packages' (Contents-all) for what is left and
    also_all accepts (fetching that index only when something is)."""
    found: dict[Lacked, str] = {}
    left = list(lacked)
    for arch in (target.debian_arch, "all"):
        if arch == "all":
            left = [item for item in left if also_all(item)]
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
                found[item] = choice
                left.remove(item)
    return {item: found[item] for item in lacked if item in found}


def static_archives(index: Path, packages: Sequence[str]) -> dict[str, tuple[bool, bool]]:
    """For each of packages: whether it ships a static archive (lib*.a under usr/lib) and whether it ships a shared
    library's development link (lib*.so), read from one pass over an index."""
    wanted = set(packages)
    out = {p: (False, False) for p in packages}
    with open(index, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.startswith("usr/lib/"):
                continue
            path, _, names = line.rstrip("\n").partition("\t")
            archive, shared = path.endswith(".a"), path.endswith(".so")
            if not (archive or shared) or not path.rsplit("/", 1)[-1].startswith("lib"):
                continue
            for p in names.split(","):
                name = p.rsplit("/", 1)[-1]
                if name in wanted:
                    a, so = out[name]
                    out[name] = (a or archive, so or shared)
    return out


def programs(index: Path, packages: Sequence[str], dirs: Sequence[str]) -> dict[str, str]:
    """The programs packages ship (files directly in dirs), by name, each with the first package that ships it:
    one pass over an index."""
    wanted = set(packages)
    out: dict[str, str] = {}
    with open(index, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.startswith(tuple(dirs)):
                continue
            path, _, names = line.rstrip("\n").partition("\t")
            name = path.rsplit("/", 1)[-1]
            if not name or "/" in path[len(next(d for d in dirs if path.startswith(d))):]:
                continue
            for p in names.split(","):
                package = p.rsplit("/", 1)[-1]
                if package in wanted:
                    out.setdefault(name, package)
    return dict(sorted(out.items()))


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
    """Of the packages that ship a file, a -dev package (what a build installs) when there is one: the shortest
    name of several (libreadline-dev, not the libeditreadline-dev that ships the same libreadline.a)."""
    names = [p.rsplit("/", 1)[-1] for p in packages.split(",") if p]
    dev = [n for n in names if n.endswith("-dev")]
    return min(dev, key=lambda n: (len(n), n)) if dev else (names[0] if names else "")


def explain(errors: Sequence[BaseException | None], targets_of: Sequence[targets.Target],
            phrase: Callable[[targets.Target, list[tuple[str, str]]], str], index: Index | None) -> None:
    """Give each failed build that lacked a file Debian packages a hint naming the package, in phrase's words
    (which differ by build: --package for a project, apt-get for a native --src build...), and the --tool for a
    program it could not run. No index: no hints."""
    for error, target in zip(errors, targets_of, strict=True):
        if index is not None and isinstance(error, BuildFailed) and error.lacking:
            found = find([x for x in error.lacking if x[0] != "program"], target, index)
            tools = find([x for x in error.lacking if x[0] == "program"], target, index)
            said = [phrase(target, found)] if found else []
            if tools:  # a build tool: the build machine's, whichever the toolchain (natively, --tool says which)
                text, packages = _said(tools)
                said.append(f"{text}: add {' '.join(f'--tool {p}' for p in packages)}")
            if said:
                error.hint = "; ".join([*said, *([error.hint] if error.hint else [])])


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
    container or with zig, as for a project (--package)."""
    from .toolchain import apt_hint

    if toolchain != "native":
        return for_project(toolchain)

    def phrase(target: targets.Target, found: list[tuple[str, str]]) -> str:
        said, packages = _said(found)
        host = targets.host()
        own = target.architecture == host.architecture
        return f"{said}: {apt_hint(' '.join(p if own else f'{p}:{target.debian_arch}' for p in packages), host)}"

    return phrase
