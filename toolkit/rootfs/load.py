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
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from .. import interrupts
from ..errors import InputError
from ..files import atomic_output
from ..image import oci
from ..progress import Progress
from .tar import Plan

if TYPE_CHECKING:
    from ..engine.client import Client

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


def layer_image(digest: str, size: int, config: oci.ImageConfig, epoch: int, created_by: str) -> oci.Image:
    """The image a layer of that digest becomes under config (its id is what the engine will report)."""
    desc = oci.Descriptor(oci.MEDIA_LAYER, digest, size)
    return oci.make_image([(desc, Path("layer.tar"))], config, epoch, created_by=created_by)


def planned_image(plan: Plan, config: oci.ImageConfig, epoch: int, created_by: str) -> oci.Image:
    """layer_image for a plan, hashing its bytes without writing them anywhere."""
    sha, size = hashlib.sha256(), 0
    for chunk in plan.chunks():
        sha.update(chunk)
        size += len(chunk)
    return layer_image("sha256:" + sha.hexdigest(), size, config, epoch, created_by)


def config_archive(image: oci.Image, tag: str) -> bytes:
    """A `docker load` archive of the config alone: the engine already holds its layer (by diff_id), so the
    loader takes it from its store and never reads the layer.tar the manifest names. That entry is there, empty,
    because Podman's loader looks for every named file before it finds it holds the layer already."""
    manifest = json.dumps([{"Config": "config.json", "RepoTags": [tag], "Layers": ["layer.tar"]}]).encode()
    body = _entry("config.json", image.config) + _entry("manifest.json", manifest) + _entry("layer.tar", b"")
    end = len(body) + 2 * tarfile.BLOCKSIZE
    return body + bytes(2 * tarfile.BLOCKSIZE + (-end % tarfile.RECORDSIZE))


def _import_layer(client: Client, tee: _Tee, scratch_tag: str) -> None:
    """Stream the layer into the engine as a bare import (one extraction, as `tar | docker import -` does), as
    the throw-away image scratch_tag, whose layer the real image then shares.

    The tag and labels are chosen before the engine is asked, so whatever an interrupt leaves is found by name;
    once the last byte is sent, signals wait until the engine has answered, so its image is never made unseen.
    """
    from ..engine import client as engine

    changes = [f"LABEL {key}={value}" for key, value in engine.labels("rootfs-import").items()]
    answered = contextlib.ExitStack()

    def body() -> Iterator[bytes]:
        yield from tee
        answered.enter_context(interrupts.deferred())

    try:
        with answered, engine.step("streaming the layer into the engine"):
            engine.import_layer(client, body(), scratch_tag, changes)
    except BaseException:
        with interrupts.deferred():
            _remove_scratch(client, scratch_tag)
        if tee.error is not None:
            raise tee.error from None
        raise


def _remove_scratch(client: Client, scratch_tag: str) -> None:
    """Remove the import's throw-away image if it exists; a failure is only a warning naming it."""
    from ..engine import client as engine

    try:
        with engine.step(f"removing the throw-away image {scratch_tag}"):
            engine.remove_image(client, scratch_tag)
    except Exception as exc:  # another error is already on its way to the user
        log.warning("could not remove %s: %s", scratch_tag, exc)


def deliver(plan: Plan, config: oci.ImageConfig, epoch: int, *, client: Client | None = None, tag: str | None = None,
            out: Path | None = None, progress: Progress | None = None,
            created_by: str = "fromscratch rootfs") -> Delivered:
    """Write plan's layer once: to out (compressed by its name) and/or into the engine as tag.

    The engine path is an import of the bare layer, then a load of our own config over it: older engines'
    import ignores --platform and stamps the time, so the config (architecture, epoch, CMD) must be ours."""
    from ..engine import client as engine

    progress = progress or Progress.quiet()
    if tag is None and out is None:
        raise InputError("nothing to do: give --tag (load into the engine), --out FILE, or both")
    kind = out_compression(out) if out is not None else None
    with contextlib.ExitStack() as stack:
        out_fh: BinaryIO | None = None
        if out is not None:
            tmp = stack.enter_context(atomic_output(out))
            raw = stack.enter_context(open(tmp, "wb"))
            out_fh = stack.enter_context(_compressor(raw, kind))
        what = " and ".join(([f"loading {tag}"] if tag else []) + ([f"writing {out.name}"] if out else []))
        progress.step(f"{what}: {plan.entries:,} entries, {plan.size / 1e6:,.1f} MB layer")
        tee = _Tee(plan, out_fh, progress, what)
        image_id = engine_size = None
        if tag is not None:
            assert client is not None, "a tag names an image in an engine: the caller passes its client"
            scratch_tag = f"fromscratch-rootfs-import:{uuid.uuid4().hex[:12]}"
            _import_layer(client, tee, scratch_tag)
            try:
                image = layer_image(tee.digest, tee.size, config, epoch, created_by)
                with engine.step(f"loading {tag} into the engine"):
                    client.images.load(config_archive(image, tag))
                with engine.step(f"inspecting {tag}"):
                    attrs = client.images.get(tag).attrs
            finally:
                with interrupts.deferred():  # the real image holds the layer now, or nothing does
                    _remove_scratch(client, scratch_tag)
            image_id, engine_size = attrs["Id"], attrs.get("Size")
        else:
            for _ in tee:
                pass
        progress.note(f"layer {tee.digest} ({tee.size:,} bytes)")
    return Delivered(tee.digest, tee.size, plan.entries, tag, image_id, engine_size, out)
