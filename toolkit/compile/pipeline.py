"""Every build, one way: a plan (compile/plan.py: a project, or --src files as one rule) run by one toolchain
for each target, jobs at a time; each program verified once, then written where it goes with its SBOM beside it.
One target's failure does not stop the others."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .. import targets
from ..engine.limits import DEFAULT_LIMITS, Limits
from ..errors import BuildFailed, InputError, ToolkitError
from ..files import atomic_output, excerpt
from ..sbom import NOASSERTION
from . import deps, plan, provides
from .toolchain import TOOLCHAINS, Toolchain, resolve_libc

if TYPE_CHECKING:  # loaded where they are used: by a project's or a container's build, or to deliver a program
    from ..check import elf
    from ..engine import client as engine
    from ..sbom import spdx
    from .emulated import BaseImages

log = logging.getLogger(__name__)

# Where a target's program goes: (target, the program's name) -> its path.
Place = Callable[[targets.Target, str], Path]
# Which of the programs a build made for a target are delivered (a Debian package's own, --program's).
Pick = Callable[[targets.Target, list[Path]], list[Path]]


def select(name: str, job: plan.Plan, wanted: Sequence[targets.Target], base: str | None = None,
           libc: str | None = None, limits: Limits = DEFAULT_LIMITS,
           connect: Callable[[], engine.Client] | None = None, clean: bool = False,
           bases: BaseImages | None = None) -> Toolchain:
    """The toolchain called name; auto: native on a Linux host that has all job needs for every wanted target,
    else the build container (its engine from connect, by default engine/client.py's connect_lazy). Combinations
    that cannot work are refused here, before anything runs."""
    libc = _libc(name, job, libc)
    if name == "zig":
        from .zig import Zig

        return Zig(limits)
    from .native import Native

    native = Native(libc, limits, clean=clean)
    if name == "native" or (name == "auto" and all(native.missing(p, ts) is None for p, ts in groups(job, wanted))):
        return native
    from ..engine.client import connect_lazy
    from .container import ContainerToolchain

    return ContainerToolchain((connect or connect_lazy)(), base, libc, limits, clean, bases)


def _libc(toolchain: str, job: plan.Plan, libc: str | None) -> str:
    """The C library job links with toolchain; combinations that cannot work are refused."""
    if toolchain not in TOOLCHAINS:
        raise InputError(f"unknown toolchain {toolchain!r}", hint=f"choose {', '.join(TOOLCHAINS)}")
    libc = resolve_libc(toolchain, libc)
    if libc == "musl" and any(p.packages for p in (job, *dict(job.by_target).values())):
        raise InputError(f"--package with {'the zig toolchain' if toolchain == 'zig' else '--libc musl'}: Debian's "
                         "static archives are built against glibc", hint="use --libc glibc with --toolchain "
                         "container (or native) for --package")
    return libc


@dataclass(frozen=True)
class Program:
    """A program written: where, and what verify read of it (so that no one reads it again)."""

    path: Path
    facts: elf.ElfFacts
    also: tuple[str, ...] = ()  # the other names it was installed under: symlinks beside it


@dataclass(frozen=True)
class Outcome:
    """One target's result: the programs written, or the error that stopped it."""

    target: targets.Target
    written: tuple[Program, ...] = ()
    error: ToolkitError | None = None


def build(job: plan.Plan, wanted: Sequence[targets.Target], toolchain: str, place: Place,
          say: Callable[[str], None], *, base: str | None = None, jobs: int = 1, libc: str | None = None,
          limits: Limits = DEFAULT_LIMITS, index: provides.Index | None = None,
          out_dir: Path | None = None, supplier: str = NOASSERTION, find: bool = True,
          exclude: Sequence[str] = (), saved: Callable[[plan.Plan], None] | None = None,
          described: Sequence[spdx.Package] | None = None, pick: Pick | None = None,
          clean: bool = False, raise_failed: bool = True, bases: BaseImages | None = None) -> list[Outcome]:
    """Build job for every wanted target with the toolchain called toolchain, jobs at a time; say each program
    as it is written; fail if any target did (a target that lacked a file Debian packages is told which, from
    index). A project's out_dir is left out of what its build copies; supplier is the programs' in their SBOMs.
    With find, the packages that provide what the project declares are found in index first (but those and the
    declarations exclude names) and added to job's. saved hears of the plan that built, found packages and all,
    once every target has. described, when given, are the SBOMs' sources instead of the project's tree; pick
    chooses, for a target, which of the programs the build made are delivered, and then each is verified alone:
    one that fails is said in one line and left out, its siblings delivered. A project's build tree is kept
    between its builds (compile/kept.py); clean builds it from nothing. raise_failed=False: the targets that
    failed are returned with their errors, for the caller to try again another way (and saved hears nothing).
    bases, Debian's base images, let a build image stand on another suite's and a target whose cross build-dep
    fails build inside an emulated container (compile/emulated.py)."""
    if jobs < 1:
        raise InputError(f"--jobs {jobs}: give 1 or more")
    libc = _libc(toolchain, job, libc)
    if find and index is not None:
        job = with_found(job, wanted, libc, index, exclude, say)
    if out_dir is not None:
        check_out_dir(out_dir, job.root)
    chain = select(toolchain, job, wanted, base, libc, limits, clean=clean, bases=bases)
    for each, some in groups(job, wanted):  # once, before any thread: a build image is built by one caller only
        chain.prepare(each, some)
    skip = skip_output(out_dir) if out_dir else (lambda path: False)
    # read once, now, as the build takes them: every program of every target is made from them
    sources = functools.cache((lambda: list(described)) if described is not None
                              else _documented_sources(job, out_dir, supplier))

    def one(target: targets.Target) -> tuple[Program, ...]:
        rule = job.system == plan.RULE
        # outputs (renamed as `outputs` closes) before their naming locks are let go (as `naming` closes)
        with contextlib.ExitStack() as naming, contextlib.ExitStack() as outputs:
            # a rule's one output is taken before it compiles: one that cannot be written is said at once
            reserved = ({job.program: outputs.enter_context(atomic_output(place(target, job.program), mode=0o755))}
                        if rule else {})
            with chain.run(job.for_target(target.name), target, skip) as made:
                if rule:
                    _compiler_said(made / "output.log")
                written = _deliver(made / "out", target, place, sources, rule, naming, outputs, reserved, supplier,
                                   pick)
        for program in written:
            also = f" (also {', '.join(program.also)})" if program.also else ""
            say(f"built {program.path}{also} for {target.platform} with the {chain.name} toolchain")
        return written

    outcomes = for_each_target(wanted, jobs, one)
    phrase = provides.for_sources(chain.name) if job.system == plan.RULE else provides.for_project(chain.name)
    provides.explain([o.error for o in outcomes], wanted, phrase, index)
    if not raise_failed:
        return outcomes
    raise_failures(outcomes, wanted)
    if saved is not None:
        saved(job)
    return outcomes


def with_found(job: plan.Plan, wanted: Sequence[targets.Target], libc: str, index: provides.Index,
               exclude: Sequence[str], say: Callable[[str], None]) -> plan.Plan:
    """job with the packages that provide what it declares for every wanted target, and the build tools it runs
    (compile/found.py), each said in one line with why; a musl build takes no Debian packages, which is said
    instead (its tools are found all the same: they run, they are not linked)."""
    job = _with_packages(job, wanted, libc, index, exclude, say)
    if job.system == plan.RULE:
        return job
    from . import found, programs

    declared = programs.declared(job.root, job.subdir, job.system)
    machine = targets.host()  # the build machine: this host, or the engine's (the same but for remote engines)
    if not declared or index(machine.debian_arch) is None:
        return job
    found_tools = found.tools(declared, machine, index, (*exclude, *job.tools))
    for tool in found_tools:
        say(tool.line())
    added = tuple(t.package for t in found_tools if t.package not in job.tools)
    return replace(job, tools=(*job.tools, *added)) if added else job


def _with_packages(job: plan.Plan, wanted: Sequence[targets.Target], libc: str, index: provides.Index,
                   exclude: Sequence[str], say: Callable[[str], None]) -> plan.Plan:
    declared = (deps.included(job.root, job.sources) if job.system == plan.RULE
                else deps.declared(job.root, job.subdir, job.system))
    todo = [d for d in deps.wanted(declared) if d.name not in exclude]
    if not todo:
        return job
    if libc == "musl":
        named = ", ".join(f"{d.said()} ({d.where})" for d in todo[:3]) + (", ..." if len(todo) > 3 else "")
        say(f"not finding packages for what the project declares ({named}): a musl build takes no Debian "
            "packages (--toolchain container with --libc glibc does)")
        return job
    lacking = [t.debian_arch for t in wanted if index(t.debian_arch) is None]
    if lacking:  # no mirror answers: said once, and the build goes on as told
        say(f"not finding packages for what the project declares: Debian's file index for {', '.join(lacking)} "
            "cannot be had (give them with --package)")
        return job
    from . import found_kept

    finding = found_kept.find(todo, wanted, index, exclude,
                              headers_alone=job.system in ("make", "run", plan.RULE))
    for line in finding.lines(len(wanted)):
        say(line)
    added = tuple(p for p in finding.packages if p not in job.packages)
    return replace(job, packages=(*job.packages, *added)) if added else job


def groups(job: plan.Plan, wanted: Sequence[targets.Target]) -> list[tuple[plan.Plan, list[targets.Target]]]:
    """The wanted targets by the plan each builds (a project's [target.ARCH] tables give some their own)."""
    out: dict[plan.Plan, list[targets.Target]] = {}
    for target in wanted:
        out.setdefault(job.for_target(target.name), []).append(target)
    return list(out.items())


def _documented_sources(job: plan.Plan, out_dir: Path | None,
                        supplier: str) -> Callable[[], Sequence[spdx.Package | spdx.File]]:
    """What the SBOMs name as the sources: each --src file, or the project's tree (out_dir left out), read now;
    their SPDX elements are made when the function returned is called."""
    from ..sbom.sources import source_files, source_tree

    if job.system == plan.RULE:
        return source_files(job.root, job.sources)
    tree = source_tree(job.root, supplier, out_dir)
    return lambda: [tree()]


def _compiler_said(output: Path) -> None:
    """A rule's compiler warnings, shown: its output is the compiler's own, less the lines of taking the program."""
    said = [line for line in excerpt(output).strip().splitlines() if not line.startswith("fromscratch: took ")]
    if said:
        log.warning("%s", "\n".join(said))


def _deliver(out: Path, target: targets.Target, place: Place, sources: Callable[[], Sequence[spdx.Package | spdx.File]],
             rule: bool, naming: contextlib.ExitStack, outputs: contextlib.ExitStack,
             reserved: dict[str, Path], supplier: str, pick: Pick | None = None) -> tuple[Program, ...]:
    """Every program of out, verified for target first (all or none are written), then written where place
    says (into the temporary file reserved for it, else one made now, renamed as outputs closes), each with its
    SBOM beside it (from out/.records, the record of its link) and its naming lock held in naming: a binary never
    takes its name without the document that describes it."""
    from .. import dates
    from ..check import verify  # (a build on this machine imported them while it ran: toolchain.py)
    from ..sbom import records, spdx
    from ..sbom.program import program_document
    from . import symlinks

    programs = _programs(out, target)
    hint = None if rule else ("a project that links dynamically despite the flags: see its build options "
                              "(--configure-args), or pick the programs with --artifact")
    if pick is None:
        facts = {p.name: verify.require(p, target, subject=f"the build made {p.name}", error=BuildFailed, hint=hint)
                 for p in programs}
    else:
        programs, facts = _verified_alone(pick(target, programs), target)
    epoch = dates.source_date_epoch(0)
    written = []
    for p in programs:
        dest = place(target, p.name)
        record = out / plan.RECORDS / p.name
        text = record.read_text() if record.is_file() else ""
        seen = records.parse(text) if text else None
        if seen is None or not seen.seen:
            log.warning("%s: no record of its link (it was linked behind the compiler wrappers' back): its SBOM "
                        "names only what the binary shows", dest)
        document = program_document(p, dest.name, target.platform, facts[p.name], seen, sources(), epoch,
                                    supplier=supplier)
        naming.enter_context(spdx.naming(dest))
        tmp = reserved.get(p.name) or outputs.enter_context(atomic_output(dest, mode=0o755))
        shutil.copyfile(p, tmp)
        spdx.write_beside(dest, document)
        written.append(Program(dest, facts[p.name]))
    also = symlinks.deliver(out / plan.RECORDS / symlinks.LIST, lambda name: place(target, name),
                            {p.name for p in programs}, outputs)
    return tuple(Program(w.path, w.facts, tuple(also.get(p.name, ()))) for w, p in zip(written, programs, strict=True))


def _verified_alone(programs: list[Path], target: targets.Target) -> tuple[list[Path], dict[str, elf.ElfFacts]]:
    """Each program verified on its own: one that fails is said in one line and left out; none left fails."""
    from ..check import verify

    facts: dict[str, elf.ElfFacts] = {}
    said = []
    for p in programs:
        try:
            facts[p.name] = verify.require(p, target, subject=f"{p.name} for {target.platform}", error=BuildFailed)
        except BuildFailed as exc:
            kind = "came out dynamic" if "dynamic" in exc.message else "fails verify"
            said.append(f"{p.name}: {kind} ({exc.message})")
            log.warning("left out %s", said[-1])
    if not facts:
        raise BuildFailed(f"no program of the build for {target.platform} is static: " + "; ".join(said))
    return [p for p in programs if p.name in facts], facts


def _programs(out: Path, target: targets.Target) -> list[Path]:
    """The programs a build left in out: regular files only (a symlink there could name any file of the machine
    that ran the build), none named like another's SBOM; none at all is a failure."""
    from ..sbom import spdx

    if not out.is_dir() or out.is_symlink():
        raise BuildFailed(f"the build for {target.platform} left no directory of programs")
    programs = sorted(p for p in out.iterdir() if not p.is_symlink() and p.is_file())
    if not programs:
        raise BuildFailed(f"the build for {target.platform} made no program")
    names = {p.name for p in programs}
    for p in programs:
        if p.name.endswith(spdx.SUFFIX) and p.name.removesuffix(spdx.SUFFIX) in names:
            raise BuildFailed(f"the build made two programs whose outputs collide: {p.name} would overwrite the SBOM "
                              f"of {p.name.removesuffix(spdx.SUFFIX)}", hint="pick the programs with --artifact")
    return programs


def for_each_target(wanted: Sequence[targets.Target], jobs: int,
                    work: Callable[[targets.Target], tuple[Program, ...]]) -> list[Outcome]:
    """work(target) for each target, jobs at a time, each failure kept in its Outcome; in wanted's order."""

    def one(target: targets.Target) -> Outcome:
        try:
            return Outcome(target, work(target))
        except ToolkitError as exc:
            return Outcome(target, error=exc)

    if jobs == 1 or len(wanted) == 1:
        return [one(t) for t in wanted]
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=min(jobs, len(wanted)), thread_name_prefix="build")
    try:
        futures = [pool.submit(one, t) for t in wanted]
        return [f.result() for f in futures]
    finally:
        # on Ctrl-C, builds not yet started are dropped; running ones finish and clean up after themselves
        pool.shutdown(wait=True, cancel_futures=True)


def raise_failures(outcomes: Sequence[Outcome], wanted: Sequence[targets.Target]) -> None:
    """Nothing when every target built; one target's own error when only one was wanted; else one error naming
    the targets that failed, with each one's log."""
    failed = [o for o in outcomes if o.error is not None]
    if not failed:
        return
    if len(wanted) == 1 and failed[0].error is not None:
        raise failed[0].error
    logs = "\n".join(f"--- {f.target.name}: {f.error}\n{getattr(f.error, 'log', '')}".rstrip() for f in failed)
    hints = {f.error.hint for f in failed if f.error is not None}
    raise BuildFailed(f"{len(failed)} of {len(wanted)} targets failed: " + ", ".join(f.target.name for f in failed),
                      hint=hints.pop() if len(hints) == 1 else None, log=logs)  # a hint they all share: said once


# Where programs must never be written: the system's own directories (a build run as root would replace what the
# machine runs).
_SYSTEM_DIRS = ("/", "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/root",
                "/run", "/sbin", "/srv", "/sys", "/usr", "/var", "/home", "/opt", "/tmp", "/var/tmp")


def check_out_dir(out_dir: Path, root: Path) -> None:
    """--out must be a directory of its own: not the project or inside it (programs would overwrite its files and
    the next build would copy them in), not above it, not a system directory or the user's home."""
    out = Path(os.path.realpath(out_dir))
    top = Path(os.path.realpath(root))
    if out == top or out.is_relative_to(top):
        raise InputError(f"--out {out_dir}: is inside the project {root}",
                         hint=f"write the programs outside it, e.g. --out {top.parent / (top.name + '-dist')}")
    if top.is_relative_to(out):
        raise InputError(f"--out {out_dir}: holds the project {root}", hint="give a directory of its own, e.g. ./dist")
    home = os.path.realpath(os.path.expanduser("~"))
    if str(out) in _SYSTEM_DIRS or out.parent == Path("/usr") or str(out) == home:
        raise InputError(f"--out {out_dir}: is a system directory or your home", hint="give a directory of its own, "
                         "e.g. ./dist")


def output_paths(base: Path, wanted: Sequence[targets.Target], per_target: bool) -> dict[str, Path]:
    """Where each target's binary goes: base itself, or base-<target> (hello-arm-v7) for each when per_target."""
    if not per_target:
        if len(wanted) != 1:
            raise InputError(f"{len(wanted)} targets cannot share the one output {base}")
        return {wanted[0].name: base}
    return {t.name: base.with_name(f"{base.name}-{t.name}") for t in wanted}


def skip_output(out_dir: Path) -> Callable[[str], bool]:
    """What of the user's tree a project build leaves out: .git, and the output directory when it lies inside."""
    out = os.path.realpath(out_dir)
    return lambda path: os.path.basename(path) == ".git" or os.path.realpath(path) == out
