"""The container toolchain: gcc in a build container for the target (compile/buildimage.py makes its image);
the plan's files go in and the programs come out through the engine's one container class, so remote engines
work, no file on the host is owned by root, and networking is off while the build runs."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import stat
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import IO

from .. import files, targets
from ..engine import client as engine
from ..engine import volume
from ..engine.container import Container, unpack
from ..engine.limits import DEFAULT_LIMITS, Limits
from ..errors import BuildFailed
from ..files import excerpt, scratch_dir, temp_dir
from . import buildimage as builder
from . import cross, emulated, kept, plan
from .toolchain import argv, entries, failure, refuse_musl_cxx, tools_files, what

log = logging.getLogger(__name__)

WORK = "/work"


class ContainerToolchain:
    name = "container"

    def __init__(self, client: engine.Client, base: str | None = None, libc: str = "glibc",
                 limits: Limits = DEFAULT_LIMITS, clean: bool = False,
                 bases: emulated.BaseImages | None = None) -> None:
        self._client = client
        self._bases = bases  # Debian's base images: made when missing; without them no emulated fallback
        self.clean = clean  # a project's kept build state is not used: built from nothing (and kept anew)
        self._base = base  # None: builder.default_base(), looked up when first needed
        self._chosen_by = "--builder-base or the config key builder.base" + (", or --suite" if bases else "")
        self._announced = False
        self.libc = libc
        self.limits = limits
        self._host_arch: str | None = None
        self._base_id: str | None = None
        self._failed: dict[tuple, BuildFailed] = {}  # images that could not be built, by what they were for
        self._ready: dict[tuple, str] = {}  # and those that are there
        # the targets built inside an emulated container of their own architecture (their cross build-dep failed)
        self._emulated: set[str] = set()
        self.timings = emulated.Timings()

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
            self._base_id = self._base_image_id(self.base())
        return self._base_id

    def _base_image_id(self, base: str) -> str:
        """base's image ID; one of the Debian bases (fromscratch/debian:trixie) is made first when the engine
        lacks it."""
        found = builder.base_image_id(self._client, base)
        if not found and self._bases is not None and self._bases.ensure(self._client, base):
            found = builder.base_image_id(self._client, base)
        return found

    def _announce(self) -> None:
        """Say which base a build image is built on, and what chose it, once: before the first one is built."""
        if not self._announced:
            self._announced = True
            log.warning("build image base: %s (%s)", self.base(), self._chosen_by)

    def image_for(self, job: plan.Plan, target: targets.Target) -> str:
        """The build image for target (built or found): the compilers, for a project the build systems, its
        cross compilers, musl, then the plan's tools and packages."""
        project = job.system != plan.RULE  # a rule needs no build system (~200 MB less)
        key = (target.name, job.tools, job.packages, project, job.build_dep)
        if key in self._failed:  # one target's failure, said once, when that target is built
            raise self._failed[key]
        if key in self._ready:  # prepare() found or built it
            return self._ready[key]
        layers = builder.chain(self.base(), target, self.image_arch(), job.tools, job.packages, self.libc, project,
                               base_id=self.base_id(), build_dep=job.build_dep)
        try:
            stands_in = self._emulated_before(job, target, project, layers[-1].tag)
            self._ready[key] = stands_in or builder.ensure_chain(self._client, layers, self._announce)
            return self._ready[key]
        except builder.LayerFailed as exc:
            reason = emulated.falls_back(exc.layer, exc) if self._bases is not None and job.suite else None
            if reason is None:
                self._failed[key] = self._explained(exc, target)
                raise self._failed[key] from None
            try:
                self._ready[key] = self._emulated_image(job, target, project, reason)
                return self._ready[key]
            except BuildFailed as fallback:  # its base or image: no build of the target can run
                self._failed[key] = (fallback if isinstance(fallback, builder.ImageFailed) else
                                     builder.ImageFailed(fallback.message, fallback.hint, fallback.log))
                raise self._failed[key] from None
        except BuildFailed as exc:
            self._failed[key] = self._explained(exc, target)
            raise self._failed[key] from None

    def _emulated_chain(self, job: plan.Plan, target: targets.Target, project: bool,
                        base_id: str) -> list[builder.BuildImage]:
        """The layers of the build image of target's own architecture, over its Debian base: the native
        compilers, build systems, the package's Build-Depends (apt-get build-dep without -a) and the rest."""
        assert self._bases is not None
        return builder.chain(self._bases.tag(job.suite, target), target, target.architecture, job.tools,
                             job.packages, self.libc, project, base_id=base_id, build_dep=job.build_dep)

    def _emulated_before(self, job: plan.Plan, target: targets.Target, project: bool, cross_top: str) -> str | None:
        """An emulated build image made by an earlier build, when the cross one is not there (its build-dep
        failed then): used again, and why said again, instead of trying the cross build-dep once more."""
        if (self._bases is None or not job.build_dep or not job.suite
                or target.runs_natively_on(targets.lookup(self.image_arch()))):
            return None
        base_id = builder.base_image_id(self._client, self._bases.tag(job.suite, target))
        if not base_id or engine.image_exists(self._client, cross_top):
            return None
        top = self._emulated_chain(job, target, project, base_id)[-1].tag
        labels = engine.image_labels(self._client, top)
        if labels is None:
            return None
        log.warning("%s", emulated.falling_back(target, labels.get(emulated.REASON_LABEL, "earlier")))
        self._emulated.add(target.name)
        return top

    def _emulated_image(self, job: plan.Plan, target: targets.Target, project: bool, reason: str) -> str:
        """Fall back: check that the suite has the target's architecture, say so, make its base and build image."""
        assert self._bases is not None
        lacking = emulated.arch_lacking(job.suite, self._bases.architectures(job.suite), target)
        if lacking is not None:
            raise lacking
        log.warning("%s", emulated.falling_back(target, reason))
        base_id = self._base_image_id(self._bases.tag(job.suite, target))
        layers = [replace(layer, labels=((emulated.REASON_LABEL, reason),)) if layer.build_dep else layer
                  for layer in self._emulated_chain(job, target, project, base_id)]
        top = builder.ensure_chain(self._client, layers, self._announce)
        self._emulated.add(target.name)
        return top

    def _explained(self, exc: BuildFailed, target: targets.Target) -> BuildFailed:
        if builder.MISSING_MARK in exc.log:
            missing = exc.log.rsplit(builder.MISSING_MARK, 1)[1].split()[0]  # the echo's, not the step's
            return BuildFailed(f"no musl for {target.platform}: the package archive of {self.base()} has no "
                               f"{missing}", hint="use --toolchain zig, which brings musl for every target")
        return exc

    def missing(self, job: plan.Plan, wanted: Sequence[targets.Target]) -> str | None:
        return None  # the build image brings what a build needs; one that cannot be built fails its target

    def prepare(self, job: plan.Plan, wanted: Sequence[targets.Target]) -> None:
        """Build (or find) each wanted target's image, before any target runs: one caller builds an image. A
        target whose image cannot be built fails alone, when it is run."""
        if job.system == plan.RULE and job.cxx:
            refuse_musl_cxx(self.libc)
        for target in wanted:
            with contextlib.suppress(BuildFailed):
                self.image_for(job, target)

    @contextlib.contextmanager
    def run(self, job: plan.Plan, target: targets.Target, skip: Callable[[str], bool]) -> Iterator[Path]:
        image = self.image_for(job, target)
        inside = target.name in self._emulated  # the image is the target's own: its gcc is native there
        tools = cross.gcc(target, target if inside else targets.lookup(self.image_arch()), self.libc)
        if job.system != plan.RULE:  # a project's build tree is kept between its builds
            with self._kept_run(job, target, image, tools, skip) as made:
                yield made
            return
        shared, shared_env = self._shared_cache(target)
        with tempfile.TemporaryFile(dir=scratch_dir()) as tar_file, temp_dir("fromscratch-programs-") as made, \
                Container.open(self._client, image, ["sh", f"{WORK}/tools/build.sh", *argv(job)], WORK,
                               self.limits, mounts=shared, env=shared_env, receive="/") as container:
            _write_tar(tar_file, job, tools_files(job, tools, WORK), skip)
            self._finish(self._run(container, job, target, made, send=tar_file), container, job, target, made)
            yield made

    def _shared_cache(self, target: targets.Target) -> tuple[dict[str, str], dict[str, str]]:
        """The volume every build for target shares (made if missing), as mounts, and what a build is told of
        it: where the compiler cache is (unless FROMSCRATCH_CCACHE=0) and where links.sh keeps what dpkg said
        owns each input of a link (keyed on the build image's dpkg status and the inputs: a fresh copy of a
        project, in a state of its own, links without asking dpkg again, ~0.2 s for Lua's two programs)."""
        cache, labels = kept.ccache_volume(target.name)
        volume.ensure(self._client, cache, labels, role="ccache")
        env = {"FROMSCRATCH_DPKG_CACHE": f"{kept.CCACHE_MOUNT}/{kept.DPKG_OWNERS}"}
        if kept.ccache_on():
            env["FROMSCRATCH_CCACHE_DIR"] = kept.CCACHE_MOUNT
        return {cache: kept.CCACHE_MOUNT}, env

    @contextlib.contextmanager
    def _kept_run(self, job: plan.Plan, target: targets.Target, image: str, tools: cross.Toolset,
                  skip: Callable[[str], bool]) -> Iterator[Path]:
        """The build in the kept state of (project, target, toolchain, image, flags): a volume mounted as the
        work directory, into which only what changed is sent. One build of a state at a time (the others wait);
        one left mid-build, or --clean, starts from nothing."""
        k = kept.key(job, target, self.name, image, self.libc)
        command = ["sh", f"{WORK}/tools/{kept.RUNNER.name}", WORK, *argv(job)]
        scripts = {**tools_files(job, tools, WORK), kept.RUNNER.name: kept.RUNNER.read_text()}
        with files.exclusive(kept.lock_name(k.name), waiting=f"waiting for another build of {job.name} for "
                             f"{target.platform}, which uses the same kept build state"):
            image_id = engine.image_id(self._client, image) or ""
            last = None if self.clean else kept.last_done(k, image_id)
            change = kept.changes(entries(job, skip), last.manifest) if last is not None else None
            done = kept.unchanged(last, change) if last is not None and change is not None else None
            if done is not None:  # what the last build delivered, again: no container
                log.warning("%s: nothing changed since its last build for %s (--clean builds it anew)", job.root,
                            target.platform)
                kept.used(k.name)
                yield done
                return
            kept.forget_done(k)  # a build that fails, or is stopped, leaves no record to deliver from
            if self.clean and not volume.remove(self._client, k.name):
                raise BuildFailed(f"--clean: the kept build state of {job.name} for {target.platform} ({k.name}) is "
                                  "in use by another build", hint="build again once it has ended")
            shared, shared_env = self._shared_cache(target)
            generation = kept.new_generation()
            for attempt in (0, 1):
                if volume.ensure(self._client, k.name, dict(k.labels)):
                    self._replace_older(k)
                    last = change = None  # a new volume: whatever the record says, the state is empty
                # the manifest of the state's last build is known here (its generation checked inside by
                # kept.sh), or read from the state
                expect = last.generation if last is not None and last.generation and attempt == 0 else ""
                with contextlib.ExitStack() as stack:
                    made = stack.enter_context(temp_dir("fromscratch-programs-"))
                    container = stack.enter_context(Container.open(
                        self._client, image, command, WORK, self.limits,
                        mounts={k.name: WORK, **shared}, env={"FROMSCRATCH_OUT_TAR": "1", **shared_env},
                        receive=WORK))
                    programs = stack.enter_context(tempfile.TemporaryFile(dir=scratch_dir()))
                    if expect and change is not None:
                        old: dict[str, list] | None = last.manifest if last is not None else None
                    else:
                        old, dirty = kept.read_manifest(container.read(f"{WORK}/{kept.STATE_DIR}"))
                        if dirty and attempt == 0:
                            log.warning("the kept build state of %s for %s was left mid-build: building from "
                                        "nothing", job.name, target.platform)
                            stack.close()
                            if not volume.remove(self._client, k.name):
                                raise BuildFailed(f"the kept build state {k.name} is in use by another build")
                            continue
                        change = kept.changes(entries(job, skip), old)
                    log.info("kept state %s: %d entries sent, %d deleted", k.name, len(change.send), len(change.gone))
                    tar_file = stack.enter_context(tempfile.TemporaryFile(dir=scratch_dir()))
                    _write_kept_tar(tar_file, change, scripts, rebuild=old is not None, generation=generation,
                                    expect=expect if old is not None else "")
                    kept.used(k.name)
                    code = self._run(container, job, target, made, programs, send=tar_file)
                    if code == kept.STALE and expect:  # another build changed the state: from nothing
                        log.warning("the kept build state of %s for %s was changed by another build, or left "
                                    "mid-build: building from nothing", job.name, target.platform)
                        stack.close()
                        if not volume.remove(self._client, k.name):
                            raise BuildFailed(f"the kept build state {k.name} is in use by another build")
                        last = change = None
                        continue
                    programs.seek(0)
                    self._finish(code, container, job, target, made, programs)
                    yield made
                    kept.keep_done(k, image_id, change, made, generation)  # a rebuild of the same tree need not run
                    return

    def _run(self, container: Container, job: plan.Plan, target: targets.Target, made: Path,
             programs: IO[bytes] | None = None, send: IO[bytes] | None = None) -> int:
        doing = (f"compiling for {target.platform}" if job.system == plan.RULE
                 else f"building {job.name} for {target.platform}")
        inside = target.name in self._emulated
        started = time.monotonic()
        code = container.run(doing + (" (emulated)" if inside else ""), made / "output.log", programs, send)
        if code == 0:
            self._timed(job, target, inside, time.monotonic() - started)
        return code

    @staticmethod
    def _finish(code: int, container: Container, job: plan.Plan, target: targets.Target, made: Path,
                programs: IO[bytes] | None = None) -> None:
        """The programs of a build that passed: from the archive it wrote to its standard output (programs), or
        copied out of the container; a failure raised with its log."""
        if code != 0:
            raise failure(code, made / "output.log", what(job, target))
        (made / "out" / plan.RECORDS).mkdir(parents=True)
        if programs is None:
            container.copy_out(f"{WORK}/out", lambda name: _inside(made / "out", name), "the programs")
            return
        try:
            unpack(programs, lambda name: _inside(made / "out", name))
        except tarfile.TarError as exc:
            raise BuildFailed(f"the programs of {what(job, target)} came out unreadable ({exc})",
                              log=excerpt(made / "output.log")) from None

    def _timed(self, job: plan.Plan, target: targets.Target, inside: bool, seconds: float) -> None:
        """A --debian build's time kept; an emulated one's said beside the package's cross builds'."""
        if not job.build_dep:
            return
        native = target.architecture == self.image_arch()  # the image's own gcc, as chain() decides (386: cross)
        if inside:
            compared = emulated.Compared(target, seconds, self.timings.cross(job.build_dep))
            log.warning("%s", compared.line(job.build_dep.replace("=", " ")))
        self.timings.record(job.build_dep, target, "emulated" if inside else "native" if native else "cross", seconds)

    def _replace_older(self, k: kept.Key) -> None:
        """A new state of a place replaces its older ones (other flags or build image): never reused again. One
        in use by a build that runs now stays (`invoke clean` removes it later)."""
        for other in volume.kept(self._client, sizes=False):
            if other.labels.get(kept.LABEL + "place") == k.place and other.name != k.name:
                volume.remove(self._client, other.name)


def _inside(out: Path, name: str) -> Path:
    """Where a member of out/'s archive goes: a program in out, a record in out/.records (no other path)."""
    parent, base = os.path.split(name)
    return (out / plan.RECORDS if os.path.basename(parent) == plan.RECORDS else out) / base


_TOP = f"{WORK.strip('/')}/"  # a fresh build's archive is unpacked at /


def _write_tar(fh: IO[bytes], job: plan.Plan, tools: dict[str, str], skip: Callable[[str], bool]) -> None:
    """What the plan copies, under work/src (files.tree's rules: no special files, symlinks kept inside), and the
    tools under work/tools, owned by root, modes and modification times kept."""
    with tarfile.open(fileobj=fh, mode="w", format=tarfile.PAX_FORMAT) as tar:
        if job.files is not None:  # a rule's entries name no top directory
            tar.addfile(_info(f"{_TOP}src", tarfile.DIRTYPE, 0o755))
        _add_entries(tar, entries(job, skip), _TOP)
        _add_tools(tar, tools, _TOP)


def _add_entries(tar: tarfile.TarFile, tree: Iterable[files.TreeEntry], top: str) -> None:
    """Entries of a tree under {top}src, each with its own modification time."""
    kinds = {"dir": tarfile.DIRTYPE, "file": tarfile.REGTYPE, "link": tarfile.SYMTYPE}
    for entry in tree:
        info = _info(f"{top}src/{entry.rel}" if entry.rel else f"{top}src", kinds[entry.kind],
                     stat.S_IMODE(entry.mode))
        info.mtime = entry.mtime_ns // 1_000_000_000
        if entry.kind == "file":
            with open(entry.source, "rb") as src:
                info.size = os.fstat(src.fileno()).st_size
                tar.addfile(info, src)
        else:
            info.linkname = entry.link
            tar.addfile(info)


def _add_tools(tar: tarfile.TarFile, tools: dict[str, str], top: str) -> None:
    for name, text in sorted(tools.items()):
        _add_bytes(tar, f"{top}tools/{name}", text.encode(), 0o755)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = _info(name, tarfile.REGTYPE, mode)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _write_kept_tar(fh: IO[bytes], changes: kept.Changes, tools: dict[str, str], rebuild: bool,
                    generation: str = "", expect: str = "") -> None:
    """A kept state's update: the marks that it is changing first, then what changed, the tools, the paths to
    delete and the new manifest (a copy cut short leaves the mark, and the next build starts from nothing).

    rebuild: the files sent are listed for kept.sh to touch by the container's own clock, so that each is newer
    than what was built from it, whatever time the host's copy says (a file checked out older) and whatever the
    tar header can hold (whole seconds: a file edited in the second of the last build looked older than its .o,
    and make kept the stale object).

    Its names are relative to the work directory, the volume's mount point, where it is unpacked: Podman resolves
    only the destination of a copy into a volume, and unpacked at / the members went under the mount point,
    in the container's own layer, hidden by the volume once it ran (the first build of a state saw them only
    because Podman copies what an empty volume's mount point holds into it).

    generation: the state's new generation, which kept.sh takes once the state is checked; expect: the one the
    state must hold for changes (made against the host's record of the last build) to apply, with no other
    change begun since (its mark left), else kept.sh builds nothing and exits kept.STALE, the dirty mark left."""
    with tarfile.open(fileobj=fh, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_info(kept.STATE_DIR, tarfile.DIRTYPE, 0o755))
        if generation:  # this change's own mark: one cut short (here or on another machine) stays for kept.sh
            _add_bytes(tar, f"{kept.STATE_DIR}/{kept.CHANGING}{generation}", b"")
        if not expect:  # (when expected, kept.sh checks that no build left the mark, then sets it)
            _add_bytes(tar, f"{kept.STATE_DIR}/{kept.DIRTY}", b"")
        _add_bytes(tar, f"{kept.STATE_DIR}/{kept.EXPECT}", expect.encode())
        _add_bytes(tar, f"{kept.STATE_DIR}/{kept.GENERATION}.new", generation.encode())
        _add_entries(tar, changes.send, "")
        _add_tools(tar, tools, "")
        _add_bytes(tar, f"{kept.STATE_DIR}/{kept.GONE}", changes.gone_list())
        _add_bytes(tar, f"{kept.STATE_DIR}/{kept.SENT}", changes.sent_list() if rebuild else b"")
        _add_bytes(tar, f"{kept.STATE_DIR}/{kept.MANIFEST}", changes.manifest_bytes())


def _info(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode = kind, mode
    return info
