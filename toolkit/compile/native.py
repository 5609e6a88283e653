"""The native toolchain: the host's gcc (g++ for C++), its cross gcc for a foreign target, or with musl the
<musl>-gcc of Debian's musl-dev; the build runs in a temporary copy on this Linux host."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .. import files, interrupts, targets
from ..engine.limits import DEFAULT_LIMITS, Limits
from ..errors import BuildFailed
from . import cross, plan
from .toolchain import apt_hint, refuse_musl_cxx, run_here

# What each build system needs on the host, and the package that has it.
_PROGRAMS = {"make": ("make",), "cmake": ("cmake", "ninja"), "meson": ("meson", "ninja"), "autotools": ("make",),
             "run": (), plan.RULE: ()}
_PROGRAM_PACKAGES = {"ninja": "ninja-build"}
# What moves gcc's search for a library besides the compiler itself.
_SEARCH_VARIABLES = ("GCC_EXEC_PREFIX", "COMPILER_PATH", "LIBRARY_PATH")


def _libc_note(cc: str) -> Path | None:
    """Where what cc found as libc.a is kept (None: cc is not found as a file)."""
    found = shutil.which(cc)
    if found is None:
        return None
    real = os.path.realpath(found)
    try:
        changed = os.stat(real).st_mtime_ns
    except OSError:
        return None
    key = "\n".join([real, str(changed), *(f"{v}={os.environ.get(v, '')}" for v in _SEARCH_VARIABLES)])
    return files.cache_dir() / "libc-found" / hashlib.sha256(key.encode()).hexdigest()[:32]


class Native:
    name = "native"

    def __init__(self, libc: str = "glibc", limits: Limits = DEFAULT_LIMITS, run: Any = interrupts.run_child,
                 clean: bool = False) -> None:
        self.libc = libc
        self.limits = limits
        self._run = run
        self.clean = clean  # a project's kept build state is not used: built from nothing (and kept anew)

    def _compiler(self, target: targets.Target, cxx: bool) -> str | None:
        own_arch = target.architecture == targets.host().architecture
        if self.libc == "musl":
            musl_gcc = f"{target.musl}-gcc"  # a script running the target's gcc with musl's specs
            return musl_gcc if shutil.which(musl_gcc) and (own_arch or shutil.which(target.gcc)) else None
        own, cross_cc = ("g++", target.gxx) if cxx else ("gcc", target.gcc)
        if own_arch and shutil.which(own):
            return own
        return cross_cc if shutil.which(cross_cc) else None

    def _compiler_missing(self, target: targets.Target, cxx: bool) -> str | None:
        """None when a compiler that links statically for target is here; else the package(s) that give one."""
        cc = self._compiler(target, cxx)
        own_arch = target.architecture == targets.host().architecture
        if cc is None and self.libc == "musl":
            gcc = [] if own_arch or shutil.which(target.gcc) else list(target.packages)
            return " ".join([*gcc, "musl-dev" if own_arch else f"musl-dev:{target.debian_arch}"])
        if cc is None and cxx:
            return "g++" if own_arch else " ".join(target.cxx_packages)
        if cc is None:
            return "gcc libc6-dev" if own_arch else " ".join(target.packages)
        if self._finds_libc(cc):
            return None
        if cc in ("gcc", "g++"):
            return "libc6-dev (Debian/Ubuntu) or glibc-static (Fedora)"
        return target.packages[1]

    def _finds_libc(self, cc: str) -> bool:
        """Whether cc finds a static C library (libc.a). What it found is kept under the cache directory, named by
        the compiler (its real path and modification time) and the variables that move its search, and taken
        while that file is still there: asking the compiler costs ~10 ms of every build."""
        note = _libc_note(cc)
        if note is not None:
            with contextlib.suppress(OSError):
                kept = note.read_text()
                if os.path.isabs(kept) and os.path.isfile(kept):
                    return True
        proc = self._run([cc, "-print-file-name=libc.a"], capture_output=True, text=True)
        found = proc.stdout.strip()
        if proc.returncode != 0 or not os.path.isabs(found) or not os.path.exists(found):
            return False
        if note is not None:
            with contextlib.suppress(OSError):  # written whole under another name first: a reader never sees half
                note.parent.mkdir(parents=True, exist_ok=True)
                partial = note.with_name(f".{note.name}.{os.getpid()}")
                partial.write_text(found)
                os.replace(partial, note)
        return True

    def _installed(self, package: str) -> bool:
        proc = self._run(["dpkg-query", "-W", "-f", "${Status}", package], capture_output=True, text=True)
        return proc.returncode == 0 and proc.stdout.strip().endswith(" installed")

    def missing(self, job: plan.Plan, wanted: Sequence[targets.Target]) -> str | None:
        if sys.platform != "linux":  # platform.system() == "Linux", without importing platform (~2 ms)
            return "a Linux host"
        cxx = job.system == plan.RULE and job.cxx
        needs = [m for t in wanted if (m := self._compiler_missing(t, cxx))]
        needs += [_PROGRAM_PACKAGES.get(p, p) for p in _PROGRAMS[job.system] if not shutil.which(p)]
        needs += [p for p in job.tools if not self._installed(p)]
        for t in wanted:
            needs += [f"{p}:{t.debian_arch}" for p in job.packages if not self._installed(f"{p}:{t.debian_arch}")]
        return " ".join(dict.fromkeys(" ".join(needs).split())) or None

    def prepare(self, job: plan.Plan, wanted: Sequence[targets.Target]) -> None:
        if sys.platform != "linux":
            import platform

            raise BuildFailed(f"the native toolchain builds Linux binaries on a Linux host, not {platform.system()}",
                              hint="use --toolchain container or --toolchain zig")
        if job.system == plan.RULE and job.cxx:
            refuse_musl_cxx(self.libc)
        missing = self.missing(job, wanted)
        if missing:
            lacking = [t.platform for t in wanted if self.missing(job, [t])]
            zig = "" if job.packages or job.tools else " or --toolchain zig"  # zig installs neither
            raise BuildFailed(f"this host lacks what a native build of {job.name} for {', '.join(lacking)} needs: "
                              f"{missing}", hint=f"{apt_hint(missing, targets.host())}; or use --toolchain "
                                                 f"container{zig}")

    @contextmanager
    def run(self, job: plan.Plan, target: targets.Target, skip: Callable[[str], bool]) -> Iterator[Path]:
        tools = cross.gcc(target, targets.host(), self.libc)
        keep = None
        if job.system != plan.RULE:  # a project's build tree is kept between its builds
            from . import kept

            keep = kept.key(job, target, self.name, self._compiler_id(tools), self.libc)
        with run_here(job, target, tools, self.limits, skip, keep, self.clean) as work:
            yield work

    @staticmethod
    def _compiler_id(tools: cross.Toolset) -> str:
        """What stands for the build image of a native build's kept state: the compiler, by path and change
        time (an upgraded gcc is another state)."""
        cc = tools.commands["cc"][0]
        found = shutil.which(cc)
        if found is None:
            return cc
        real = os.path.realpath(found)
        return f"{real}@{os.stat(real).st_mtime_ns}"
