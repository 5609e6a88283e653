"""Compilers behind one interface: compile(sources, target, out, cflags) -> path of a static binary."""

from __future__ import annotations

import io
import logging
import os
import platform
import shutil
import subprocess
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from . import builder, engine, targets
from .errors import BuildFailed, InputError
from .files import atomic_output

log = logging.getLogger(__name__)

STATIC_FLAGS = ("-static",)
STRIP_FLAGS = ("-s",)


class Toolchain(Protocol):
    name: str

    def compile(self, sources: Sequence[Path], target: targets.Target, out: Path,
                cflags: Sequence[str] = ()) -> Path: ...


def check_sources(sources: Sequence[Path]) -> list[Path]:
    if not sources:
        raise InputError("no source file given", hint="pass --src FILE.c")
    for src in sources:
        if not src.is_file():
            raise InputError(f"{src}: no such source file")
    names = [s.name for s in sources]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise InputError(f"two sources share the name {sorted(dup)[0]}", hint="rename one of them")
    return list(sources)


def gcc_args(target: targets.Target, cflags: Sequence[str]) -> list[str]:
    return [*STATIC_FLAGS, *target.cflags, *cflags]


class NativeGcc:
    """The host's gcc, or its cross gcc for a foreign target (Linux hosts)."""

    name = "native"

    def __init__(self, run: Any = subprocess.run) -> None:
        self._run = run

    def compiler(self, target: targets.Target) -> str:
        if target.architecture == targets.host().architecture and shutil.which("gcc"):
            return "gcc"
        if shutil.which(target.gcc):
            return target.gcc
        raise BuildFailed(f"no gcc for {target.platform} on this host (looked for {target.gcc})",
                          hint=f"install {' '.join(target.packages)} (Debian/Ubuntu), "
                               "or use --toolchain container")

    def missing_static_libc(self, target: targets.Target) -> str | None:
        """None when `gcc -static` can link; else the package that gives libc.a."""
        cc = self.compiler(target)
        proc = self._run([cc, "-print-file-name=libc.a"], capture_output=True, text=True)
        found = proc.stdout.strip()
        if proc.returncode == 0 and os.path.isabs(found) and os.path.exists(found):
            return None
        if cc == "gcc":
            return "libc6-dev (Debian/Ubuntu) or glibc-static (Fedora)"
        return target.packages[1]

    def available(self, target: targets.Target) -> bool:
        if platform.system() != "Linux":
            return False
        try:
            return self.missing_static_libc(target) is None
        except BuildFailed:
            return False

    def compile(self, sources: Sequence[Path], target: targets.Target, out: Path,
                cflags: Sequence[str] = ()) -> Path:
        sources = check_sources(sources)
        cc = self.compiler(target)
        missing = self.missing_static_libc(target)
        if missing:
            raise BuildFailed(f"{cc} cannot link statically: static libc (libc.a) is missing",
                              hint=f"install {missing}, or use --toolchain container")
        with atomic_output(out, mode=0o755) as tmp:
            cmd = [cc, *gcc_args(target, cflags), *map(str, sources), "-o", str(tmp)]
            log.info("%s", " ".join(cmd))
            proc = self._run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise BuildFailed(f"{cc} failed (exit {proc.returncode})",
                                  log=(proc.stderr + proc.stdout).strip())
            if proc.stderr.strip():
                log.warning("%s", proc.stderr.strip())
        return out


class ContainerGcc:
    """gcc inside a build container: sources go in and the binary comes out through the archive API."""

    name = "container"

    def __init__(self, client: Any, base: str = builder.DEFAULT_BASE) -> None:
        self._client = client
        self._base = base

    def _image_arch(self) -> str:
        info = self._client.version()
        return targets.lookup(info.get("Arch", "amd64")).architecture

    def compile(self, sources: Sequence[Path], target: targets.Target, out: Path,
                cflags: Sequence[str] = ()) -> Path:
        sources = check_sources(sources)
        host_arch = self._image_arch()
        image = builder.ensure(self._client, builder.for_targets(self._base, [target], host_arch))
        cc = "gcc" if target.architecture == host_arch else target.gcc
        name = out.name or "a.out"
        cmd = [cc, *gcc_args(target, cflags), *(s.name for s in sources), "-o", f"{builder.OUT_DIR}/{name}"]
        container = None
        try:
            with engine.step("creating the build container"):
                container = self._client.containers.create(
                    image, command=cmd, network_disabled=True, working_dir=builder.SRC_DIR,
                    labels={"org.fromscratch.role": "build"})
                container.put_archive(builder.SRC_DIR, _source_tar(sources))
            with engine.step("compiling in the build container"):
                container.start()
                status = container.wait()
                output = container.logs(stdout=True, stderr=True).decode("utf-8", "replace").strip()
            if status.get("StatusCode", 1) != 0:
                raise BuildFailed(f"{cc} failed in the build container (exit {status.get('StatusCode')})",
                                  log=output)
            if output:
                log.warning("%s", output)
            with atomic_output(out, mode=0o755) as tmp, engine.step("copying the binary out"):
                stream, _ = container.get_archive(f"{builder.OUT_DIR}/{name}")
                _extract_one(stream, tmp)
        finally:
            if container is not None:
                with engine.step("removing the build container"):
                    container.remove(force=True)
        return out


def _source_tar(sources: Sequence[Path]) -> bytes:
    """Sources plus the headers beside them, flat, owned by root: what the build container sees in /src."""
    files = {s.name: s for s in sources}
    for src in sources:
        for header in sorted(src.parent.glob("*.h")):
            files.setdefault(header.name, header)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for arcname, path in sorted(files.items()):
            info = tar.gettarinfo(str(path), arcname)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with open(path, "rb") as fh:
                tar.addfile(info, fh)
    return buf.getvalue()


def _extract_one(chunks: Any, dest: Path) -> None:
    """Write the single regular file of a tar stream (get_archive's answer) to dest, streaming."""
    reader = _ChunkReader(iter(chunks))
    with tarfile.open(fileobj=reader, mode="r|") as tar:
        for member in tar:
            if member.isfile():
                src = tar.extractfile(member)
                assert src is not None
                with open(dest, "wb") as fh:
                    shutil.copyfileobj(src, fh, 1 << 20)
                return
    raise BuildFailed("the build container produced no binary")


class _ChunkReader(io.RawIOBase):
    """A file-like view of an iterator of byte chunks, for tarfile's streaming mode."""

    def __init__(self, chunks: Any) -> None:
        self._chunks = chunks
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buf:
            try:
                self._buf = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def select(name: str, target: targets.Target, connect: Any = engine.connect,
           base: str = builder.DEFAULT_BASE) -> Toolchain:
    """auto: native on a Linux host that has gcc and static libc for the target, else container."""
    if name == "native":
        return NativeGcc()
    if name == "container":
        return ContainerGcc(connect(), base)
    if name == "auto":
        native = NativeGcc()
        return native if native.available(target) else ContainerGcc(connect(), base)
    raise InputError(f"unknown toolchain {name!r}", hint="choose auto, native or container")

