"""Image bytes: a deterministic layer tar, the image config, OCI manifest and index, and the archive writers.

Every blob's digest and size are computed together from the very bytes written, never recomputed apart, and
every writer streams: a blob of any size passes through in bounded chunks, never whole in memory.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import os
import stat
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ..errors import InputError, ToolkitError

MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
# What `docker build` puts in every image's Env; the Python backend does the same so both backends agree.
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_COPY_CHUNK = 1 << 20


def source_date_epoch(default: int = 0) -> int:
    """SOURCE_DATE_EPOCH from the environment (the reproducible-builds convention), else default."""
    env = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not env:
        return default
    try:
        value = int(env)
    except ValueError:
        raise InputError(f"SOURCE_DATE_EPOCH={env!r} is not a whole number of seconds") from None
    if value < 0:
        raise InputError(f"SOURCE_DATE_EPOCH={env!r} is before 1970")
    return value


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str  # sha256:<hex>
    size: int
    platform: dict[str, str] | None = None
    annotations: dict[str, str] | None = None

    @property
    def hex(self) -> str:
        return self.digest.split(":", 1)[1]

    def to_json(self) -> dict:
        out: dict = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.platform:
            out["platform"] = self.platform
        if self.annotations:
            out["annotations"] = self.annotations
        return out


@dataclass(frozen=True)
class Entry:
    """One path in a layer: a regular file (from source or data), a directory, or a symlink."""

    path: str  # inside the image, no leading slash
    mode: int
    source: Path | None = None
    data: bytes | None = None
    kind: str = "file"  # file, dir, symlink
    link: str = ""
    uid: int = 0
    gid: int = 0


class _HashingWriter(io.RawIOBase):
    """Counts and hashes what passes through to the underlying file."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.size

    def write(self, b) -> int:  # type: ignore[override]
        self._fh.write(b)
        self.sha.update(b)
        self.size += len(b)
        return len(b)


def blob_bytes(data: bytes, media_type: str) -> Descriptor:
    return Descriptor(media_type, "sha256:" + hashlib.sha256(data).hexdigest(), len(data))


def canonical_json(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def complete(entries: Iterable[Entry]) -> dict[str, Entry]:
    """Entries by path, with an entry of its own (0755 directory) for every parent that has none."""
    by_path: dict[str, Entry] = {}
    for entry in entries:
        by_path[entry.path.strip("/")] = entry
    for path in list(by_path):
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            parent = "/".join(parts[:i])
            by_path.setdefault(parent, Entry(parent, 0o755, kind="dir"))
    return by_path


def write_layer(entries: Iterable[Entry], out: BinaryIO, epoch: int = 0) -> Descriptor:
    """Write an uncompressed layer tar: entries sorted, parents implied, owners numeric, mtime = epoch."""
    writer = _HashingWriter(out)
    by_path = complete(entries)
    with tarfile.open(fileobj=writer, mode="w", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        tar.copybufsize = _COPY_CHUNK  # type: ignore[attr-defined]
        for path in sorted(by_path):
            entry = by_path[path]
            info = tarfile.TarInfo(path)
            info.mode = entry.mode & 0o7777
            info.mtime = epoch
            info.uid, info.gid = entry.uid, entry.gid
            info.uname = info.gname = ""
            if entry.kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif entry.kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = entry.link
                tar.addfile(info)
            elif entry.data is not None:
                info.size = len(entry.data)
                tar.addfile(info, io.BytesIO(entry.data))
            else:
                assert entry.source is not None
                with open(entry.source, "rb") as fh:
                    info.size = os.fstat(fh.fileno()).st_size
                    tar.addfile(info, fh)
    return Descriptor(MEDIA_LAYER, "sha256:" + writer.sha.hexdigest(), writer.size)


def hash_file(path: Path, media_type: str = MEDIA_LAYER) -> Descriptor:
    sha = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_COPY_CHUNK):
            sha.update(chunk)
            size += len(chunk)
    return Descriptor(media_type, "sha256:" + sha.hexdigest(), size)


def rfc3339(epoch: int) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ImageConfig:
    """The runtime config of an image (the OCI config's `config` object plus platform)."""

    architecture: str
    os: str = "linux"
    variant: str | None = None
    cmd: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    env: tuple[str, ...] = ()
    workdir: str | None = None
    user: str | None = None
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def platform(self) -> dict[str, str]:
        out = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        return out

    def to_json(self, diff_ids: list[str], epoch: int, created_by: str) -> dict:
        config: dict = {}
        if self.cmd is not None:
            config["Cmd"] = list(self.cmd)
        if self.entrypoint is not None:
            config["Entrypoint"] = list(self.entrypoint)
        if self.env:
            config["Env"] = list(self.env)
        if self.workdir:
            config["WorkingDir"] = self.workdir
        if self.user:
            config["User"] = self.user
        if self.labels:
            config["Labels"] = dict(self.labels)
        created = rfc3339(epoch)
        return {
            **self.platform,
            "created": created,
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created": created, "created_by": created_by}],
        }


@dataclass(frozen=True)
class Image:
    """One platform's image as blobs: layers (files on disk), config bytes, manifest bytes."""

    layers: tuple[tuple[Descriptor, Path], ...]
    config: bytes
    config_desc: Descriptor
    manifest: bytes
    manifest_desc: Descriptor

    @property
    def image_id(self) -> str:
        """What Docker calls the image ID: the config's digest."""
        return self.config_desc.digest

    @property
    def size(self) -> int:
        return sum(d.size for d, _ in self.layers)

    @property
    def platform(self) -> str:
        plat = self.manifest_desc.platform or {}
        return "/".join(p for p in (plat.get("os"), plat.get("architecture"), plat.get("variant")) if p)


def make_image(layers: list[tuple[Descriptor, Path]], config: ImageConfig, epoch: int = 0,
               created_by: str = "fromscratch") -> Image:
    cfg = canonical_json(config.to_json([d.digest for d, _ in layers], epoch, created_by))
    return image_from(layers, cfg)


def image_from(layers: list[tuple[Descriptor, Path]], config: bytes) -> Image:
    """An image around config bytes kept exactly as given (their digest is the image ID)."""
    cfg_desc = blob_bytes(config, MEDIA_CONFIG)
    parsed = json.loads(config)
    platform = {k: parsed[k] for k in ("architecture", "os", "variant") if parsed.get(k)}
    manifest = canonical_json({
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": cfg_desc.to_json(),
        "layers": [d.to_json() for d, _ in layers],
    })
    man_desc = blob_bytes(manifest, MEDIA_MANIFEST)
    return Image(tuple(layers), config, cfg_desc, manifest,
                 Descriptor(MEDIA_MANIFEST, man_desc.digest, man_desc.size, platform=platform))


def read_layout(directory: Path) -> list[Image]:
    """The images of a one-reference OCI layout (as write_layout makes): one, or one per platform."""
    blob_dir = directory / "blobs" / "sha256"

    def blob(digest: str) -> bytes:
        return (blob_dir / digest.split(":", 1)[1]).read_bytes()

    try:
        top = json.loads((directory / "index.json").read_bytes())["manifests"][0]
        manifests = json.loads(blob(top["digest"]))["manifests"] if top["mediaType"] == MEDIA_INDEX else [top]
        images = []
        for desc in manifests:
            manifest = json.loads(blob(desc["digest"]))
            layers = [(Descriptor(d["mediaType"], d["digest"], d["size"]), blob_dir / d["digest"].split(":")[1])
                      for d in manifest["layers"]]
            images.append(image_from(layers, blob(manifest["config"]["digest"])))
    except (OSError, ValueError, KeyError, IndexError) as exc:
        raise InputError(f"{directory}: not an OCI image layout this tool wrote ({exc})") from None
    return images


def index_bytes(manifests: list[Descriptor]) -> bytes:
    return canonical_json({"schemaVersion": 2, "mediaType": MEDIA_INDEX,
                           "manifests": [d.to_json() for d in manifests]})


def image_index(images: list[Image]) -> tuple[bytes, Descriptor]:
    """The image index of a multi-platform image: one manifest per platform."""
    data = index_bytes([i.manifest_desc for i in images])
    return data, blob_bytes(data, MEDIA_INDEX)


def top_descriptor(images: list[Image]) -> Descriptor:
    """What a reference names: the one manifest, or the index of a multi-platform image."""
    return images[0].manifest_desc if len(images) == 1 else image_index(images)[1]


def ref_annotations(ref: str) -> dict[str, str]:
    """The names tools look for in index.json: the tag for OCI tools, the full name for containerd."""
    last = ref.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else "latest"
    return {"org.opencontainers.image.ref.name": tag, "io.containerd.image.name": ref}


def top_index(images: list[Image], ref_name: str | None = None) -> bytes:
    """index.json of a layout: one descriptor, for the manifest or the multi-platform index, named ref_name."""
    desc = top_descriptor(images)
    named = Descriptor(desc.media_type, desc.digest, desc.size, desc.platform,
                       ref_annotations(ref_name) if ref_name else None)
    return index_bytes([named])


def layout_marker() -> bytes:
    return canonical_json({"imageLayoutVersion": "1.0.0"})


def docker_manifest(image: Image, repo_tags: list[str]) -> bytes:
    """manifest.json, which `docker load` reads: config and layers by path inside the archive."""
    return json.dumps([{
        "Config": f"blobs/sha256/{image.config_desc.hex}",
        "RepoTags": list(repo_tags),
        "Layers": [f"blobs/sha256/{d.hex}" for d, _ in image.layers],
    }], sort_keys=True).encode()


def blobs(images: list[Image]) -> Iterator[tuple[Descriptor, Path | bytes]]:
    """Every blob once, in a fixed order: layers, config and manifest per image, then the index if several."""
    seen: set[str] = set()
    for image in images:
        items: list[tuple[Descriptor, Path | bytes]] = [*image.layers, (image.config_desc, image.config),
                                                      (image.manifest_desc, image.manifest)]
        for desc, source in items:
            if desc.digest not in seen:
                seen.add(desc.digest)
                yield desc, source
    if len(images) > 1:
        data, desc = image_index(images)
        yield desc, data


def blob_chunks(source: Path | bytes, size: int) -> Iterator[bytes]:
    """A blob's bytes in bounded chunks; a file that no longer has the size it was hashed at is refused."""
    if isinstance(source, bytes):
        yield source
        return
    sent = 0
    with open(source, "rb") as fh:
        while sent < size and (chunk := fh.read(min(_COPY_CHUNK, size - sent))):
            sent += len(chunk)
            yield chunk
        if sent != size or fh.read(1):
            raise ToolkitError(f"{source} changed while the image was being written")


def _header(name: str, size: int, epoch: int, directory: bool = False) -> bytes:
    info = tarfile.TarInfo(name)
    info.mtime = epoch
    if directory:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
    else:
        info.size, info.mode = size, 0o644
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _padding(size: int) -> bytes:
    return b"\0" * (-size % tarfile.BLOCKSIZE)


def archive_chunks(images: list[Image], repo_tags: list[str] | None = None, epoch: int = 0,
                   docker: bool = True) -> Iterator[bytes]:
    """The bytes of a tar that is an OCI image layout and, when docker is true, a `docker load` archive too.

    Streamed in pieces of at most 1 MiB, so that a layer of any size goes to a file, or straight to the
    engine, without being held in memory. The same images give the same bytes.
    """
    if docker and len(images) != 1:
        raise InputError("a docker archive holds one platform's image",
                         hint="use oci-archive: or oci: for a multi-platform image")
    written = 0

    def member(name: str, size: int, source: Path | bytes) -> Iterator[bytes]:
        nonlocal written
        header = _header(name, size, epoch)
        written += len(header) + size + len(_padding(size))
        yield header
        yield from blob_chunks(source, size)
        yield _padding(size)

    for directory in ("blobs", "blobs/sha256"):
        header = _header(directory, 0, epoch, directory=True)
        written += len(header)
        yield header
    for desc, source in blobs(images):
        yield from member(f"blobs/sha256/{desc.hex}", desc.size, source)
    for name, data in (("oci-layout", layout_marker()),
                       ("index.json", top_index(images, repo_tags[0] if repo_tags else None))):
        yield from member(name, len(data), data)
    if docker:
        data = docker_manifest(images[0], repo_tags or [])
        yield from member("manifest.json", len(data), data)
    # the end-of-archive marker (two zero blocks), then zeros to a whole record, as tar(1) and tarfile do
    end = 2 * tarfile.BLOCKSIZE
    yield b"\0" * (end + (-(written + end) % tarfile.RECORDSIZE))


def write_archive(images: list[Image], out: BinaryIO, repo_tags: list[str] | None = None,
                  epoch: int = 0, docker: bool = True) -> None:
    """archive_chunks written to an open file."""
    for chunk in archive_chunks(images, repo_tags, epoch, docker):
        out.write(chunk)


def write_layout(images: list[Image], directory: Path, ref_name: str | None = None) -> None:
    """An OCI image layout directory (oci-layout, index.json, blobs/sha256/...)."""
    blob_dir = directory / "blobs" / "sha256"
    blob_dir.mkdir(parents=True, exist_ok=True)
    for desc, source in blobs(images):
        with open(blob_dir / desc.hex, "wb") as fh:
            for chunk in blob_chunks(source, desc.size):
                fh.write(chunk)
    (directory / "oci-layout").write_bytes(layout_marker())
    (directory / "index.json").write_bytes(top_index(images, ref_name))


def entry_for(source: Path, dest: str, mode: int | None = None) -> Entry:
    """A layer entry for a host file, keeping only its execute bits unless a mode is given."""
    st = source.stat()
    if mode is None:
        mode = 0o755 if st.st_mode & stat.S_IXUSR else 0o644
    return Entry(dest.strip("/"), mode, source=source)
