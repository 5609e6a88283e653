"""Image bytes: a deterministic layer tar, the image config, OCI manifest and index, and the archive writers.

Every blob's digest and size are computed together from the very bytes written, never recomputed apart, and
every writer streams: a blob of any size passes through in bounded chunks, never whole in memory.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import stat
import tarfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from .. import files
from ..dates import rfc3339
from ..errors import InputError, ToolkitError

MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
# OCI 1.1's empty config, for an artifact whose manifest needs no config of its own.
MEDIA_EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_JSON = b"{}"
# What `docker build` puts in every image's Env; the Python backend does the same so both backends agree.
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_COPY_CHUNK = 1 << 20


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str  # sha256:<hex>
    size: int
    platform: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    artifact_type: str | None = None  # what an index says of a referrer (OCI 1.1)

    @property
    def hex(self) -> str:
        return self.digest.split(":", 1)[1]

    def to_json(self) -> dict:
        out: dict = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.platform:
            out["platform"] = self.platform
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = self.annotations
        return out

    @classmethod
    def from_json(cls, obj: dict) -> Descriptor:
        return cls(obj["mediaType"], obj["digest"], obj["size"], obj.get("platform"), obj.get("annotations"),
                   obj.get("artifactType"))

    @classmethod
    def checked(cls, obj: object, what: str) -> Descriptor:
        """A descriptor from JSON someone else wrote (a registry's answer): every field the toolkit reads has the
        spec's type, else one ToolkitError naming what is wrong."""
        if not isinstance(obj, dict):
            raise ToolkitError(f"{what} is {_kind(obj)}, not a descriptor")
        media_type, digest, size = obj.get("mediaType"), obj.get("digest"), obj.get("size")
        if not isinstance(media_type, str) or not isinstance(digest, str) or not _DIGEST.match(digest):
            raise ToolkitError(f"{what} has no mediaType and sha256 digest")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ToolkitError(f"{what} has no size")
        platform, annotations, artifact_type = obj.get("platform"), obj.get("annotations"), obj.get("artifactType")
        if platform is not None and not _strings(platform):
            raise ToolkitError(f"{what}: its platform is not an object of strings")
        if annotations is not None and not _strings(annotations):
            raise ToolkitError(f"{what}: its annotations are not an object of strings")
        if artifact_type is not None and not isinstance(artifact_type, str):
            raise ToolkitError(f"{what}: its artifactType is not a string")
        return cls(media_type, digest, size, platform, annotations, artifact_type)


_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
# A manifest or index nests four levels (document, manifests, a descriptor, its platform or annotations).
_MAX_DEPTH = 16


def _kind(obj: object) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(obj), type(obj).__name__)


def _strings(obj: object) -> bool:
    return isinstance(obj, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in obj.items())


def json_object(data: bytes, what: str) -> dict:
    """A JSON object from bytes someone else wrote (a manifest, an index, a referrers list): UTF-8, nested at most
    _MAX_DEPTH deep, an object at the top; anything else is one ToolkitError naming what it is."""
    try:
        obj = json.loads(data.decode("utf-8"))
    except RecursionError:
        raise ToolkitError(f"{what} is nested deeper than any manifest") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ToolkitError(f"{what} is not JSON ({' '.join(str(exc).split())[:120]})") from None
    level = [obj] if isinstance(obj, (dict, list)) else []
    for _ in range(_MAX_DEPTH):
        level = [c for v in level for c in (v.values() if isinstance(v, dict) else v) if isinstance(c, (dict, list))]
        if not level:
            break
    else:
        raise ToolkitError(f"{what} is nested deeper than any manifest")
    if not isinstance(obj, dict):
        raise ToolkitError(f"{what} is {_kind(obj)}, not a JSON object")
    return obj


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
    digest, size = files.sha256(path)
    return Descriptor(media_type, "sha256:" + digest, size)


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
        top = next(d for d in json.loads((directory / "index.json").read_bytes())["manifests"]
                   if not d.get("artifactType"))  # referrers (SBOMs) are listed after the image
        manifests = json.loads(blob(top["digest"]))["manifests"] if top["mediaType"] == MEDIA_INDEX else [top]
        images = []
        for desc in manifests:
            manifest = json.loads(blob(desc["digest"]))
            layers = [(Descriptor(d["mediaType"], d["digest"], d["size"]), blob_dir / d["digest"].split(":")[1])
                      for d in manifest["layers"]]
            images.append(image_from(layers, blob(manifest["config"]["digest"])))
    except (OSError, ValueError, KeyError, IndexError, StopIteration) as exc:
        raise InputError(f"{directory}: not an OCI image layout this tool wrote ({exc!r})") from None
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


def top_index(images: list[Image], ref_name: str | None = None, artifacts: Sequence[Artifact] = ()) -> bytes:
    """index.json of a layout: the descriptor of the manifest or the multi-platform index, named ref_name, then
    the artifacts that refer to its manifests (as ORAS lists referrers in a layout); no images: only those."""
    listed = [a.descriptor for a in artifacts]
    if images:
        desc = top_descriptor(images)
        listed.insert(0, Descriptor(desc.media_type, desc.digest, desc.size, desc.platform,
                                    ref_annotations(ref_name) if ref_name else None))
    return index_bytes(listed)


def layout_marker() -> bytes:
    return canonical_json({"imageLayoutVersion": "1.0.0"})


def docker_manifest(image: Image, repo_tags: list[str]) -> bytes:
    """manifest.json, which `docker load` reads: config and layers by path inside the archive."""
    return json.dumps([{
        "Config": f"blobs/sha256/{image.config_desc.hex}",
        "RepoTags": list(repo_tags),
        "Layers": [f"blobs/sha256/{d.hex}" for d, _ in image.layers],
    }], sort_keys=True).encode()


def blobs(images: list[Image], artifacts: Sequence[Artifact] = ()) -> Iterator[tuple[Descriptor, Path | bytes]]:
    """Every blob once, in a fixed order: layers, config and manifest per image, the index if several, then
    each artifact's blobs and manifest."""
    seen: set[str] = set()
    items: list[tuple[Descriptor, Path | bytes]] = []
    for image in images:
        items += [*image.layers, (image.config_desc, image.config), (image.manifest_desc, image.manifest)]
    if len(images) > 1:
        data, desc = image_index(images)
        items.append((desc, data))
    for artifact in artifacts:
        items += [*artifact.blobs, (artifact.descriptor, artifact.manifest)]
    for desc, source in items:
        if desc.digest not in seen:
            seen.add(desc.digest)
            yield desc, source


@dataclass(frozen=True)
class Artifact:
    """An OCI 1.1 artifact that refers to one image manifest, its subject: a manifest with artifactType, the
    empty config and one blob (an SBOM)."""

    manifest: bytes
    descriptor: Descriptor  # with artifactType and annotations, as an index lists a referrer
    subject: Descriptor
    blob: bytes
    blob_desc: Descriptor

    @property
    def blobs(self) -> list[tuple[Descriptor, Path | bytes]]:
        return [(blob_bytes(EMPTY_JSON, MEDIA_EMPTY), EMPTY_JSON), (self.blob_desc, self.blob)]


def artifact(subject: Descriptor, artifact_type: str, data: bytes, title: str, epoch: int = 0) -> Artifact:
    """data attached to the manifest subject describes: the blob titled (the file name ORAS saves it as), the
    manifest dated by epoch, so the same inputs give the same digest."""
    layer = blob_bytes(data, artifact_type)
    layer = Descriptor(layer.media_type, layer.digest, layer.size,
                       annotations={"org.opencontainers.image.title": title})
    annotations = {"org.opencontainers.image.created": rfc3339(epoch)}
    manifest = canonical_json({
        "schemaVersion": 2, "mediaType": MEDIA_MANIFEST, "artifactType": artifact_type,
        "config": blob_bytes(EMPTY_JSON, MEDIA_EMPTY).to_json(), "layers": [layer.to_json()],
        "subject": Descriptor(subject.media_type, subject.digest, subject.size).to_json(),
        "annotations": annotations,
    })
    return artifact_from(manifest, lambda _: data)


def artifact_from(manifest: bytes, blob_of: Callable[[Descriptor], bytes]) -> Artifact:
    """An artifact from its manifest's bytes and a way to read a blob by its descriptor, every digest checked."""
    desc = blob_bytes(manifest, MEDIA_MANIFEST)
    what = f"the artifact manifest {desc.digest[:19]}"
    obj = json_object(manifest, what)
    layers = obj.get("layers")
    if not isinstance(layers, list) or not layers:
        raise ToolkitError(f"{what} has no layers")
    layer = Descriptor.checked(layers[0], f"{what}: its first layer")
    subject = Descriptor.checked(obj.get("subject"), f"{what}: its subject")
    annotations, artifact_type = obj.get("annotations"), obj.get("artifactType")
    if (annotations is not None and not _strings(annotations)) or not isinstance(artifact_type, (str, type(None))):
        raise ToolkitError(f"{what}: its annotations or artifactType are not strings")
    data = blob_of(layer)
    if blob_bytes(data, layer.media_type).digest != layer.digest:
        raise InputError(f"the blob {layer.digest} does not have that digest")
    return Artifact(manifest, Descriptor(MEDIA_MANIFEST, desc.digest, desc.size,
                                         annotations=annotations, artifact_type=artifact_type),
                    subject, data, layer)


def read_artifacts(layout: Path) -> list[Artifact]:
    """The artifacts an OCI layout (a directory, or an archive of one) lists in its index.json."""
    def read(tar: tarfile.TarFile | None, name: str) -> bytes:
        if tar is None:
            return (layout / name).read_bytes()
        member = tar.extractfile(name)
        if member is None:
            raise KeyError(name)
        return member.read()

    try:
        with contextlib.ExitStack() as stack:
            tar = None if layout.is_dir() else stack.enter_context(tarfile.open(layout))

            def blob(digest: str) -> bytes:
                return read(tar, f"blobs/sha256/{digest.split(':', 1)[1]}")

            listed = json.loads(read(tar, "index.json"))["manifests"]
            return [artifact_from(blob(d["digest"]), lambda layer: blob(layer.digest))
                    for d in listed if d.get("artifactType")]
    except (OSError, ValueError, KeyError, IndexError, tarfile.TarError) as exc:
        raise InputError(f"{layout}: its referrers cannot be read ({exc!r})") from None


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
                   docker: bool = True, artifacts: Sequence[Artifact] = ()) -> Iterator[bytes]:
    """The bytes of a tar that is an OCI image layout and, when docker is true, a `docker load` archive too
    (whose manifest.json names only the image: the artifacts are for OCI tools and registries).

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
    for desc, source in blobs(images, artifacts):
        yield from member(f"blobs/sha256/{desc.hex}", desc.size, source)
    for name, data in (("oci-layout", layout_marker()),
                       ("index.json", top_index(images, repo_tags[0] if repo_tags else None, artifacts))):
        yield from member(name, len(data), data)
    if docker:
        data = docker_manifest(images[0], repo_tags or [])
        yield from member("manifest.json", len(data), data)
    # the end-of-archive marker (two zero blocks), then zeros to a whole record, as tar(1) and tarfile do
    end = 2 * tarfile.BLOCKSIZE
    yield b"\0" * (end + (-(written + end) % tarfile.RECORDSIZE))


def write_archive(images: list[Image], out: BinaryIO, repo_tags: list[str] | None = None,
                  epoch: int = 0, docker: bool = True, artifacts: Sequence[Artifact] = ()) -> None:
    """archive_chunks written to an open file."""
    for chunk in archive_chunks(images, repo_tags, epoch, docker, artifacts):
        out.write(chunk)


def write_layout(images: list[Image], directory: Path, ref_name: str | None = None,
                 artifacts: Sequence[Artifact] = ()) -> None:
    """An OCI image layout directory (oci-layout, index.json, blobs/sha256/...), artifacts listed after the
    image."""
    blob_dir = directory / "blobs" / "sha256"
    blob_dir.mkdir(parents=True, exist_ok=True)
    for desc, source in blobs(images, artifacts):
        with open(blob_dir / desc.hex, "wb") as fh:
            for chunk in blob_chunks(source, desc.size):
                fh.write(chunk)
    (directory / "oci-layout").write_bytes(layout_marker())
    (directory / "index.json").write_bytes(top_index(images, ref_name, artifacts))


def entry_for(source: Path, dest: str, mode: int | None = None) -> Entry:
    """A layer entry for a host file, keeping only its execute bits unless a mode is given."""
    st = source.stat()
    if mode is None:
        mode = 0o755 if st.st_mode & stat.S_IXUSR else 0o644
    return Entry(dest.strip("/"), mode, source=source)
