"""`build --debian NAME[=VERSION]`: the source package (debian/source.py) built for each target by the one build
path (compile/pipeline.py) in the container toolchain, over a build image layer that holds its Build-Depends for
that target; the programs its binary packages ship (Debian's Contents index, filtered by the .dsc's Binary list)
are matched by name to what the build made, and each is verified and delivered on its own."""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from .. import grammar, targets
from ..compile import buildimage, pipeline, plan, project_file, provides
from ..errors import BuildFailed, InputError, TimedOut
from ..rootfs import bases, contents
from ..rootfs import mirror as mirrors
from ..rootfs.contents import PROGRAM_DIRS
from . import archive, source

log = logging.getLogger(__name__)

_PROGRAM = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")


def build(text: str, wanted: Sequence[targets.Target], toolchain: str, place: pipeline.Place,
          say: Callable[[str], None], *, flags: project_file.Settings, index: provides.Index,
          program: str | None = None, mirror: str | None = None, suite: str | None = None,
          **options: Any) -> list[pipeline.Outcome]:
    """Fetch, build and deliver the source package text names (NAME or NAME=VERSION) for every wanted target;
    options go to pipeline.build as they are."""
    request = source.parse(text)
    if suite is not None:  # which package ships which file, in that suite: its programs, its Build-Depends' files
        index = functools.partial(contents.cached_index, suite=suite)
    if program is not None and not _PROGRAM.fullmatch(program):
        raise InputError(f"--program {program!r} is not a program's name", hint="e.g. --program pv")
    if toolchain in ("native", "zig"):
        raise InputError(f"--debian with the {toolchain} toolchain: a source package's build dependencies are "
                         "installed into the build container's image", hint="use --toolchain container (or auto)")
    src = source.fetch(request, mirror=mirror, suite=suite)
    if src.said():
        say(src.said())
    picker = Picker(src, index, program, say)
    if program is not None:  # refused before anything is built
        for target in wanted:
            picker.check(target)
    ours = flags.system is None and flags.run is None  # the build system debhelper would pick, not ours
    has_rules = (src.tree / "debian" / "rules").is_file()  # not when the tree is upstream's alone
    if ours:
        system, subdir = debhelper_system(src.tree, grammar.inside(flags.subdir, "--subdir") if flags.subdir else "")
        if system is None and has_rules:
            say(f"{src.name}: no build system of ours in its tree: building it with its own debian/rules")
            flags, ours = replace(flags, run=DEBIAN_RULES, subdir=None), False
        else:
            flags = replace(flags, system=system, subdir=subdir or None)
    job = replace(project_file.open_project(str(src.tree), flags), build_dep=src.spec, reconf=reconfigures(src.tree),
                  keep_header=keeps_header(src.tree), suite=suite or mirrors.host_suite())
    if suite is not None and options.get("base") is None:  # the Build-Depends come from the suite's own base
        options["base"] = bases.tag(suite)
    common = {"index": index, "described": [src.sbom_package()], "pick": picker, "bases": bases.DebianBases(),
              **options}
    if not ours or not has_rules:
        return pipeline.build(job, wanted, "container", place, say, **common)
    outcomes = pipeline.build(job, wanted, "container", place, say, raise_failed=False, **common)
    again = [o for o in outcomes if _rules_may_build(o.error)]
    if again:
        for o in again:
            say(f"{src.name} for {o.target.platform}: {_first_line(o.error)}; building it again with its own "
                "debian/rules, as Debian does")
        rules = replace(job, system="run", run=DEBIAN_RULES, subdir="", reconf=False, keep_header=False)
        redone = {o.target.name: o for o in pipeline.build(rules, [o.target for o in again], "container", place,
                                                            say, raise_failed=False, **common)}
        outcomes = [redone.get(o.target.name, o) for o in outcomes]
    pipeline.raise_failures(outcomes, wanted)
    return outcomes


# Debian's own build, for a package our choice of build system cannot build (lua5.4's debian/rules names its make
# target and libtool; unzip's a Makefile under unix/): its debian/rules, as dpkg-buildpackage runs it, for the
# target (dpkg-architecture's host from the triplet the build's environment exports), without tests and without
# stripping (the link records are matched to the programs by content): dh's install-arch where the rules are dh's
# (the programs installed under debian/<package>/, the packaging after it left out), else binary-arch. Its
# dpkg-shlibdeps answers nothing: it asks for the target's shared libraries, which static programs do not use
# and a cross build lacks (lua5.4's shared library needs libstdc++.so.6:arm64). The compilers it runs are the
# wrappers all the same; the programs are found under debian/ by their names.
DEBIAN_RULES = ('mkdir -p "$W/debian-shims" && printf "#!/bin/sh\\nexit 0\\n" > "$W/debian-shims/dpkg-shlibdeps" && '
                'chmod 755 "$W/debian-shims/dpkg-shlibdeps" && PATH="$W/debian-shims:$PATH" && '
                't=binary-arch && if make -s -n -f debian/rules install-arch >/dev/null 2>&1; then t=install-arch; '
                'fi && DEB_BUILD_OPTIONS="nocheck nostrip parallel=$JOBS" DEB_BUILD_PROFILES=nocheck '
                'dpkg-architecture -t "$CROSS_TRIPLE" -c make -f debian/rules "$t"')


def _rules_may_build(error: Exception | None) -> bool:
    """Whether a target's failure was the build's own (not a missing static archive, not its time limit, not its
    build image, which the rules would need as much), which Debian's own rules may get past."""
    return (isinstance(error, BuildFailed) and not isinstance(error, (TimedOut, buildimage.ImageFailed))
            and not error.lacking)


def _first_line(error: Exception | None) -> str:
    return str(getattr(error, "message", error)).splitlines()[0][:200]


# A patch line that changes what autoreconf reads: then the generated files are older than their sources, and make
# would run the automake version that made them (bc's automake-1.14), which the build image lacks.
_RECONF_INPUT = re.compile(r"^\+\+\+ \S*?(?:configure\.(?:ac|in)|Makefile\.am|\.m4)\s", re.M)
_COMPAT = re.compile(r"debhelper-compat\s*\(\s*=\s*([0-9]{1,3})\s*\)")


# debian/rules' dh --buildsystem=NAME (or -S NAME), in our names, and its --sourcedirectory=DIR (or -D DIR)
_BUILDSYSTEM = re.compile(r"(?:--buildsystem[= ]|\s-S\s*)(autoconf|makefile|cmake|meson)\b")
_OURS = {"autoconf": "autotools", "makefile": "make", "cmake": "cmake", "meson": "meson"}
_SOURCEDIR = re.compile(r"(?:--sourcedir(?:ectory)?[= ]|\s-D\s*)(?:\$\(CURDIR\)/)?([A-Za-z0-9_.+/-]{1,200})")


def debhelper_system(tree: Path, subdir: str = "") -> tuple[str | None, str]:
    """The build system debhelper would use for the package and the directory it builds in: what debian/rules
    names (zstd: cmake in build/cmake), else the first of debhelper's order the tree has (configure before CMake
    and Meson); None: none of them. A subdir given by the user stands."""
    rules = _main_build(_text(tree / "debian" / "rules"))
    if not subdir and (named_dir := _SOURCEDIR.search(rules)):
        candidate = named_dir[1].strip("/")
        # not one under debian/: Debian's own helper build (lua5.4's debian/libtool makes the shared library)
        if ".." not in candidate.split("/") and candidate.split("/")[0] != "debian" and (tree / candidate).is_dir():
            subdir = candidate
    named = _BUILDSYSTEM.search(rules)
    return (_OURS[named[1]] if named else plan.detect(tree / subdir, plan.DEBHELPER_ORDER)), subdir


def _main_build(rules: str) -> str:
    """The lines of debian/rules that choose the package's main build: dh's own line and the recipe that replaces
    dh_auto_configure; not the extra runs before or after it (zstd's execute_after_dh_auto_configure configures
    build/cmake besides the top Makefile's build)."""
    lines = rules.replace("\\\n", " ").splitlines()
    kept, inside = [], False
    for line in lines:
        if line and not line[0].isspace():
            inside = line.startswith("override_dh_auto_configure:")
        elif inside or re.match(r"\s+dh\s+\$@", line):
            kept.append(line)
    return "\n".join(kept)


def reconfigures(tree: Path) -> bool:
    """Whether Debian's own build runs autoreconf before configure: dh_autoreconf runs in debhelper compat 10 and
    later, or with dh-autoreconf in Build-Depends, unless debian/rules turns it off; and a Debian patch that
    touches configure.ac, Makefile.am or an .m4 file needs it anyway."""
    debian = tree / "debian"
    control = _text(debian / "control").split("\n\n", 1)[0]
    depends = " ".join(v for k, v in archive.deb822(control).items() if k.startswith("build-depends"))
    compat = _COMPAT.search(depends)
    old_compat = _text(debian / "compat").strip()  # before debhelper-compat: the level in debian/compat
    level = int(compat[1]) if compat else int(old_compat) if old_compat.isdigit() and len(old_compat) < 4 else 0
    if "without autoreconf" in _text(debian / "rules").replace("=", " ").replace("--without", "without"):
        return False
    if "dh-autoreconf" in depends or level >= 10:
        return True
    series = _text(debian / "patches" / "series").split()
    return any(_RECONF_INPUT.search(_text(debian / "patches" / name)) for name in series  # names inside patches/
               if not name.startswith(("#", "/")) and ".." not in name.split("/"))


def keeps_header(tree: Path) -> bool:
    """Whether debian/rules turns autoheader off (`export AUTOHEADER = true`: socat keeps config.h.in by hand)."""
    return re.search(r"^\s*export\s+AUTOHEADER\s*:?=\s*true\s*$", _text(tree / "debian" / "rules"), re.M) is not None


def _text(path: Path) -> str:
    """A small file of the source package's debian/ directory, "" when it has none (or it is not a file)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(1 << 20).decode(errors="replace") if path.is_file() else ""
    except OSError:
        return ""


class Picker:
    """Which of the programs a build made for a target are the package's: those its binary packages ship (by name,
    from the target's Contents index), or a binary package's own name (Debian may ship that one under another,
    through alternatives: figlet's /usr/bin/figlet-figlet); --program's one only, when given."""

    def __init__(self, src: source.Source, index: provides.Index, program: str | None,
                 say: Callable[[str], None]) -> None:
        self.src, self.index, self.program, self.say = src, index, program, say

    def shipped(self, target: targets.Target) -> dict[str, str] | None:
        """The package's programs for target, by name; None when Debian's file index cannot be had."""
        path = self.index(target.debian_arch)
        return None if path is None else provides.programs(path, self.src.binaries, PROGRAM_DIRS)

    def check(self, target: targets.Target) -> None:
        shipped = self.shipped(target)
        if shipped is not None and self.program not in shipped and self.program not in self.src.binaries:
            raise InputError(f"{self.src.name} {self.src.version} ships no program {self.program} for "
                             f"{target.debian_arch}", hint="it ships: " + (", ".join(shipped) or "none"))

    def __call__(self, target: targets.Target, made: list[Path]) -> list[Path]:
        shipped = self.shipped(target)
        if shipped is None:
            self.say(f"Debian's file index for {target.debian_arch} cannot be had: delivering every program the "
                     f"build of {self.src.name} made")
            chosen = made
        else:
            names = {*shipped, *self.src.binaries}
            chosen = [p for p in made if _shipped_as(p.name, names)]
            others = sorted(p.name for p in made if p not in chosen)
            if others:
                self.say(f"left out for {target.platform}, not a program {self.src.name}'s packages ship: "
                         + ", ".join(others))
        if self.program is not None:
            chosen = [p for p in chosen if p.name == self.program]
            if not chosen:
                raise BuildFailed(f"the build of {self.src.name} made no {self.program} for {target.platform}",
                                  hint="made: " + (", ".join(p.name for p in made) or "nothing"))
        if not chosen:
            raise BuildFailed(f"the build of {self.src.name} for {target.platform} made none of the programs its "
                              f"packages ship ({', '.join(shipped or ()) or 'none'})",
                              hint="made: " + ", ".join(p.name for p in made))
        return chosen


def _shipped_as(made: str, names: set[str]) -> bool:
    """A program the build made is one the packages ship: by its name, or a versioned name a shipped one links to
    when installed (screen installs screen-4.9.0 and the link screen)."""
    versioned = re.fullmatch(r"(.+)-[0-9][0-9.]*", made)
    return made in names or (versioned is not None and versioned[1] in names)


def one_program(outcomes: Sequence[pipeline.Outcome], name: str, program: str | None) -> list[Path]:
    """For an image: the one program each target's build delivered (--program's, else the only one, else the one
    named like the package), in target order."""
    chosen = []
    for outcome in outcomes:
        made = {p.path.name: p.path for p in outcome.written}
        pick = program if program is not None else (next(iter(made)) if len(made) == 1 else name)
        if pick not in made:
            raise InputError(f"{name} ships several programs ({', '.join(sorted(made))}): an image holds one",
                             hint="pick it with --program NAME")
        chosen.append(made[pick])
    return chosen
