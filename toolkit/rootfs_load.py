"""The single pass from a planned layer to its destinations: digest, the --out file (compressed), the engine.

The engine gets the layer as a bare streamed import (one extraction, like `tar | docker import -`), then our own
config over it as a `docker load` of the config alone: older engines' import ignores --platform and stamps the
current time, so the architecture, CMD and date must come from a config we write. Nothing is copied to disk twice.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import logging
import lzma
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from . import oci
from .errors import InputError
from .files import atomic_output
from .progress import Progress
from .rootfs_tar import Plan

log = logging.getLogger(__name__)

OUT_SUFFIXES = {".tar": None, ".tar.gz": "gzip", ".tgz": "gzip", ".tar.xz": "xz", ".txz": "xz"}
_GZIP_LEVEL = 6  # gzip(1)'s default: most of the gain of 9 at a third of the time
_XZ_PRESET = 6  # xz(1)'s default


def out_compression(out: Path) -> str | None:
    """The compression an --out name asks for; anything but .tar, .tar.gz/.tgz, .tar.xz/.txz is refused."""
    name = out.name.lower()
    for suffix in sorted(OUT_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix) and len(name) > len(suffix):
            return OUT_SUFFIXES[suffix]
    raise InputError(f"--out {out}: the name must end in .tar, .tar.gz (.tgz) or .tar.xz (.txz)")


@dataclass(frozen=True)
class Delivered:
    digest: str  # the layer's sha256 (its diff_id)
    size: int
    entries: int
    tag: str | None = None
    image_id: str | None = None
    engine_size: int | None = None
    out: Path | None = None


@contextlib.contextmanager
def _compressor(fh: BinaryIO, kind: str | None) -> Iterator[BinaryIO]:
    """A writer that compresses into fh reproducibly: no file name, no time stamp in the gzip header."""
    if kind == "gzip":
        with gzip.GzipFile(filename="", mode="wb", fileobj=fh, compresslevel=_GZIP_LEVEL, mtime=0) as gz:
            yield gz  # type: ignore[misc]
    elif kind == "xz":
        with lzma.LZMAFile(fh, "wb", format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=_XZ_PRESET) as xz:
            yield xz  # type: ignore[misc]
    else:
        yield fh


class _Tee:
    """The layer's bytes, once: hashed, copied to the out file if any, passed on; errors kept for the caller."""

    def __init__(self, plan: Plan, out: BinaryIO | None, progress: Progress, what: str) -> None:
        self.plan = plan
        self.out = out
        self.progress = progress
        self.what = what
        self.sha = hashlib.sha256()
        self.size = 0
        self.error: Exception | None = None

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self.plan.chunks():
                self.sha.update(chunk)
                if self.out is not None:
                    self.out.write(chunk)
                self.size += len(chunk)
                self.progress.amount(self.what, self.size, self.plan.size)
                yield chunk
        except Exception as exc:  # kept: the HTTP client would hide it behind a broken upload
            self.error = exc
            raise
        if self.size != self.plan.size:
            self.error = InputError(f"{self.plan.source}: the layer came out at {self.size} bytes, not the "
                                    f"{self.plan.size} planned; did the tree change while it was read?")
            raise self.error

    @property
    def digest(self) -> str:
        return "sha256:" + self.sha.hexdigest()


def _entry(name: str, data: bytes) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    return info.tobuf(tarfile.USTAR_FORMAT) + data + bytes(-len(data) % tarfile.BLOCKSIZE)


def config_archive(image: oci.Image, tag: str) -> bytes:
    """A `docker load` archive of the config alone: the engine already holds its layer (by diff_id), so the
    loader takes it from its store and never opens the layer.tar the manifest names."""
    manifest = json.dumps([{"Config": "config.json", "RepoTags": [tag], "Layers": ["layer.tar"]}]).encode()
    body = _entry("config.json", image.config) + _entry("manifest.json", manifest)
    end = len(body) + 2 * tarfile.BLOCKSIZE
    return body + bytes(2 * tarfile.BLOCKSIZE + (-end % tarfile.RECORDSIZE))


def _import_layer(client: Any, tee: _Tee) -> str:
    """Stream the layer into the engine as a bare import (one extraction, as `tar | docker import -` does);
    returns the id of that throw-away image, whose layer the real image then shares."""
    from . import engine
    from .errors import EngineError

    try:
        with engine.step("streaming the layer into the engine"):
            text = client.api.import_image_from_stream(iter(tee))
    except BaseException:
        if tee.error is not None:
            raise tee.error from None
        raise
    if tee.error is not None:
        raise tee.error
    image_id = None
    for line in str(text).splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if msg.get("error"):
            raise EngineError(f"the engine refused the layer: {msg['error']}")
        status = str(msg.get("status", ""))
        if status.startswith("sha256:"):
            image_id = status
    if image_id is None:
        raise EngineError(f"the engine's import answered without an image id: {str(text)[:200]}")
    return image_id


def _file_mode() -> int:
    """What open() would give a new file: 0666 less the umask (atomic_output's temporary file starts at 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def deliver(plan: Plan, config: oci.ImageConfig, epoch: int, *, client: Any = None, tag: str | None = None,
            out: Path | None = None, progress: Progress | None = None,
            created_by: str = "fromscratch rootfs") -> Delivered:
    """Write plan's layer once: to out (compressed by its name) and/or into the engine as tag.

    The engine path is an import of the bare layer, then a load of our own config over it: older engines'
    import ignores --platform and stamps the time, so the config (architecture, epoch, CMD) must be ours."""
    from . import engine

    progress = progress or Progress.quiet()
    if tag is None and out is None:
        raise InputError("nothing to do: give --tag (load into the engine), --out FILE, or both")
    kind = out_compression(out) if out is not None else None
    with contextlib.ExitStack() as stack:
        out_fh: BinaryIO | None = None
        if out is not None:
            tmp = stack.enter_context(atomic_output(out, mode=_file_mode()))
            raw = stack.enter_context(open(tmp, "wb"))
            out_fh = stack.enter_context(_compressor(raw, kind))
        what = " and ".join(([f"loading {tag}"] if tag else []) + ([f"writing {out.name}"] if out else []))
        progress.step(f"{what}: {plan.entries:,} entries, {plan.size / 1e6:,.1f} MB layer")
        tee = _Tee(plan, out_fh, progress, what)
        image_id = engine_size = None
        if tag is not None:
            scratch_image = _import_layer(client, tee)
            try:
                desc = oci.Descriptor(oci.MEDIA_LAYER, tee.digest, tee.size)
                image = oci.make_image([(desc, Path("layer.tar"))], config, epoch, created_by=created_by)
                with engine.step(f"loading {tag} into the engine"):
                    client.images.load(config_archive(image, tag))
                with engine.step(f"inspecting {tag}"):
                    attrs = client.images.get(tag).attrs
            finally:
                with contextlib.suppress(Exception), engine.step("removing the import's throw-away image"):
                    client.images.remove(scratch_image)
            image_id, engine_size = attrs["Id"], attrs.get("Size")
        else:
            for _ in tee:
                pass
        progress.note(f"layer {tee.digest} ({tee.size:,} bytes)")
    return Delivered(tee.digest, tee.size, plan.entries, tag, image_id, engine_size, out)
