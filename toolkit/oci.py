"""Image bytes: a deterministic layer tar, the image config, OCI manifest and index, and the archive writers.

Every blob's digest and size are computed together from the very bytes written, never recomputed apart.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
_COPY_CHUNK = 1 << 20


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


def write_layer(entries: Iterable[Entry], out: BinaryIO, epoch: int = 0) -> Descriptor:
    """Write an uncompressed layer tar: entries sorted, parents implied, owners numeric, mtime = epoch."""
    writer = _HashingWriter(out)
    by_path: dict[str, Entry] = {}
    for entry in entries:
        by_path[entry.path.strip("/")] = entry
    for path in list(by_path):  # every parent directory gets an entry of its own
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            by_path.setdefault("/".join(parts[:i]), Entry("/".join(parts[:i]), 0o755, kind="dir"))
    with tarfile.open(fileobj=writer, mode="w", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
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
    import datetime

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
    """One platform's image as blobs on disk: layers (files), config bytes, manifest bytes."""

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


def make_image(layers: list[tuple[Descriptor, Path]], config: ImageConfig, epoch: int = 0,
               created_by: str = "fromscratch") -> Image:
    cfg = canonical_json(config.to_json([d.digest for d, _ in layers], epoch, created_by))
    cfg_desc = blob_bytes(cfg, MEDIA_CONFIG)
    manifest = canonical_json({
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": cfg_desc.to_json(),
        "layers": [d.to_json() for d, _ in layers],
    })
    man_desc = blob_bytes(manifest, MEDIA_MANIFEST)
    return Image(tuple(layers), cfg, cfg_desc, manifest,
                 Descriptor(MEDIA_MANIFEST, man_desc.digest, man_desc.size, platform=config.platform))


def index_bytes(manifests: list[Descriptor], ref_name: str | None = None) -> bytes:
    descs = []
    for d in manifests:
        j = d.to_json()
        if ref_name:
            j["annotations"] = {"org.opencontainers.image.ref.name": ref_name}
        descs.append(j)
    return canonical_json({"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": descs})


def write_archive(images: list[Image], out: BinaryIO, repo_tags: list[str] | None = None,
                  epoch: int = 0) -> None:
    """A tar that is both an OCI image layout and a `docker load` archive (manifest.json), streamed."""
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        def add_bytes(name: str, data: bytes) -> None:
            info = _file_info(name, len(data), epoch)
            tar.addfile(info, io.BytesIO(data))

        added: set[str] = set()
        add_dir = _dir_adder(tar, epoch)
        add_dir("blobs")
        add_dir("blobs/sha256")
        for image in images:
            for desc, path in image.layers:
                name = f"blobs/sha256/{desc.hex}"
                if name not in added:
                    added.add(name)
                    with open(path, "rb") as fh:
                        tar.addfile(_file_info(name, desc.size, epoch), fh)
            for data, desc in ((image.config, image.config_desc), (image.manifest, image.manifest_desc)):
                name = f"blobs/sha256/{desc.hex}"
                if name not in added:
                    added.add(name)
                    add_bytes(name, data)
        add_bytes("oci-layout", canonical_json({"imageLayoutVersion": "1.0.0"}))
        ref = repo_tags[0] if repo_tags else None
        add_bytes("index.json", index_bytes([i.manifest_desc for i in images], ref))
        if len(images) == 1:  # docker load reads manifest.json; it holds one image per platform here
            image = images[0]
            add_bytes("manifest.json", json.dumps([{
                "Config": f"blobs/sha256/{image.config_desc.hex}",
                "RepoTags": list(repo_tags or []),
                "Layers": [f"blobs/sha256/{d.hex}" for d, _ in image.layers],
            }], sort_keys=True).encode())


def _file_info(name: str, size: int, epoch: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    info.mtime = epoch
    return info


def _dir_adder(tar: tarfile.TarFile, epoch: int):
    def add(name: str) -> None:
        info = tarfile.TarInfo(name)
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        info.mtime = epoch
        tar.addfile(info)
    return add


def write_layout(images: list[Image], directory: Path, ref_name: str | None = None) -> None:
    """An OCI image layout directory (oci-layout, index.json, blobs/sha256/...)."""
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    for image in images:
        for desc, path in image.layers:
            shutil.copyfile(path, blobs / desc.hex)
        (blobs / image.config_desc.hex).write_bytes(image.config)
        (blobs / image.manifest_desc.hex).write_bytes(image.manifest)
    (directory / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": "1.0.0"}))
    (directory / "index.json").write_bytes(index_bytes([i.manifest_desc for i in images], ref_name))


def entry_for(source: Path, dest: str, mode: int | None = None) -> Entry:
    """A layer entry for a host file, keeping only its execute bits unless a mode is given."""
    st = source.stat()
    if mode is None:
        mode = 0o755 if st.st_mode & stat.S_IXUSR else 0o644
    return Entry(dest.strip("/"), mode, source=source)
