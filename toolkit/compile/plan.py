"""What a build does, as one plan whatever was asked: a project with its own build system, or --src files, which
are a project whose build is one compile-and-link rule. The plan says what is copied in, what the build runs (one
POSIX sh script, the same natively, with zig and in the build container) and which programs it made. No effects
here: a toolchain (compile/native.py, zig.py, container.py) runs the script, compile/pipeline.py the rest."""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import grammar
from ..errors import InputError
from .sources import Sources

SYSTEMS = ("make", "cmake", "meson", "autotools")
# What each build system is recognised by, in the order they are tried: a project that has a CMakeLists.txt and
# a generated Makefile is a CMake project.
_MARKERS = (("cmake", ("CMakeLists.txt",)), ("meson", ("meson.build",)),
            ("autotools", ("configure", "configure.ac", "configure.in", "autogen.sh")),
            ("make", ("GNUmakefile", "makefile", "Makefile")))
# The order debhelper's dh_auto_configure tries them in (Debian::Debhelper::Dh_Buildsystems: autoconf, then
# makefile, then cmake and meson), for a Debian source package: xz-utils has a configure and a CMakeLists.txt, and
# Debian builds it with configure. configure.ac counts: dh_autoreconf makes the configure first.
DEBHELPER_ORDER = (("autotools", ("configure", "configure.ac", "configure.in")),
                   ("make", ("GNUmakefile", "makefile", "Makefile")), ("cmake", ("CMakeLists.txt",)),
                   ("meson", ("meson.build",)))
PREFIX = "/usr/local"  # the install prefix inside the staging directory (DESTDIR)
# Exit codes of the script's own failures, told apart from a build step's (collect.sh's FS_NO_ARTIFACT, FS_NO_PROGRAM).
NO_ARTIFACT, NO_PROGRAM = 91, 92


RULE = "rule"  # the system of a --src plan: one compile-and-link command


@dataclass(frozen=True)
class Plan:
    """A build, checked: its directory, where the build system is, and how to drive it."""

    root: Path
    subdir: str = ""  # the directory inside root that holds the build system
    system: str = "make"  # one of SYSTEMS, "run" for the user's own command, or RULE
    run: str | None = None
    configure_args: tuple[str, ...] = ()
    make_args: tuple[str, ...] = ()
    packages: tuple[str, ...] = ()  # -dev packages for the target (static archives, .pc files)
    tools: tuple[str, ...] = ()  # packages the build runs on the build machine
    build_dep: str = ""  # NAME=VERSION: a Debian source package whose build dependencies the build image installs
    suite: str = ""  # ... from this Debian suite's archive (an emulated build's base is debootstrapped from it)
    reconf: bool = False  # an autotools build runs autoreconf -fi first, even with a configure (as dh_autoreconf)
    keep_header: bool = False  # ... without autoheader: the project keeps its config.h.in by hand (socat)
    artifacts: tuple[str, ...] = ()
    cflags: tuple[str, ...] = ()
    ldflags: tuple[str, ...] = ()
    strip: bool = False  # every program linked with -s (the compiler wrappers add it)
    # a RULE plan: only these files of root are copied (sources, headers), and sources become program
    files: tuple[str, ...] | None = None
    sources: tuple[str, ...] = ()
    program: str = ""
    gnu_ld_flags: tuple[str, ...] = ()  # flags only GNU ld takes (zig's linker refuses them)
    # a target's own plan, by target name, where the project's fromscratch.toml has a [target.ARCH] table
    by_target: tuple[tuple[str, Plan], ...] = ()

    @property
    def name(self) -> str:
        return self.program or self.root.name

    def for_target(self, target: str) -> Plan:
        """The plan of one target (by name): its own, or this one."""
        return dict(self.by_target).get(target, self)

    @property
    def cxx(self) -> bool:
        """A RULE plan of C++ sources: linked by the C++ compiler."""
        return Sources(self.root, self.sources).cxx


def detect(directory: Path, order: Sequence[tuple[str, Sequence[str]]] = _MARKERS) -> str | None:
    """The build system of the project in directory: the first in order whose marker file it has."""
    for system, markers in order:
        if any((directory / m).is_file() for m in markers):
            return system
    return None


def _packages(packages: Sequence[str], tools: Sequence[str]) -> None:
    """--package and --tool name Debian packages; the build adds a --package's :ARCH for each target itself."""
    for flag, names in (("--package", packages), ("--tool", tools)):
        for name in names:
            grammar.package(name, flag)
            if ":" in name:
                raise InputError(f"{flag} {name}: give the name without :ARCH",
                                 hint=f"the build installs {name.split(':')[0]} for each target's architecture itself")


def from_sources(src: Sources, program: str, cflags: Sequence[str] = (), ldflags: Sequence[str] = (),
                 packages: Sequence[str] = (), tools: Sequence[str] = (), gnu_ld_flags: Sequence[str] = ()) -> Plan:
    """--src files as a plan of one rule: compile them with cflags and link them, ldflags after them, into program;
    only the sources and the headers they may include are copied in."""
    _packages(packages, tools)
    names = tuple(dict.fromkeys([*(os.path.normpath(f) for f in src.files), *src.headers(cflags)]))
    return Plan(src.base, system=RULE, cflags=tuple(cflags), ldflags=tuple(ldflags), packages=tuple(packages),
                tools=tuple(tools), files=names, sources=src.files, program=program or "a.out",
                gnu_ld_flags=tuple(gnu_ld_flags))


def open_project(root: str, subdir: str = "", system: str | None = None, run: str | None = None,
                 strip: bool = False, **rest: Any) -> Plan:
    """The project at root, its build system found (or taken from system/run); bad input is one clear error."""
    top = Path(root)
    _packages(rest.get("packages", ()), rest.get("tools", ()))
    rest["artifacts"] = tuple(grammar.inside(a, "--artifact") for a in rest.get("artifacts", ()))
    if subdir:
        subdir = grammar.inside(subdir, "--subdir")
    if not top.exists():
        raise InputError(f"--project {root}: no such directory")
    if not top.is_dir():
        raise InputError(f"--project {root}: not a directory", hint="give the project's top directory")
    where = top / subdir if subdir else top
    if subdir and not where.resolve().is_relative_to(top.resolve()):
        raise InputError(f"--subdir {subdir}: must be a directory inside the project")
    if not where.is_dir():
        raise InputError(f"--subdir {subdir}: no such directory in {root}")
    if run is not None:
        if system is not None:
            raise InputError("--run and --system both say how to build", hint="give one of them")
        return Plan(top.resolve(), subdir, "run", run, strip=strip, **rest)
    if system is None:
        system = detect(where)
        if system is None:
            looked = ", ".join(m for _, markers in _MARKERS for m in markers)
            raise InputError(f"no build system found in {where} (looked for {looked})",
                             hint="point --subdir at it, or give your own command with --run \"make -C src\"")
    elif system not in SYSTEMS:
        raise InputError(f"unknown build system {system!r}", hint=f"choose {', '.join(SYSTEMS)}")
    return Plan(top.resolve(), subdir, system, None, strip=strip, **rest)


def _words(args: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) for a in args)


def steps(project: Plan, cross: bool, triplet: str, gnu_ld: bool = True) -> list[str]:
    """The commands of a build, run in the build system's directory with the prepared environment."""
    conf, make = _words(project.configure_args), _words(project.make_args)
    # make: CC and CXX on the command line, where they beat a Makefile's own `CC = gcc`. The other tools stay
    # in the environment: Makefiles such as Lua's write `AR = ar rcu`, flags inside the variable.
    make_vars = 'CC="$CC" CXX="$CXX"'
    if project.system == RULE:  # the wrapper adds the target's flags and -static; the plan's own flags only
        cc = '"$CXX"' if project.cxx else '"$CC"'
        flags = [*project.cflags, *(project.gnu_ld_flags if gnu_ld else ())]
        return [f'{cc} {_words(flags)} {_words(project.sources)} {_words(project.ldflags)} '
                f'-o "$W/build/"{shlex.quote(project.program)}']
    if project.system == "run":
        return [project.run or "true"]
    if project.system == "make":
        return [f'make -j"$JOBS" {make_vars} {make}']
    if project.system == "cmake":
        return [f'cmake -S . -B "$W/build" -G Ninja -DCMAKE_TOOLCHAIN_FILE="$W/tools/toolchain.cmake" '
                f'-DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX={PREFIX} -DBUILD_SHARED_LIBS=OFF {conf}',
                f'cmake --build "$W/build" -j "$JOBS" {make}',
                'DESTDIR="$W/stage" cmake --install "$W/build"']
    if project.system == "meson":
        machine = "--cross-file" if cross else "--native-file"
        return [f'meson setup "$W/build" . {machine} "$W/tools/meson.ini" --prefix={PREFIX} --buildtype=release '
                f'-Ddefault_library=static {conf}',
                f'meson compile -C "$W/build" -j "$JOBS" {make}',
                'DESTDIR="$W/stage" meson install -C "$W/build" --no-rebuild']
    host = f" --host={triplet}" if cross else ""
    first = ('if [ ! -f ./configure ]; then if [ -f ./autogen.sh ]; then NOCONFIGURE=1 sh ./autogen.sh; '
             'else autoreconf -fi; fi; fi')
    if project.reconf:  # as dh_autoreconf: only where there is an autoconf input to regenerate from
        reconf = "AUTOHEADER=true autoreconf -fi" if project.keep_header else "autoreconf -fi"
        # without gettext's autopoint (not in every build image) the release tarball's own po/ and m4/ stay
        reconf = f"if ! command -v autopoint >/dev/null; then export AUTOPOINT=true; fi; {reconf}"
        first = f'if [ -f ./configure.ac ] || [ -f ./configure.in ]; then {reconf}; else {first}; fi'
    return [first,
            # only the options this configure knows: an unknown --disable-shared stops some scripts
            'set --; for o in --disable-shared --enable-static; do '
            'if sh ./configure --help 2>/dev/null | grep -q -e "$o"; then set -- "$@" "$o"; fi; done',
            f'sh ./configure --prefix={PREFIX}{host} "$@" {conf}',
            f'make -j"$JOBS" {make_vars} {make}',
            f'make install DESTDIR="$W/stage" {make_vars}']


def compiler_names(cross: bool, triplet: str) -> tuple[str, ...]:
    """The names a project may run the target's compiler by, which lead to the wrappers: the triplet's, and for the
    build machine's own target the plain ones too (for a foreign target they stay the build machine's compiler)."""
    own = (f"{triplet}-gcc", f"{triplet}-g++")
    return own if cross else ("gcc", "cc", "g++", "c++", *own)


RECORDS = ".records"  # in out/, beside the programs: one copy out of the container brings both (collect.sh)
COLLECT = Path(__file__).with_name("collect.sh")  # copied into the build's tools directory


def script(project: Plan, work: str, cross: bool, triplet: str, gnu_ld: bool = True) -> str:
    """The build as one sh script: environment, steps (their output also in build.log), then the programs
    copied into $W/out: the --artifact paths (the script's arguments), else what was installed in bin/ and sbin/,
    else the executables the build made; and for each, in $W/out/.records, the record of the link that made it.
    Every value a user gave is quoted here or passed as an argument: the script holds no word of theirs as code
    except --run's command, which is theirs to run."""
    where = f'"$W/src/"{shlex.quote(project.subdir)}' if project.subdir else '"$W/src"'
    body = "\n".join(steps(project, cross, triplet, gnu_ld))
    names = _words(compiler_names(cross, triplet))
    rule = project.system == RULE
    lines = ["#!/bin/sh", f"# made by fromscratch: a {project.system} build", "set -u",
             f"W={shlex.quote(work)}", f"export P={PREFIX}",
             "# shellcheck source=/dev/null", '. "$W/tools/env.sh"',
             "# shellcheck source=/dev/null", '. "$W/tools/links.sh"',
             "# shellcheck source=/dev/null", '. "$W/tools/collect.sh"',
             # a rule's one compile runs no make (and its one record needs no parallel JOBS)
             *([] if rule else ["export JOBS; JOBS=$(nproc 2>/dev/null || echo 2)"]),
             f"cd {where} || exit 1",
             # the wrappers' traces go to links/ (FROMSCRATCH_LINKS): made here with the rest, in one process
             '[ -d "$W/build" ] && [ -d "$W/stage" ] && [ -d "$FROMSCRATCH_LINKS" ] || '
             'mkdir -p "$W/build" "$W/stage" "$FROMSCRATCH_LINKS"',
             # the first build's start, in a kept state too: what a later build made anew or left as it was
             # is newer than it either way
             '[ -e "$W/.started" ] || : > "$W/.started"']
    if rule:
        # a rule's output is the compiler's own (its warnings are shown, after it ran: a compile is short); no
        # tee when it said nothing
        lines += ["(", "set -e", body, ') > "$W/build.log" 2>&1', "status=$?", 'echo "$status" > "$W/status"',
                  'if [ -s "$W/build.log" ]; then cat "$W/build.log"; fi']
    else:
        # a project's steps are traced, as they run, and its Makefile's own `gcc` is the wrapper too (the build
        # machine's, when cross: tools it runs)
        lines += ["{ (", f"fs_compilers_first {names}", "set -ex", body,
                  ') ; echo $? > "$W/status"; } 2>&1 | tee "$W/build.log"',
                  'status=1; read -r status < "$W/status"']
    lines.append('if [ "$status" != 0 ]; then fs_static_hint; exit "$status"; fi')
    if rule:
        # a compile makes no out/: in a fresh work directory, the one on this machine has them made already, empty
        lines += ['[ -d "$W/out/.records" ] && [ -d "$W/taken" ] || fs_collect_start', 'fs_take "$W/build/$1"']
    elif project.artifacts:
        lines += ["fs_collect_start", 'fs_from_artifacts "$@"']
    else:
        lines += ["fs_collect_start", "fs_from_install", "fs_from_tree"]
    lines.append("fs_collect_end")
    return "\n".join(lines) + "\n"


def env_script(env: dict[str, str]) -> str:
    return "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(env.items()))
