"""What a project declares (compile/deps.py), as the Debian -dev packages that provide it for each target: looked up
in the archive's Contents index the way a failed build's hint is (compile/provides.py), each package checked for
the static archive a static link needs; and the build tools it runs (compile/programs.py), as the packages that
install them on the build machine. Analysis and policy only: the pipeline adds the packages to the plan and says
the lines."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from .. import grammar, targets
from ..errors import InputError
from . import buildimage, provides
from .deps import Declared, wanted

log = logging.getLogger(__name__)

# CMake's find_package names as what Debian ships: pkg-config modules, libraries, headers (tried in order; the
# first one the index has names the package). An empty row: answered by CMake or the compiler, no package.
CMAKE: dict[str, tuple[provides.Lacked, ...]] = {
    "ZLIB": (("library", "z"), ("header", "zlib.h")),
    "PNG": (("library", "png"), ("header", "png.h")),
    "JPEG": (("library", "jpeg"), ("header", "jpeglib.h")),
    "TIFF": (("library", "tiff"),),
    "GIF": (("library", "gif"),),
    "BZip2": (("library", "bz2"), ("header", "bzlib.h")),
    "LibLZMA": (("library", "lzma"),),
    "zstd": (("library", "zstd"),),
    "ZSTD": (("library", "zstd"),),
    "LZ4": (("library", "lz4"),),
    "CURL": (("pkg-config", "libcurl"), ("library", "curl")),
    "OpenSSL": (("library", "ssl"), ("library", "crypto")),
    "Curses": (("library", "ncurses"), ("header", "curses.h")),
    "Readline": (("library", "readline"),),
    "EXPAT": (("library", "expat"),),
    "EXPAT::EXPAT": (("library", "expat"),),
    "LibXml2": (("pkg-config", "libxml-2.0"),),
    "LibXslt": (("pkg-config", "libxslt"),),
    "Freetype": (("pkg-config", "freetype2"),),
    "SQLite3": (("library", "sqlite3"),),
    "PCRE2": (("pkg-config", "libpcre2-8"),),
    "PCRE": (("pkg-config", "libpcre"),),
    "LibArchive": (("library", "archive"),),
    "Libevent": (("pkg-config", "libevent"),),
    "LibSSH2": (("library", "ssh2"),),
    "GMP": (("library", "gmp"),),
    "MPFR": (("library", "mpfr"),),
    "Iconv": (), "Intl": (), "Threads": (), "PkgConfig": (), "Git": (), "Doxygen": (), "Perl": (), "BISON": (),
    "FLEX": (), "Python": (), "Python3": (), "PythonInterp": (), "Gettext": (), "Sphinx": (), "GTest": (),
}
# What the compiler and C library already bring (every toolchain installs them): never added, never said.
_TOOLCHAIN = re.compile(r"(libc6-dev|libc6-dev-.*-cross|linux-libc-dev|libcrypt-dev|libnsl-dev|libtirpc-dev|"
                        r"libgcc-[0-9]+-dev|libstdc\+\+-[0-9]+-dev|libc-dev-bin|.*-cross)")


@dataclass(frozen=True)
class Found:
    """A package to install, why (the first declaration it provides) and for which targets (Debian arch names)."""

    package: str
    why: Declared
    archs: tuple[str, ...]

    def line(self, every: int) -> str:
        archs = "" if len(self.archs) == every else ":" + ",".join(self.archs)
        return f"found {self.package}{archs} ({self.why.said()}, {self.why.where})"


@dataclass(frozen=True)
class Finding:
    """What finding came to: the packages to add, those that ship no static archive for what was declared (not
    added: a build that found them would link dynamically or fail at its link), and declarations no package
    provides."""

    found: tuple[Found, ...] = ()
    shared_only: tuple[tuple[str, Declared], ...] = ()
    unprovided: tuple[Declared, ...] = ()

    @property
    def packages(self) -> tuple[str, ...]:
        return tuple(f.package for f in self.found)

    def lines(self, every: int) -> list[str]:
        """One line each, in the user's words; every: how many targets were wanted."""
        out = [f.line(every) for f in self.found]
        out += [f"{p} ships no static archive for {d.said()} ({d.where}): not installed; a static link cannot use "
                f"it (the build may fail, or build without it)" for p, d in self.shared_only]
        if self.unprovided:  # most are probes for other systems (-lsocket, -lshlwapi): one line for them all
            named = ", ".join(f"{d.said()} ({d.where})" for d in self.unprovided)
            out.append(f"no Debian package provides {named}: not installed (if the build needs "
                       f"{'it' if len(self.unprovided) == 1 else 'one'}, its own error follows; add the package "
                       "with --package)")
        return out


def _lookups(d: Declared) -> tuple[provides.Lacked, ...]:
    if d.kind == "cmake":
        if d.name in CMAKE:
            return CMAKE[d.name]
        low = d.name.lower()
        return (("pkg-config", low), ("library", low.removeprefix("lib")))
    if d.kind == "library":
        return (("library", d.name), ("shared", d.name))
    return ((d.kind, d.name),)


def find(declared: Sequence[Declared], wanted_targets: Sequence[targets.Target], index: provides.Index,
         exclude: Sequence[str] = (), headers_alone: bool = True) -> Finding:
    """The packages that provide declared for every wanted target, checked for their static archives; a name in
    exclude (a package or a declared name) is left out. Without headers_alone, a header adds a package only when
    a library or module declared adds it too: configure's AC_CHECK_HEADERS and CMake's check_include_file probe
    for what a platform may have, and a build system links only what it declares as a library."""
    todo = [d for d in wanted(declared) if d.name not in exclude]
    if not todo:
        return Finding()
    archs: dict[str, list[str]] = {}
    why: dict[str, Declared] = {}
    shared_only: dict[str, Declared] = {}
    provided: set[Declared] = set()
    for target in wanted_targets:
        items = tuple(dict.fromkeys(x for d in todo for x in _lookups(d)))
        # Contents-all holds arch-independent -dev packages' .pc files and headers; a stray header is not worth
        # fetching it for
        located = provides.locate(items, target, index, also_all=lambda item: item[0] in ("pkg-config",))
        chosen: dict[Declared, tuple[str, str]] = {}  # declaration -> (package, kind of the lookup that found it)
        for d in todo:
            hit = next(((located[x], x[0]) for x in _lookups(d) if x in located), None)
            if hit is not None and not _TOOLCHAIN.fullmatch(hit[0]):
                chosen[d] = hit
            if hit is not None or not _lookups(d):
                provided.add(d)
        if not headers_alone:
            linked = {p for d, (p, _) in chosen.items() if d.kind != "header"}
            chosen = {d: hit for d, hit in chosen.items() if d.kind != "header" or hit[0] in linked}
        path = index(target.debian_arch)
        shipped = provides.static_archives(path, sorted({p for p, _ in chosen.values()})) if path else {}
        for d, (package, kind) in chosen.items():
            has_a, has_so = shipped.get(package, (True, False))
            if package in exclude:
                continue
            if kind == "shared" or (not has_a and has_so):
                shared_only.setdefault(package, d)
                continue
            why.setdefault(package, d)
            if target.debian_arch not in archs.setdefault(package, []):
                archs[package].append(target.debian_arch)
    found = tuple(Found(p, why[p], tuple(archs[p])) for p in archs)
    unprovided = tuple(d for d in todo if d not in provided and d.kind != "header")
    return Finding(found, tuple((p, d) for p, d in shared_only.items() if p not in archs), unprovided)


# The package Debian installs a program with when several could (/usr/bin/yacc is an alternative bison and byacc
# both provide; tcl's /usr/bin/tclsh follows the default Tcl): what its own Build-Depends would name.
PREFERRED = {"tclsh": "tcl", "yacc": "bison", "bison": "bison", "lex": "flex", "flex": "flex", "python3": "python3",
             "perl": "perl", "awk": "gawk", "pkg-config": "pkg-config", "msgfmt": "gettext", "makeinfo": "texinfo"}
# What every project's build image has (compile/buildimage.py's layers, what they depend on, and what Debian
# marks essential): a tool one of them provides is there already, never added or said.
_PRESENT = frozenset((*buildimage.COMPILE_PACKAGES, *buildimage.SYSTEM_PACKAGES, *"""
cpp gcc-12 g++-12 binutils-common pkgconf m4 perl perl-base python3 python3-minimal python3.11 python3.11-minimal
file autotools-dev coreutils sed grep gzip tar findutils diffutils bash dash debianutils util-linux mawk hostname
bsdutils ncurses-bin login libc-bin base-files base-passwd sysvinit-utils init-system-helpers bzip2 xz-utils
""".split()))


@dataclass(frozen=True)
class Tool:
    """A package to install on the build machine and why: the program the project declares, where."""

    package: str
    why: Declared  # kind "program": the one program of the declaration's alternatives that it provides

    def line(self) -> str:
        return f"found tool {self.package} (program {self.why.name}, {self.why.where})"


def tools(declared: Sequence[Declared], machine: targets.Target, index: provides.Index,
          exclude: Sequence[str] = ()) -> tuple[Tool, ...]:
    """The packages that install the build tools declared (kind "program", alternatives a|b|c) for the build
    machine machine, from index: none for a declaration the build image answers already (any of its
    alternatives), else the package Debian would pick (PREFERRED) or the index's for the first alternative it
    has. A declaration naming an excluded program, or whose package is excluded, is left out; so is one no
    package provides (a probe for another system's tool: said only in the log)."""
    todo = [d for d in declared if d.kind == "program" and not set(d.name.split("|")) & set(exclude)]
    if not todo:
        return ()
    names = list(dict.fromkeys(n for d in todo for n in d.name.split("|")))
    located = provides.locate([("program", n) for n in names], machine, index)
    out: dict[str, Tool] = {}
    for d in todo:
        alternatives = d.name.split("|")
        has = {n: located[("program", n)] for n in alternatives if ("program", n) in located}
        if set(has.values()) & _PRESENT:
            continue
        chosen = next(((n, PREFERRED[n]) for n in alternatives if n in PREFERRED), None) or next(iter(has.items()),
                                                                                                 None)
        if chosen is None:
            log.info("no Debian package provides the program %s (%s)", " or ".join(alternatives), d.where)
            continue
        program, package = chosen
        # a -dev package's program is a library's config script (ncursesw6-config): the library is found as one
        if package in _PRESENT or package in exclude or package.endswith("-dev") or not _is_package(package):
            continue
        out.setdefault(package, Tool(package, Declared("program", program, d.where)))
    return tuple(out.values())


def _is_package(name: str) -> bool:
    """A name an index gave that may reach apt-get as --tool's do: by Debian Policy's grammar, as theirs."""
    try:
        grammar.package(name, "a found tool")
    except InputError as exc:
        log.info("%s", exc)
        return False
    return ":" not in name
