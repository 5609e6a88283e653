"""Running a project's build (compile/project.py) for each target: natively or with zig in a temporary copy of the
project, or in the build container through the archive API; then every program it made verified for its
target and written to --out. The user's tree is only read."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import stat
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .. import dates, files, interrupts, targets
from ..check import elf, verify
from ..engine import client as engine
from ..errors import BuildFailed, InputError
from ..files import atomic_output, scratch_dir, temp_dir
from ..sbom import links, spdx
from ..sbom.program import program_document
from ..sbom.sources import source_tree
from . import cross, project, provides
from . import toolchain as tc

log = logging.getLogger(__name__)

CONTAINER_WORK = "/work"
_LOG_TAIL = 40  # lines of a failed build's own output shown with the error
_NATIVE_PROGRAMS = {"make": ("make",), "cmake": ("cmake", "ninja"), "meson": ("meson", "ninja"),
                    "autotools": ("make",), "run": ()}
_PROGRAM_PACKAGES = {"ninja": "ninja-build"}


def build(proj: project.Project, arch: str | None, toolchain: str, out_dir: Path, base: str | None,
          say: Callable[[str], None], jobs: int = 1, libc: str | None = None,
          limits: engine.Limits = engine.DEFAULT_LIMITS, index: provides.Index | None = None,
          supplier: str = spdx.NOASSERTION) -> None:
    """Build proj for every target arch names (default: this host), jobs at a time; say each program written;
    fail if any target did (a target that lacked a file Debian packages is told which, from index). Each
    program's SBOM names supplier as its supplier."""
    wanted = targets.parse_archs(arch) if arch else [targets.host()]
    if jobs < 1:
        raise InputError(f"--jobs {jobs}: give 1 or more")
    libc = tc.resolve_libc(toolchain, libc)
    if libc == "musl" and proj.packages:
        raise InputError(f"--package with {'the zig toolchain' if toolchain == 'zig' else '--libc musl'}: Debian's "
                         "static archives are built against glibc", hint="use --libc glibc with --toolchain "
                         "container (or native) for --package")
    check_out_dir(out_dir, proj.root)
    runner = _select(toolchain, proj, wanted, base, libc, limits)
    runner.prepare(proj, wanted)
    per_target = len(wanted) > 1
    sources = source_tree(proj.root, supplier, out_dir)  # once: every program of every target is made from it

    def one(target: targets.Target) -> None:
        with runner.run(proj, target, out_dir) as made:
            for path in _deliver(made, target, out_dir / target.name if per_target else out_dir, runner.name,
                                 sources, supplier):
                say(f"built {path} for {target.platform} with the {runner.name} toolchain")

    outcomes = tc.for_each_target(wanted, jobs, one, lambda t: out_dir)
    provides.explain([o.error for o in outcomes], wanted, provides.for_project(runner.name), index)
    tc.raise_failures(outcomes, wanted)


def _deliver(made: Path, target: targets.Target, dest: Path, who: str, sources: spdx.Package,
             supplier: str) -> list[Path]:
    """Every program of made/out, verified for target first (all or none are written), then written to dest,
    each with its SBOM beside it (from made/out/.records, the record of its link)."""
    programs = _programs(made / "out", target)
    facts = {}
    for p in programs:
        verdict = verify.verify(elf.read(str(p)), target.name)
        if not verdict.ok:
            raise BuildFailed(f"the {who} build made {p.name} for {target.platform}, which fails verify: "
                              + "; ".join(verdict.failures),
                              hint="a project that links dynamically despite the flags: see its build options "
                                   "(--configure-args), or pick the programs with --artifact")
        facts[p.name] = verdict.facts
    epoch = dates.source_date_epoch(0)
    written = []
    for p in programs:
        record = made / "out" / project.RECORDS / p.name
        text = record.read_text() if record.is_file() else ""
        document = program_document(p, p.name, target.platform, facts[p.name],
                                    links.parse(text) if text else None, [sources], epoch, supplier=supplier)
        with spdx.naming(dest / p.name):
            spdx.write_beside(dest / p.name, document)
            with atomic_output(dest / p.name, mode=0o755) as tmp:
                shutil.copyfile(p, tmp)
        written.append(dest / p.name)
    return written


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


def _programs(out: Path, target: targets.Target) -> list[Path]:
    """The programs a build left in out: regular files only (a symlink there could name any file of the machine
    that ran the build), none named like another's SBOM; none at all is a failure."""
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


def _select(name: str, proj: project.Project, wanted: Sequence[targets.Target], base: str | None, libc: str,
            limits: engine.Limits) -> Any:
    if name == "native":
        return Native(libc=libc, limits=limits)
    if name == "zig":
        return Native(zig=True, libc=libc, limits=limits)
    if name == "container":
        return Container(engine.connect(), base, libc, limits)
    if name == "auto":
        native = Native(libc=libc, limits=limits)
        if native.missing(proj, wanted) is None:
            return native
        return Container(engine.connect(), base, libc, limits)
    raise InputError(f"unknown toolchain {name!r}", hint=f"choose {', '.join(tc.TOOLCHAINS)}")


def _failure(code: int, output: Path, what: str) -> BuildFailed:
    """A failed build script as one error: its own last line when the script itself stopped, else the build's
    last lines (read from the file that holds its output, never all of it in memory)."""
    lines = files.excerpt(output, whole=0).strip().splitlines()
    if code in (project.NO_ARTIFACT, project.NO_PROGRAM) and lines and lines[-1].startswith("fromscratch: "):
        return BuildFailed(lines[-1].removeprefix("fromscratch: "))
    return BuildFailed(f"{what} failed (exit {code})", log="\n".join(lines[-_LOG_TAIL:]),
                       lacking=provides.lacking(output))


def _timed_out(what: str, limits: engine.Limits) -> BuildFailed:
    return BuildFailed(f"{what} stopped: it ran past its time limit of {limits.timeout:g} s",
                       hint="give it longer with --timeout SECONDS (0: no limit)")


def _tools_files(proj: project.Project, tools: cross.Toolset, work: str) -> dict[str, str]:
    tools_dir = f"{work}/tools"
    out = cross.files(tools, tools_dir, proj.strip)
    out["env.sh"] = project.env_script(cross.environment(tools, tools_dir, proj.cflags, proj.ldflags))
    out["build.sh"] = project.script(proj, work, tools.cross, tools.triplet)
    return out


def _skip(out_dir: Path) -> Callable[[str], bool]:
    """What of the user's tree is not copied: .git, and the output directory when it lies inside."""
    out = os.path.realpath(out_dir)
    return lambda path: os.path.basename(path) == ".git" or os.path.realpath(path) == out


class Native:
    """The host's gcc (or its cross gcc), or zig cc, in a temporary copy of the project."""

    def __init__(self, zig: bool = False, run: Any = interrupts.run_child, libc: str = "glibc",
                 limits: engine.Limits = engine.DEFAULT_LIMITS) -> None:
        self.zig = zig
        self.name = "zig" if zig else "native"
        self._run = run
        self.libc = libc
        self.limits = limits

    def missing(self, proj: project.Project, wanted: Sequence[targets.Target]) -> str | None:
        """None when this host has all a native build needs, else what to install."""
        needs: list[str] = []
        if not self.zig:
            gcc = tc.NativeGcc(self._run, self.libc)
            needs += [m for t in wanted if (m := gcc.missing(t))]
        needs += [_PROGRAM_PACKAGES.get(p, p) for p in _NATIVE_PROGRAMS[proj.system] if not shutil.which(p)]
        needs += [p for p in proj.tools if not self._installed(p)]
        for t in wanted:
            needs += [f"{p}:{t.debian_arch}" for p in proj.packages if not self._installed(f"{p}:{t.debian_arch}")]
        return " ".join(dict.fromkeys(needs)) or None

    def _installed(self, package: str) -> bool:
        proc = self._run(["dpkg-query", "-W", "-f", "${Status}", package], capture_output=True, text=True)
        return proc.returncode == 0 and proc.stdout.strip().endswith(" installed")

    def prepare(self, proj: project.Project, wanted: Sequence[targets.Target]) -> None:
        if self.zig:
            tc.ZigCc(self._run).prepare(wanted)
        else:
            tc.NativeGcc(self._run, self.libc).prepare(wanted)
        missing = self.missing(proj, wanted)
        if missing:
            raise BuildFailed(f"this host lacks what a native build of {proj.name} needs: {missing}",
                              hint=f"{tc.apt_hint(missing, targets.host())}; or use --toolchain container")

    @contextlib.contextmanager
    def run(self, proj: project.Project, target: targets.Target, out_dir: Path) -> Iterator[Path]:
        """The build in a temporary copy; yields the work directory, whose out/ holds the programs and
        out/.records the records of their links."""
        machine = targets.host()
        tools = cross.zig(target, machine, sys.executable) if self.zig else cross.gcc(target, machine, self.libc)
        with temp_dir("fromscratch-project-", scratch_dir()) as work:
            work = work.resolve()  # the script checks that --artifact paths lead into it, by their real paths
            files.copy_tree(proj.root, work / "src", _skip(out_dir))
            (work / "tools").mkdir()
            for name, text in _tools_files(proj, tools, str(work)).items():
                (work / "tools" / name).write_text(text)
                (work / "tools" / name).chmod(0o755)
            log.info("building %s for %s in %s", proj.name, target.platform, work)
            what = f"the build of {proj.name} for {target.platform}"
            output = work / "output.log"
            with tc.zig_first_build(target) if self.zig else contextlib.nullcontext():
                try:
                    code = interrupts.run_logged(["sh", str(work / "tools" / "build.sh"), *proj.artifacts],
                                                 str(output), self.limits.timeout)
                except interrupts.TimedOut:
                    raise _timed_out(what, self.limits) from None
                if code != 0:
                    raise _failure(code, output, what)
            yield work


class Container:
    """gcc in the build container for the target: the project goes in and the programs come out through the
    archive API (remote engines work, no file on the host is owned by root), with networking off."""

    name = "container"

    def __init__(self, client: Any, base: str | None, libc: str = "glibc",
                 limits: engine.Limits = engine.DEFAULT_LIMITS) -> None:
        self._gcc = tc.ContainerGcc(client, base, libc, limits)
        self._client = client
        self.libc = libc
        self.limits = limits

    def prepare(self, proj: project.Project, wanted: Sequence[targets.Target]) -> None:
        # before any thread: each image built by one caller
        self._gcc.prepare(wanted, proj.tools, proj.packages, project=True)

    @contextlib.contextmanager
    def run(self, proj: project.Project, target: targets.Target, out_dir: Path) -> Iterator[Path]:
        image = self._gcc.image_for(target, proj.tools, proj.packages, project=True)
        machine = targets.lookup(self._gcc.image_arch())
        tools = cross.gcc(target, machine, self.libc)
        tools_files = _tools_files(proj, tools, CONTAINER_WORK)
        command = ["sh", f"{CONTAINER_WORK}/tools/build.sh", *proj.artifacts]
        with tempfile.TemporaryFile(dir=scratch_dir()) as tar_file, temp_dir("fromscratch-programs-") as made, \
                engine.container(self._client, "build", image, network_disabled=True, working_dir=CONTAINER_WORK,
                                 **engine.watched(command), **self.limits.create_args()) as container:
            _write_tar(tar_file, proj.root, tools_files, _skip(out_dir))
            tar_file.seek(0)
            with engine.step(f"copying {proj.name} into the build container"):
                container.put_archive("/", tar_file)
            what = f"the build of {proj.name} for {target.platform}"
            tc.run_container(self._client, container, f"building {proj.name} for {target.platform}", what,
                             made / "output.log", self.limits,
                             failure=lambda code, out: _failure(code, out, what))
            (made / "out" / project.RECORDS).mkdir(parents=True)
            with engine.step("copying the programs out"):
                stream, _ = container.get_archive(f"{CONTAINER_WORK}/out")
                tc.extract_files(stream, functools.partial(_inside, made / "out"))
            yield made


def _inside(out: Path, name: str) -> Path:
    """Where a member of out/'s archive goes: a program in out, a record in out/.records (no other path)."""
    parent, base = os.path.split(name)
    return (out / project.RECORDS if os.path.basename(parent) == project.RECORDS else out) / base


def _write_tar(fh: Any, root: Path, tools: dict[str, str], skip: Callable[[str], bool]) -> None:
    """The project under work/src (files.tree's rules: no special files, symlinks kept inside) and the tools
    under work/tools, owned by root, modes and modification times kept."""
    import io

    work = CONTAINER_WORK.strip("/")
    kinds = {"dir": tarfile.DIRTYPE, "file": tarfile.REGTYPE, "link": tarfile.SYMTYPE}
    with tarfile.open(fileobj=fh, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in files.tree(root, skip):
            info = tarfile.TarInfo(f"{work}/src/{entry.rel}" if entry.rel else f"{work}/src")
            info.type, info.mode = kinds[entry.kind], stat.S_IMODE(entry.mode)
            info.mtime = entry.mtime_ns // 1_000_000_000
            if entry.kind == "file":
                with open(entry.source, "rb") as src:
                    info.size = os.fstat(src.fileno()).st_size
                    tar.addfile(info, src)
            else:
                info.linkname = entry.link
                tar.addfile(info)
        for name, text in sorted(tools.items()):
            data = text.encode()
            info = tarfile.TarInfo(f"{work}/tools/{name}")
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
