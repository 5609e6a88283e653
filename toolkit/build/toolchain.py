"""Compilers behind one interface: compile(sources, target, out, cflags) -> path of a static binary that passes verify.

Three of them: the host's gcc (native), gcc in a build container, and zig cc; build_all runs any of them for
several targets at once.
"""

from __future__ import annotations

import importlib.util
import io
import logging
import os
import platform
import shutil
import sys
import tarfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .. import interrupts, targets
from ..check import elf, verify
from ..engine import client as engine
from ..errors import BuildFailed, InputError, ToolkitError
from ..files import atomic_output, regular_input
from . import buildimage as builder

log = logging.getLogger(__name__)

STATIC_FLAGS = ("-static",)


class Toolchain(Protocol):
    name: str

    def prepare(self, wanted: Sequence[targets.Target]) -> None:
        """Check or set up what building these targets needs, once, before any compile; raise naming what is missing."""

    def compile(self, sources: Sequence[Path], target: targets.Target, out: Path,
                cflags: Sequence[str] = ()) -> Path: ...


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
    names = [s.name for s in sources]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise InputError(f"two sources share the name {sorted(dup)[0]}", hint="rename one of them")
    return list(sources)


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
              on_done: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Build every wanted target, jobs at a time; one target's failure does not stop the others.

    on_done hears of each target as it finishes (from a worker thread); the list comes back in wanted's order.
    """
    sources = check_sources(sources)
    if jobs < 1:
        raise InputError(f"--jobs {jobs}: give 1 or more")
    chain.prepare(wanted)  # once, before any thread: a build image is built by one caller only

    def one(target: targets.Target) -> Outcome:
        try:
            chain.compile(sources, target, outs[target.name], cflags)
            done = Outcome(target, outs[target.name])
        except ToolkitError as exc:
            done = Outcome(target, outs[target.name], exc)
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


def _check_output(path: Path, target: targets.Target, who: str) -> None:
    """The compiler's output must pass verify for its target before it takes the user's file name."""
    verdict = verify.verify(elf.read(str(path)), target.name)
    if not verdict.ok:
        raise BuildFailed(f"{who} built a binary for {target.platform} that fails verify: "
                          + "; ".join(verdict.failures))


def _run_compiler(run: Any, cmd_for: Callable[[Path], list[str]], out: Path, target: targets.Target,
                  who: str) -> Path:
    """Run a compiler command that writes to a temporary path; the result is checked, then renamed to out."""
    with atomic_output(out, mode=0o755) as tmp:
        cmd = cmd_for(tmp)
        log.info("%s", " ".join(cmd))
        proc = run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise BuildFailed(f"{who} failed for {target.platform} (exit {proc.returncode})",
                              log=(proc.stderr + proc.stdout).strip())
        if proc.stderr.strip():
            log.warning("%s", proc.stderr.strip())
        _check_output(tmp, target, who)
    return out


class NativeGcc:
    """The host's gcc, or its cross gcc for a foreign target (Linux hosts)."""

    name = "native"

    def __init__(self, run: Any = interrupts.run_child) -> None:
        self._run = run

    def _find(self, target: targets.Target) -> str | None:
        if target.architecture == targets.host().architecture and shutil.which("gcc"):
            return "gcc"
        return target.gcc if shutil.which(target.gcc) else None

    def compiler(self, target: targets.Target) -> str:
        cc = self._find(target)
        if cc is None:
            raise BuildFailed(f"no gcc for {target.platform} on this host (looked for {target.gcc})",
                              hint=f"install {' '.join(target.packages)} (Debian/Ubuntu), "
                                   "or use --toolchain container or --toolchain zig")
        return cc

    def missing(self, target: targets.Target) -> str | None:
        """None when a gcc that links statically for target is here; else the package(s) that give one."""
        cc = self._find(target)
        if cc is None:
            return "gcc libc6-dev" if target.architecture == targets.host().architecture else " ".join(target.packages)
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
            raise BuildFailed(f"no gcc that links statically for {', '.join(missing)} on this host",
                              hint=f"install {packages}, or use --toolchain container or --toolchain zig")

    def compile(self, sources: Sequence[Path], target: targets.Target, out: Path,
                cflags: Sequence[str] = ()) -> Path:
        sources = check_sources(sources)
        self.prepare([target])
        cc = self.compiler(target)
        return _run_compiler(self._run, lambda tmp: [cc, *gcc_args(target, cflags), *map(str, sources),
                                                     "-o", str(tmp)], out, target, cc)


class ZigCc:
    """`zig cc` from the ziglang package on PyPI: every target, static musl, no Docker and no cross packages."""

    name = "zig"

    def __init__(self, run: Any = interrupts.run_child, python: str = sys.executable) -> None:
        self._run = run
        self._python = python

    def prepare(self, wanted: Sequence[targets.Target]) -> None:
        if importlib.util.find_spec("ziglang") is None:
            raise BuildFailed("the zig toolchain needs the ziglang package, which is not installed",
                              hint="pip install 'fromscratch[zig]' (or pip install ziglang)")

    def command(self, target: targets.Target, sources: Sequence[Path], out: Path,
                cflags: Sequence[str] = ()) -> list[str]:
        cpu = [f"-mcpu={target.zig_cpu}"] if target.zig_cpu else []
        return [self._python, "-m", "ziglang", "cc", "-target", target.zig, *cpu, *STATIC_FLAGS, *cflags,
                *map(str, sources), "-o", str(out)]

    def compile(self, sources: Sequence[Path], target: targets.Target, out: Path,
                cflags: Sequence[str] = ()) -> Path:
        sources = check_sources(sources)
        self.prepare([target])
        return _run_compiler(self._run, lambda tmp: self.command(target, sources, tmp, cflags), out, target,
                             "zig cc")


class ContainerGcc:
    """gcc inside a build container: sources go in and the binary comes out through the archive API."""

    name = "container"

    def __init__(self, client: Any, base: str = builder.DEFAULT_BASE) -> None:
        self._client = client
        self._base = base
        self._image: builder.BuildImage | None = None
        self._host_arch: str | None = None

    def _image_arch(self) -> str:
        if self._host_arch is None:
            with engine.step("asking the engine for its architecture"):
                info = self._client.version()
            self._host_arch = targets.lookup(info.get("Arch", "amd64")).architecture
        return self._host_arch

    def prepare(self, wanted: Sequence[targets.Target]) -> None:
        """Build (or find) the one build image that serves every wanted target."""
        image = builder.for_targets(self._base, list(wanted), self._image_arch())
        builder.ensure(self._client, image)
        self._image = image

    def compile(self, sources: Sequence[Path], target: targets.Target, out: Path,
                cflags: Sequence[str] = ()) -> Path:
        sources = check_sources(sources)
        host_arch = self._image_arch()
        if self._image is None or not self._image.serves(target, host_arch):
            self.prepare([target])
        assert self._image is not None
        cc = "gcc" if target.architecture == host_arch else target.gcc
        name = out.name or "a.out"
        cmd = [cc, *gcc_args(target, cflags), *(s.name for s in sources), "-o", f"{builder.OUT_DIR}/{name}"]
        with engine.container(self._client, "build", self._image.tag, command=cmd, network_disabled=True,
                              working_dir=builder.SRC_DIR) as container:
            with engine.step("copying the sources into the build container"):
                container.put_archive(builder.SRC_DIR, _source_tar(sources))
            with engine.step(f"compiling for {target.platform} in the build container"):
                container.start()
                status = container.wait()
                output = container.logs(stdout=True, stderr=True).decode("utf-8", "replace").strip()
            code = status.get("StatusCode", 1)
            if code >= 128:
                raise BuildFailed(f"the build container was killed while compiling for {target.platform} "
                                  f"(exit {code}, signal {code - 128})",
                                  hint="was it stopped (docker kill, docker stop) or out of memory?", log=output)
            if code != 0:
                raise BuildFailed(f"{cc} failed for {target.platform} in the build container (exit {code})",
                                  log=output)
            if output:
                log.warning("%s", output)
            with atomic_output(out, mode=0o755) as tmp:
                with engine.step("copying the binary out"):
                    stream, _ = container.get_archive(f"{builder.OUT_DIR}/{name}")
                    _extract_one(stream, tmp)
                _check_output(tmp, target, cc)
        return out


def _source_tar(sources: Sequence[Path]) -> bytes:
    """Sources plus the headers beside them, flat, owned by root: what the build container sees in /src."""
    files = {s.name: s for s in sources}
    for src in sources:
        for header in sorted(src.parent.glob("*.h")):
            if header.is_file():  # a FIFO named x.h would block the read
                files.setdefault(header.name, header)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for arcname, path in sorted(files.items()):
            with open(path, "rb") as fh:
                info = tar.gettarinfo(arcname=arcname, fileobj=fh)  # from the open file: a symlink's target
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                tar.addfile(info, fh)
    return buf.getvalue()


def _extract_one(chunks: Any, dest: Path) -> None:
    """Write the single regular file of a tar stream (get_archive's answer) to dest, streaming."""
    reader = engine.ChunkReader(chunks)
    with tarfile.open(fileobj=reader, mode="r|") as tar:
        for member in tar:
            if member.isfile():
                src = tar.extractfile(member)
                assert src is not None
                with open(dest, "wb") as fh:
                    shutil.copyfileobj(src, fh, 1 << 20)
                return
    raise BuildFailed("the build container produced no binary")


TOOLCHAINS = ("auto", "native", "container", "zig")


def select(name: str, wanted: Sequence[targets.Target], connect: Any = engine.connect,
           base: str = builder.DEFAULT_BASE) -> Toolchain:
    """auto: native on a Linux host whose gcc links statically for every wanted target, else container."""
    if name == "native":
        return NativeGcc()
    if name == "container":
        return ContainerGcc(connect(), base)
    if name == "zig":
        return ZigCc()
    if name == "auto":
        native = NativeGcc()
        return native if all(native.available(t) for t in wanted) else ContainerGcc(connect(), base)
    raise InputError(f"unknown toolchain {name!r}", hint=f"choose {', '.join(TOOLCHAINS)}")
