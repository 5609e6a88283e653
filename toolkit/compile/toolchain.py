"""What every toolchain is: one protocol (what this machine lacks for a plan; prepare the targets; run the plan
for one target), the C libraries a build links, and what a toolchain that builds on this machine (native, zig)
shares: the build in a temporary copy, within its time limit. compile/pipeline.py picks one with select()."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from .. import files, interrupts, targets
from ..engine.limits import Limits
from ..errors import BuildFailed, InputError, timed_out
from ..sbom import links
from . import cross, plan, provides

if TYPE_CHECKING:  # a kept build state is a project's: a rule's build does not load it
    from . import kept

log = logging.getLogger(__name__)

TOOLCHAINS = ("auto", "native", "container", "zig")
LIBCS = ("glibc", "musl")
_LOG_TAIL = 40  # lines of a failed build's own output shown with the error


class Toolchain(Protocol):
    """One way of running a plan: the host's compilers (native.py), zig cc (zig.py), the build container
    (container.py)."""

    name: str
    libc: str
    limits: Limits

    def missing(self, job: plan.Plan, wanted: Sequence[targets.Target]) -> str | None:
        """None when this toolchain can build job for every wanted target here; else the packages it lacks."""

    def prepare(self, job: plan.Plan, wanted: Sequence[targets.Target]) -> None:
        """Check or set up what building these targets needs, once, before any target runs (one caller builds
        a build image); raise naming what is missing. A target that cannot be prepared may fail alone later."""

    def run(self, job: plan.Plan, target: targets.Target, skip: Callable[[str], bool]) -> AbstractContextManager[Path]:
        """The build of job for target; yields a directory whose out/ holds the programs, out/.records the
        records of their links and output.log the build's output. skip(path) leaves a path of the tree out."""


def resolve_libc(toolchain: str, libc: str | None) -> str:
    """The C library a build links: glibc by default, musl for zig (the only one it links statically)."""
    if libc is None:
        return "musl" if toolchain == "zig" else "glibc"
    if libc not in LIBCS:
        raise InputError(f"--libc {libc!r}: choose glibc or musl")
    if toolchain == "zig" and libc == "glibc":
        raise InputError("--libc glibc with the zig toolchain: zig cc links glibc only dynamically",
                         hint="zig builds are musl (--libc musl, its default); use --toolchain native or "
                              "container for glibc")
    return libc


def refuse_musl_cxx(libc: str) -> None:
    if libc == "musl":
        raise InputError("C++ with --libc musl and gcc: Debian has no libstdc++ built for musl",
                         hint="use --toolchain zig, whose c++ links libc++ and musl")


def apt_hint(packages: str, host: targets.Target) -> str:
    """The apt-get line that installs packages on this host, with dpkg multiarch for PKG:ARCH names."""
    foreign = sorted({p.split(":")[1] for p in packages.split() if ":" in p} - {host.debian_arch})
    first = "".join(f"dpkg --add-architecture {a} && " for a in foreign)
    return f"{first}apt-get update && apt-get install {packages}" if first else f"install {packages}"


def tools_files(job: plan.Plan, tools: cross.Toolset, work: str) -> dict[str, str]:
    """The tools directory of a build in work: wrappers, machine files, the environment and the build script."""
    tools_dir = f"{work}/tools"
    out = cross.files(tools, tools_dir, job.strip)
    out["env.sh"] = plan.env_script(cross.environment(tools, tools_dir, job.cflags, job.ldflags))
    out["collect.sh"] = plan.COLLECT.read_text()
    out["build.sh"] = plan.script(job, work, tools.cross, tools.triplet, tools.linker == links.GNU)
    return out


def failure(code: int, output: Path, what: str) -> BuildFailed:
    """A failed build script as one error: its own last line when the script itself stopped, else the build's
    last lines (read from the file that holds its output, never all of it in memory)."""
    lines = files.excerpt(output, whole=0).strip().splitlines()
    if code in (plan.NO_ARTIFACT, plan.NO_PROGRAM) and lines and lines[-1].startswith("fromscratch: "):
        return BuildFailed(lines[-1].removeprefix("fromscratch: "))
    return BuildFailed(f"{what} failed (exit {code})", log="\n".join(lines[-_LOG_TAIL:]),
                       lacking=provides.lacking(output))


def what(job: plan.Plan, target: targets.Target) -> str:
    return f"the build of {job.name} for {target.platform}"


def entries(job: plan.Plan, skip: Callable[[str], bool]) -> Iterator[files.TreeEntry]:
    """What of job's tree a build gets: the whole tree (files.tree's rules), or a RULE plan's files (each a
    regular file by then: the sources were checked as such) with the directories above them."""
    if job.files is None:
        yield from files.tree(job.root, skip)
        return
    made: set[str] = set()
    for rel in job.files:
        parts = Path(rel).parts
        for i in range(1, len(parts)):
            top = "/".join(parts[:i])
            if top not in made and top != "..":
                made.add(top)
                yield files.TreeEntry(top, "dir", 0o755, 0)
        source = os.path.realpath(job.root / rel)
        st = os.stat(source)
        yield files.TreeEntry(rel, "file", st.st_mode, st.st_mtime_ns, source=source)


@contextlib.contextmanager
def run_here(job: plan.Plan, target: targets.Target, tools: cross.Toolset, limits: Limits,
             skip: Callable[[str], bool], keep: kept.Key | None = None, clean: bool = False) -> Iterator[Path]:
    """The build on this machine, in a temporary copy of what job copies, or in the kept state keep (brought up
    to date; from nothing with clean); yields the work directory."""
    if keep is not None:
        from . import kept

        try:
            kept.state_root().mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a cache that cannot be written costs this build its head start, not its result
            log.warning("cannot keep the build state of %s under %s (%s): building it from nothing in a scratch "
                        "directory", job.name, kept.state_root(), exc.strerror)
        else:
            with _kept_here(job, target, tools, limits, skip, keep, clean) as work:
                yield work
            return
    # a rule's work directory is small (its sources, one program): where small temporary files go (TMPDIR, else /tmp,
    # often a tmpfs; creating a file in /var/tmp took 0.4 ms here, in /tmp 0.07 ms); a project's tree goes to disk
    with files.temp_dir("fromscratch-project-", None if job.system == plan.RULE else files.scratch_dir()) as work:
        work = work.resolve()  # the script checks that --artifact paths lead into it, by their real paths
        files.copy_entries(entries(job, skip), work / "src")
        _run_here(job, target, tools, limits, work, [])
        yield work


def _run_here(job: plan.Plan, target: targets.Target, tools: cross.Toolset, limits: Limits, work: Path,
              runner: list[str], env: dict[str, str] | None = None) -> None:
    """The tools written into work, then the build script run (through runner, when given)."""
    # the script makes build/, stage/ and links/ where they are not (in a container), and a rule's out/ and taken/;
    # made here, they cost it no mkdir
    made = ("out", f"out/{plan.RECORDS}", "taken") if job.system == plan.RULE else ()
    for name in ("tools", "build", "stage", "links", *made):
        (work / name).mkdir(exist_ok=True)
    scripts = tools_files(job, tools, str(work))
    if runner:
        from . import kept

        scripts[kept.RUNNER.name] = kept.RUNNER.read_text()
    for name, text in scripts.items():
        (work / "tools" / name).write_text(text)
        (work / "tools" / name).chmod(0o755)
    log.info("building %s for %s in %s", job.name, target.platform, work)
    output = work / "output.log"
    output.unlink(missing_ok=True)
    script = ["sh", str(work / "tools" / "build.sh")] if not runner else runner
    try:
        code = interrupts.run_logged([*script, *argv(job)], str(output), limits.timeout,
                                     env={**os.environ, **host_env(), **(env or {})}, meanwhile=_ahead_of_delivery)
    except interrupts.TimedOut:
        assert limits.timeout is not None
        raise timed_out(what(job, target), limits.timeout) from None
    if code != 0:
        raise failure(code, output, what(job, target))


def _ahead_of_delivery() -> None:
    """What reads, verifies and describes the programs a build made (compile/pipeline.py's delivery), imported while
    the build runs: this process only waits for it, and another core takes ~6 ms of imports off the wall time."""
    from .. import dates  # noqa: F401
    from ..check import verify  # noqa: F401
    from ..sbom import program  # noqa: F401
    from . import symlinks  # noqa: F401


@contextlib.contextmanager
def _kept_here(job: plan.Plan, target: targets.Target, tools: cross.Toolset, limits: Limits,
               skip: Callable[[str], bool], keep: kept.Key, clean: bool) -> Iterator[Path]:
    """The build in a kept state under the user's cache directory, one build of it at a time."""
    import shutil

    from . import kept

    with files.exclusive(kept.lock_name(keep.name), waiting=f"waiting for another build of {job.name} for "
                         f"{target.platform}, which uses the same kept build state"):
        work = (kept.state_root() / keep.name).resolve()
        old, dirty = kept.read_here(work)
        if dirty:
            log.warning("the kept build state of %s for %s was left mid-build: building from nothing", job.name,
                        target.platform)
        if clean or dirty:
            shutil.rmtree(work, ignore_errors=True)
            old = None
        elif old is None and work.exists():  # no manifest: nothing of it can be trusted
            shutil.rmtree(work, ignore_errors=True)
        change = kept.changes(entries(job, skip), old)
        kept.begin_here(work, keep.labels)
        kept.apply_here(change, work / "src", time.time() if old is not None else None)
        kept.finish_here(work, change)
        kept.used(keep.name)
        _run_here(job, target, tools, limits, work, ["sh", str(work / "tools" / kept.RUNNER.name), str(work)],
                  {"FROMSCRATCH_CCACHE_DIR": str(kept.ccache_here(target.name))} if kept.ccache_on() else {})
        yield work


def host_env() -> dict[str, str]:
    """What a build on this machine is told besides its tools: where links.sh keeps what dpkg answered (the
    host's dpkg database is read once per change of it, not once per build)."""
    return {"FROMSCRATCH_DPKG_CACHE": str(files.cache_dir() / "dpkg-owners")}


def argv(job: plan.Plan) -> list[str]:
    """The build script's arguments: the --artifact paths, or a RULE plan's program."""
    return [job.program] if job.system == plan.RULE else list(job.artifacts)
