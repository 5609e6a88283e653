"""Compilers behind one interface: compile(sources, target, out, cflags) -> path of a static binary that passes verify.

Three of them: the host's gcc (native), gcc in a build container, and zig cc; build_all runs any of them for
several targets at once.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import io
import logging
import os
import platform
import shutil
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .. import dates, files, interrupts, targets
from ..check import elf, verify
from ..engine import client as engine
from ..errors import BuildFailed, InputError, ToolkitError
from ..files import atomic_output, excerpt, regular_input, scratch_dir
from ..sbom import links, spdx
from ..sbom.program import program_document
from ..sbom.sources import source_files
from . import buildimage as builder
from . import provides

log = logging.getLogger(__name__)

STATIC_FLAGS = ("-static",)


class Toolchain(Protocol):
    name: str

    def prepare(self, wanted: Sequence[targets.Target]) -> None:
        """Check or set up what building these targets needs, once, before any compile; raise naming what is missing."""

    def compile(self, sources: Sequence[Path], target: targets.Target, out: Path,
                cflags: Sequence[str] = (), ldflags: Sequence[str] = (), supplier: str = spdx.NOASSERTION) -> Path: ...


@dataclass(frozen=True)
class Outcome:
    """One target's result in a multi-target build: the binary at out, or the error that stopped it."""

    target: targets.Target
    out: Path
    error: ToolkitError | None = None


def check_sources(sources: Sequence[Path]) -> list[Path]:
    if not sources:
        raise InputError("no source file given", hint="pass --src FILE.c")
    for src in sources:
        regular_input(src, "source file")
    return list(sources)


# A source with one of these endings is C++: compiled and linked by g++ (libstdc++ static with the rest).
CXX_SUFFIXES = (".cc", ".cpp", ".cxx", ".C", ".c++")
HEADER_SUFFIXES = (".h", ".hh", ".hpp", ".hxx", ".H", ".h++", ".inc", ".inl", ".ipp", ".tcc")
_HEADER_WALK_CAP = 20_000  # entries looked at for headers: a source dropped into a huge tree stays cheap


@dataclass(frozen=True)
class Layout:
    """Sources as the compiler sees them: paths relative to one base directory, which is the compiler's working
    directory natively and /src in the build container, so both builds see the same names (__FILE__, #include
    "sub/x.h", diagnostics) and give the same binary. The base is the current directory when every source is
    under it (so relative -I flags mean what they meant), else the sources' common directory."""

    base: Path
    files: tuple[str, ...]

    @property
    def cxx(self) -> bool:
        return any(f.endswith(CXX_SUFFIXES) for f in self.files)

    def headers(self, cflags: Sequence[str] = ()) -> list[str]:
        """Header files an #include may name, relative to base: those under each source's directory and under
        each relative -I directory (the container gets these with the sources; the native build has them)."""
        roots = {os.path.dirname(f) for f in self.files}
        roots.update(f[2:] for f in cflags if f.startswith("-I") and len(f) > 2 and not os.path.isabs(f[2:]))
        found: set[str] = set()
        seen = 0
        for root in sorted(roots):
            top = self.base / root
            if not top.resolve().is_relative_to(self.base.resolve()):
                continue
            for dirpath, dirnames, filenames in os.walk(top):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                seen += len(filenames) + len(dirnames)
                if seen > _HEADER_WALK_CAP:
                    log.warning("stopped looking for headers under %s after %d entries", top, _HEADER_WALK_CAP)
                    return sorted(found)
                rel = os.path.relpath(dirpath, self.base)
                found.update(os.path.normpath(os.path.join(rel, n)) for n in filenames
                             if n.endswith(HEADER_SUFFIXES) and os.path.isfile(os.path.join(dirpath, n)))
        return sorted(found - set(self.files))


def layout(sources: Sequence[Path]) -> Layout:
    absolute = [Path(os.path.abspath(s)) for s in sources]
    cwd = Path(os.getcwd())
    if all(p.is_relative_to(cwd) for p in absolute):
        base = cwd
    else:
        base = Path(os.path.commonpath([str(p.parent) for p in absolute]))
    # a name gcc would read as an option (-o.c, --help.c) is given as ./NAME: a file name is never a flag
    files = tuple(f"./{rel}" if rel.startswith("-") else rel for rel in (os.path.relpath(p, base) for p in absolute))
    dup = {f for f in files if files.count(f) > 1}
    if dup:
        raise InputError(f"{sorted(dup)[0]} is given twice", hint="pass each source once")
    return Layout(base, files)


def gcc_args(target: targets.Target, cflags: Sequence[str]) -> list[str]:
    return [*STATIC_FLAGS, *target.cflags, *cflags]


def output_paths(base: Path, wanted: Sequence[targets.Target], per_target: bool) -> dict[str, Path]:
    """Where each target's binary goes: base itself, or base-<target> (hello-arm-v7) for each when per_target."""
    if not per_target:
        if len(wanted) != 1:
            raise InputError(f"{len(wanted)} targets cannot share the one output {base}")
        return {wanted[0].name: base}
    return {t.name: base.with_name(f"{base.name}-{t.name}") for t in wanted}


def build_all(chain: Toolchain, sources: Sequence[Path], wanted: Sequence[targets.Target],
              outs: dict[str, Path], cflags: Sequence[str] = (), jobs: int = 1,
              on_done: Callable[[Outcome], None] | None = None, ldflags: Sequence[str] = (),
              supplier: str = spdx.NOASSERTION) -> list[Outcome]:
    """Build every wanted target, jobs at a time; one target's failure does not stop the others.

    on_done hears of each target as it finishes (from a worker thread); the list comes back in wanted's order.
    """
    sources = check_sources(sources)
    layout(sources)  # two names for one file are refused before any compiler runs
    if jobs < 1:
        raise InputError(f"--jobs {jobs}: give 1 or more")
    chain.prepare(wanted)  # once, before any thread: a build image is built by one caller only
    return for_each_target(wanted, jobs, lambda t: chain.compile(sources, t, outs[t.name], cflags, ldflags, supplier),
                           lambda t: outs[t.name], on_done)


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


def for_each_target(wanted: Sequence[targets.Target], jobs: int, work: Callable[[targets.Target], object],
                    out_of: Callable[[targets.Target], Path],
                    on_done: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """work(target) for each target, jobs at a time, each failure kept in its Outcome; in wanted's order."""

    def one(target: targets.Target) -> Outcome:
        try:
            work(target)
            done = Outcome(target, out_of(target))
        except ToolkitError as exc:
            done = Outcome(target, out_of(target), exc)
        if on_done is not None:
            on_done(done)
        return done

    if jobs == 1 or len(wanted) == 1:
        return [one(t) for t in wanted]
    pool = ThreadPoolExecutor(max_workers=min(jobs, len(wanted)), thread_name_prefix="build")
    try:
        futures = [pool.submit(one, t) for t in wanted]
        return [f.result() for f in futures]
    finally:
        # on Ctrl-C, builds not yet started are dropped; running ones finish and clean up after themselves
        pool.shutdown(wait=True, cancel_futures=True)


def _check_output(path: Path, target: targets.Target, who: str) -> elf.ElfFacts:
    """The compiler's output must pass verify for its target before it takes the user's file name."""
    verdict = verify.verify(elf.read(str(path)), target.name)
    if not verdict.ok:
        raise BuildFailed(f"{who} built a binary for {target.platform} that fails verify: "
                          + "; ".join(verdict.failures))
    return verdict.facts


def _write_sbom(binary: Path, out: Path, target: targets.Target, facts: elf.ElfFacts, record: str | None,
                lay: Layout, supplier: str) -> None:
    """out's SBOM, from the binary about to become out and the record of its link, written beside it first: a
    binary never takes its name without the document that describes it."""
    data = program_document(binary, out.name, target.platform, facts, links.parse(record) if record else None,
                            source_files(lay.base, lay.files), dates.source_date_epoch(0), supplier=supplier)
    spdx.write_beside(out, data)


@contextlib.contextmanager
def _record_file() -> Iterator[Path]:
    """Where a link's record goes, in a temporary directory that also takes its trace (gone with it, however the
    run ends)."""
    with tempfile.TemporaryDirectory(prefix="fromscratch-link-", dir=scratch_dir()) as tmp:
        record = Path(tmp) / "record"
        record.touch()
        yield record


def _run_compiler(cmd_for: Callable[[Path], list[str]], out: Path, target: targets.Target, who: str, lay: Layout,
                  style: str, driver: str, timeout: float | None, supplier: str) -> Path:
    """Run a compiler command that writes to a temporary path, its link traced (links.command), its output in a
    file beside the record; the result is checked, its SBOM written beside out, then it is renamed to out."""
    with contextlib.ExitStack() as naming:
        with atomic_output(out, mode=0o755) as tmp, _record_file() as record:
            compiler = cmd_for(tmp)
            log.info("%s", " ".join(compiler))
            cmd = links.command(style, driver, os.path.abspath(tmp), str(record), compiler)
            output = record.with_name("output")
            try:
                code = interrupts.run_logged(cmd, str(output), timeout, cwd=lay.base)
            except interrupts.TimedOut:
                raise BuildFailed(f"{who} for {target.platform} stopped after its time limit of {timeout:g} s",
                                  hint="give it longer with --timeout SECONDS (0: no limit)") from None
            if code != 0:
                raise BuildFailed(f"{who} failed for {target.platform} (exit {code})", log=excerpt(output).strip(),
                                  lacking=provides.lacking(output))
            if output.stat().st_size:
                log.warning("%s", excerpt(output).strip())
            _finish(naming, tmp, out, target, who, record, lay, supplier)
    return out


def _finish(naming: contextlib.ExitStack, tmp: Path, out: Path, target: targets.Target, who: str, record: Path,
            lay: Layout, supplier: str) -> None:
    """The compiler's output at tmp checked, then out's naming lock taken (naming holds it until the binary has
    its name too) and its SBOM written beside out, from the link's record."""
    facts = _check_output(tmp, target, who)
    naming.enter_context(spdx.naming(out))
    _write_sbom(tmp, out, target, facts, record.read_text(), lay, supplier)


class NativeGcc:
    """The host's gcc (g++ for C++), or its cross gcc for a foreign target (Linux hosts); with musl, the
    <musl>-gcc of Debian's musl-dev for the target."""

    name = "native"

    def __init__(self, run: Any = interrupts.run_child, libc: str = "glibc",
                 limits: engine.Limits = engine.DEFAULT_LIMITS) -> None:
        self._run = run
        self.libc = libc
        self.limits = limits

    def _find(self, target: targets.Target, cxx: bool = False) -> str | None:
        own_arch = target.architecture == targets.host().architecture
        if self.libc == "musl":
            musl_gcc = f"{target.musl}-gcc"  # a script running the target's gcc with musl's specs
            return musl_gcc if shutil.which(musl_gcc) and (own_arch or shutil.which(target.gcc)) else None
        own, cross = ("g++", target.gxx) if cxx else ("gcc", target.gcc)
        if own_arch and shutil.which(own):
            return own
        return cross if shutil.which(cross) else None

    def compiler(self, target: targets.Target, cxx: bool = False) -> str:
        if cxx:
            refuse_musl_cxx(self.libc)
        cc = self._find(target, cxx)
        if cc is None and self.libc == "musl":
            raise BuildFailed(f"no musl gcc for {target.platform} on this host (looked for {target.musl}-gcc)",
                              hint=apt_hint(self.missing(target) or "", targets.host())
                              + ", or use --toolchain container or --toolchain zig")
        if cc is None:
            own = target.architecture == targets.host().architecture
            wanted = (target.gxx if cxx else target.gcc) if not own else ("g++" if cxx else "gcc")
            packages = ("g++" if own else " ".join(target.cxx_packages)) if cxx else " ".join(target.packages)
            raise BuildFailed(f"no {'g++' if cxx else 'gcc'} for {target.platform} on this host (looked for {wanted})",
                              hint=f"install {packages} (Debian/Ubuntu), or use --toolchain container"
                                   + ("" if cxx else " or --toolchain zig"))
        return cc

    def missing(self, target: targets.Target) -> str | None:
        """None when a gcc that links statically for target is here; else the package(s) that give one."""
        cc = self._find(target)
        own_arch = target.architecture == targets.host().architecture
        if cc is None and self.libc == "musl":
            gcc = [] if own_arch or shutil.which(target.gcc) else list(target.packages)
            return " ".join([*gcc, "musl-dev" if own_arch else f"musl-dev:{target.debian_arch}"])
        if cc is None:
            return "gcc libc6-dev" if own_arch else " ".join(target.packages)
        proc = self._run([cc, "-print-file-name=libc.a"], capture_output=True, text=True)
        found = proc.stdout.strip()
        if proc.returncode == 0 and os.path.isabs(found) and os.path.exists(found):
            return None
        if cc == "gcc":
            return "libc6-dev (Debian/Ubuntu) or glibc-static (Fedora)"
        return target.packages[1]

    def available(self, target: targets.Target) -> bool:
        return platform.system() == "Linux" and self.missing(target) is None

    def prepare(self, wanted: Sequence[targets.Target]) -> None:
        if platform.system() != "Linux":
            raise BuildFailed(f"the native toolchain builds Linux binaries on a Linux host, not {platform.system()}",
                              hint="use --toolchain container or --toolchain zig")
        missing = {t.platform: m for t in wanted if (m := self.missing(t))}
        if missing:
            packages = " ".join(dict.fromkeys(" ".join(missing.values()).split(" ")))
            what = "a musl gcc" if self.libc == "musl" else "a gcc that links statically"
            raise BuildFailed(f"no {what} for {', '.join(missing)} on this host",
                              hint=f"{apt_hint(packages, targets.host())}, or use --toolchain container or "
                                   "--toolchain zig")

    def compile(self, sources: Sequence[Path], target: targets.Target, out: Path,
                cflags: Sequence[str] = (), ldflags: Sequence[str] = (), supplier: str = spdx.NOASSERTION) -> Path:
        lay = layout(check_sources(sources))
        if lay.cxx:
            refuse_musl_cxx(self.libc)
        self.prepare([target])
        cc = self.compiler(target, lay.cxx)
        driver = gcc_driver(cc, target, target.architecture == targets.host().architecture, self.libc)
        return _run_compiler(lambda tmp: [cc, *gcc_args(target, cflags), *lay.files, *ldflags,
                                          "-o", os.path.abspath(tmp)], out, target, cc, lay, links.GNU, driver,
                             self.limits.timeout, supplier)


class ZigCc:
    """`zig cc` (`zig c++`) from the ziglang package on PyPI: every target, static musl, no Docker and no cross
    packages."""

    name = "zig"

    def __init__(self, run: Any = interrupts.run_child, python: str = sys.executable,
                 limits: engine.Limits = engine.DEFAULT_LIMITS) -> None:
        self._run = run
        self._python = python
        self.limits = limits

    def prepare(self, wanted: Sequence[targets.Target]) -> None:
        if importlib.util.find_spec("ziglang") is None:
            raise BuildFailed("the zig toolchain needs the ziglang package, which is not installed",
                              hint="pip install 'fromscratch[zig]' (or pip install ziglang)")

    def command(self, target: targets.Target, sources: Sequence[str], out: str, cflags: Sequence[str] = (),
                ldflags: Sequence[str] = (), cxx: bool = False) -> list[str]:
        cpu = [f"-mcpu={target.zig_cpu}"] if target.zig_cpu else []
        return [self._python, "-m", "ziglang", "c++" if cxx else "cc", "-target", target.zig, *cpu, *STATIC_FLAGS,
                *cflags, *sources, *ldflags, "-o", out]

    def compile(self, sources: Sequence[Path], target: targets.Target, out: Path,
                cflags: Sequence[str] = (), ldflags: Sequence[str] = (), supplier: str = spdx.NOASSERTION) -> Path:
        lay = layout(check_sources(sources))
        self.prepare([target])
        with zig_first_build(target):
            return _run_compiler(lambda tmp: self.command(target, lay.files, os.path.abspath(tmp), cflags, ldflags,
                                                          lay.cxx),
                                 out, target, "zig c++" if lay.cxx else "zig cc", lay, links.ZIG, "",
                                 self.limits.timeout, supplier)


@contextlib.contextmanager
def zig_first_build(target: targets.Target) -> Iterator[None]:
    """Say so before zig's first build for a target, which compiles musl and its runtime into zig's cache (about a
    minute, without a word from zig); a build that succeeds leaves a note that the next one needs no saying.
    The note is kept per zig (where it is installed, its version), per zig cache and per target."""
    import hashlib

    spec = importlib.util.find_spec("ziglang")
    try:
        version = importlib.metadata.version("ziglang")
    except importlib.metadata.PackageNotFoundError:
        version = "?"
    zig_cache = os.environ.get("ZIG_GLOBAL_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "zig")
    key = "\n".join([str(spec.origin if spec else ""), version, zig_cache, target.zig, target.zig_cpu or ""])
    note = files.cache_dir() / "zig-built" / hashlib.sha256(key.encode()).hexdigest()[:16]
    if not note.exists():
        log.warning("zig: the first build for %s compiles musl and its runtime into zig's cache (about a minute, "
                    "once)", target.name)
    yield
    with contextlib.suppress(OSError):
        note.parent.mkdir(parents=True, exist_ok=True)
        note.write_text(f"{target.zig} {target.zig_cpu or ''} with ziglang {version}\n")


class ContainerGcc:
    """gcc (g++) inside a build container: sources go in and the binary comes out through the archive API."""

    name = "container"

    def __init__(self, client: Any, base: str | None = None, libc: str = "glibc",
                 limits: engine.Limits = engine.DEFAULT_LIMITS) -> None:
        self._client = client
        self._base = base  # None: builder.default_base(), looked up when first needed
        self._chosen_by = "--builder-base or the config key builder.base"
        self._announced = False
        self.libc = libc
        self.limits = limits
        self._host_arch: str | None = None
        self._base_id: str | None = None
        self._failed: dict[tuple, BuildFailed] = {}  # images that could not be built, by what they were for
        self._ready: dict[tuple, str] = {}  # and those that are there

    def image_arch(self) -> str:
        if self._host_arch is None:
            with engine.step("asking the engine for its architecture"):
                info = self._client.version()
            self._host_arch = targets.lookup(info.get("Arch", "amd64")).architecture
        return self._host_arch

    def base(self) -> str:
        """The build image's base: the one given, else the set-up's when the engine has it, else the fallback."""
        if self._base is None:
            self._base, self._chosen_by = builder.default_base(self._client)
        return self._base

    def base_id(self) -> str:
        if self._base_id is None:
            self._base_id = builder.base_image_id(self._client, self.base())
        return self._base_id

    def _announce(self) -> None:
        """Say which base a build image is built on, and what chose it, once: before the first one is built."""
        if not self._announced:
            self._announced = True
            log.warning("build image base: %s (%s)", self.base(), self._chosen_by)

    def image_for(self, target: targets.Target, tools: Sequence[str] = (), packages: Sequence[str] = (),
                  project: bool = False) -> str:
        """The build image for target (built or found): the compilers, for a project the build systems, its
        cross compilers, musl, then tools and packages."""
        key = (target.name, tuple(tools), tuple(packages), project)
        if key in self._failed:  # one target's failure, said once, when that target is built
            raise self._failed[key]
        if key in self._ready:  # prepare() found or built it
            return self._ready[key]
        layers = builder.chain(self.base(), target, self.image_arch(), tools, packages, self.libc, project,
                               base_id=self.base_id())
        try:
            self._ready[key] = builder.ensure_chain(self._client, layers, self._announce)
            return self._ready[key]
        except BuildFailed as exc:
            self._failed[key] = self._explained(exc, target)
            raise self._failed[key] from None

    def _explained(self, exc: BuildFailed, target: targets.Target) -> BuildFailed:
        if builder.MISSING_MARK in exc.log:
            missing = exc.log.rsplit(builder.MISSING_MARK, 1)[1].split()[0]  # the echo's, not the step's
            return BuildFailed(f"no musl for {target.platform}: the package archive of {self.base()} has no "
                               f"{missing}", hint="use --toolchain zig, which brings musl for every target")
        return exc

    def prepare(self, wanted: Sequence[targets.Target], tools: Sequence[str] = (),
                packages: Sequence[str] = (), project: bool = False) -> None:
        """Build (or find) each wanted target's image, before any compile: one caller builds an image. A target
        whose image cannot be built fails alone, when it is compiled."""
        for target in wanted:
            with contextlib.suppress(BuildFailed):
                self.image_for(target, tools, packages, project)

    def compile(self, sources: Sequence[Path], target: targets.Target, out: Path,
                cflags: Sequence[str] = (), ldflags: Sequence[str] = (), supplier: str = spdx.NOASSERTION) -> Path:
        lay = layout(check_sources(sources))
        if lay.cxx:
            refuse_musl_cxx(self.libc)
        image = self.image_for(target)
        native = target.architecture == self.image_arch()
        cc = ("g++" if lay.cxx else "gcc") if native else (target.gxx if lay.cxx else target.gcc)
        if self.libc == "musl":
            cc = f"{target.musl}-gcc"
        name = out.name or "a.out"
        binary = f"{builder.OUT_DIR}/{name}"
        compiler = [cc, *gcc_args(target, cflags), *lay.files, *ldflags, "-o", binary]
        # the link's record is made in the same container run: the build image's dpkg knows its packages
        cmd = links.command(links.GNU, gcc_driver(cc, target, native, self.libc), binary, _CONTAINER_RECORD,
                            compiler)
        with engine.container(self._client, "build", image, network_disabled=True, working_dir=builder.SRC_DIR,
                              **engine.watched(cmd), **self.limits.create_args()) as container, \
                tempfile.TemporaryDirectory(prefix="fromscratch-output-", dir=scratch_dir()) as logs:
            with engine.step("copying the sources into the build container"):
                container.put_archive(builder.SRC_DIR, _source_tar(lay, lay.headers(cflags)))
            output = Path(logs) / "output"
            run_container(self._client, container, f"compiling for {target.platform}",
                          f"{cc} failed for {target.platform} in the build container", output, self.limits)
            if output.stat().st_size:  # the compiler's warnings
                log.warning("%s", excerpt(output).strip())
            with contextlib.ExitStack() as naming:
                with atomic_output(out, mode=0o755) as tmp, _record_file() as record:
                    with engine.step("copying the binary out"):  # with its record: one copy, one archive
                        stream, _ = container.get_archive(builder.OUT_DIR)
                        places = {name: tmp, _RECORD_NAME: record}
                        written = extract_files(stream, lambda member: places.get(os.path.basename(member)))
                    got = {os.path.basename(member) for member in written}
                    if name not in got:
                        raise BuildFailed("the build container produced no binary")
                    if _RECORD_NAME not in got:
                        raise BuildFailed("the build container made no record of the link (for the SBOM)")
                    _finish(naming, tmp, out, target, cc, record, lay, supplier)
        return out


_RECORD_NAME = ".fromscratch-link"
_CONTAINER_RECORD = f"{builder.OUT_DIR}/{_RECORD_NAME}"


LIBCS = ("glibc", "musl")


def gcc_driver(cc: str, target: targets.Target, native: bool, libc: str) -> str:
    """The gcc behind cc, whose version and package an SBOM names: Debian's <musl>-gcc runs the target's gcc."""
    if libc != "musl":
        return cc
    return "gcc" if native else target.gcc


def refuse_musl_cxx(libc: str) -> None:
    if libc == "musl":
        raise InputError("C++ with --libc musl and gcc: Debian has no libstdc++ built for musl",
                         hint="use --toolchain zig, whose c++ links libc++ and musl")


def apt_hint(packages: str, host: targets.Target) -> str:
    """The apt-get line that installs packages on this host, with dpkg multiarch for PKG:ARCH names."""
    foreign = sorted({p.split(":")[1] for p in packages.split() if ":" in p} - {host.debian_arch})
    first = "".join(f"dpkg --add-architecture {a} && " for a in foreign)
    return f"{first}apt-get update && apt-get install {packages}" if first else f"install {packages}"


def run_container(client: Any, container: Any, what: str, failed: str, output: Path, limits: engine.Limits,
                  failure: Callable[[int, Path], ToolkitError] | None = None) -> None:
    """Run a container made with engine.watched(), its output streamed to the file output, within limits; a
    non-zero exit raises with an excerpt of that output (failure, when given, makes the error from the exit code
    and the output file)."""
    try:
        code = engine.run_watched(client, container, f"{what} in the build container", str(output), limits.timeout)
    except engine.TimedOut:
        raise BuildFailed(f"{failed}: stopped after its time limit of {limits.timeout:g} s",
                          hint="give it longer with --timeout SECONDS (0: no limit)") from None
    if code >= 128:
        raise BuildFailed(f"the build container was killed while {what} (exit {code}, signal {code - 128})",
                          hint=f"was it stopped (docker kill, docker stop) or out of memory (its limit is "
                               f"{limits.memory >> 20} MiB; FROMSCRATCH_BUILD_MEMORY raises it)?",
                          log=excerpt(output))
    if code != 0:
        raise failure(code, output) if failure else BuildFailed(f"{failed} (exit {code})", log=excerpt(output),
                                                                lacking=provides.lacking(output))
    if log.isEnabledFor(logging.INFO):
        log.info("%s", excerpt(output))


def _source_tar(lay: Layout, headers: Sequence[str]) -> bytes:
    """Sources and headers at their paths under the base, owned by root: what the build container sees in /src."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for rel in sorted({*lay.files, *headers}):
            with open(lay.base / rel, "rb") as fh:
                info = tar.gettarinfo(arcname=rel, fileobj=fh)  # from the open file: a symlink's target
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                tar.addfile(info, fh)
    return buf.getvalue()


def extract_files(chunks: Any, place: Callable[[str], Path | None]) -> list[str]:
    """Write the regular files of a tar stream (get_archive's answer) where place(member name) says (None: not
    wanted), streaming; returns the names of the members written."""
    written = []
    reader = engine.ChunkReader(chunks)
    with tarfile.open(fileobj=reader, mode="r|") as tar:
        for member in tar:
            dest = place(member.name) if member.isfile() else None
            if dest is not None:
                src = tar.extractfile(member)
                assert src is not None
                with open(dest, "wb") as fh:
                    shutil.copyfileobj(src, fh, 1 << 20)
                written.append(member.name)
    return written


TOOLCHAINS = ("auto", "native", "container", "zig")


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


def select(name: str, wanted: Sequence[targets.Target], connect: Any = engine.connect,
           base: str | None = None, libc: str | None = None,
           limits: engine.Limits = engine.DEFAULT_LIMITS) -> Toolchain:
    """auto: native on a Linux host whose gcc links statically for every wanted target, else container."""
    libc = resolve_libc(name, libc)
    if name == "native":
        return NativeGcc(libc=libc, limits=limits)
    if name == "container":
        return ContainerGcc(connect(), base, libc, limits)
    if name == "zig":
        return ZigCc(limits=limits)
    if name == "auto":
        native = NativeGcc(libc=libc, limits=limits)
        return native if all(native.available(t) for t in wanted) else ContainerGcc(connect(), base, libc, limits)
    raise InputError(f"unknown toolchain {name!r}", hint=f"choose {', '.join(TOOLCHAINS)}")
