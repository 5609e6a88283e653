"""An image read back from the engine (`docker save`): its blobs, for push to send as they are, and its config,
files and sizes, for the inspect task."""

from __future__ import annotations

import json
import posixpath
import shutil
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import command
from ..engine import client as engine
from ..errors import InputError
from ..files import scratch_dir
from . import oci


@dataclass(frozen=True)
class FileInfo:
    path: str  # absolute, as in the image
    kind: str  # file, dir, symlink, hardlink, other
    mode: int
    uid: int
    gid: int
    size: int
    link: str = ""


def layer_files(layers: Iterable[Any]) -> list[FileInfo]:
    """The merged view of layer tars (each an open binary stream), applying whiteouts as overlayfs does."""
    files: dict[str, FileInfo] = {}
    for stream in layers:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                path = "/" + posixpath.normpath(member.name).lstrip("./").lstrip("/")
                base = posixpath.basename(path)
                if base == ".wh..wh..opq":
                    prefix = posixpath.dirname(path).rstrip("/") + "/"
                    files = {p: f for p, f in files.items() if not p.startswith(prefix)}
                    continue
                if base.startswith(".wh."):
                    gone = posixpath.join(posixpath.dirname(path), base[4:])
                    files = {p: f for p, f in files.items() if p != gone and not p.startswith(gone + "/")}
                    continue
                kind = ("dir" if member.isdir() else "symlink" if member.issym() else
                        "hardlink" if member.islnk() else "file" if member.isfile() else "other")
                files[path] = FileInfo(path, kind, member.mode & 0o7777, member.uid, member.gid,
                                       member.size if kind == "file" else 0, member.linkname)
    return [files[p] for p in sorted(files) if p != "/"]


def _engine_image(client: engine.Client, tag: str) -> Any:
    image = engine.get_image(client, tag)
    if image is None:
        raise InputError(f"no image {tag} in the engine", hint=f"build it first: {command.line('image --tag ' + tag)}")
    return image


def _save(image: Any, tag: str, dest: Path) -> Path:
    """`docker save` of one image, streamed to dest."""
    with engine.step(f"exporting {tag}"), open(dest, "wb") as fh:
        for chunk in image.save(chunk_size=1 << 20, named=False):
            fh.write(chunk)
    return dest


def from_engine(client: engine.Client, tag: str, workdir: Path) -> list[oci.Image]:
    """An engine's image as blobs in workdir. The engine keeps the config bytes and, through tar-split, the
    layer bytes it was given, so an image this tool loaded comes back with its own digests."""
    saved = _save(_engine_image(client, tag), tag, workdir / "saved.tar")
    layers = []
    with tarfile.open(saved) as tar:
        manifest_member = tar.extractfile("manifest.json")
        assert manifest_member is not None
        manifest = json.load(manifest_member)[0]
        config_member = tar.extractfile(manifest["Config"])
        assert config_member is not None
        config = config_member.read()
        for i, name in enumerate(manifest["Layers"]):
            src = tar.extractfile(name)
            assert src is not None
            path = workdir / f"layer{i}.tar"
            with src, open(path, "wb") as fh:
                shutil.copyfileobj(src, fh, 1 << 20)
            layers.append((oci.hash_file(path), path))
    saved.unlink()
    return [oci.image_from(layers, config)]


def inspect(client: engine.Client, tag: str) -> dict:
    """An image in the engine: its config, layer count and size, and its files (from `docker save`)."""
    image = _engine_image(client, tag)
    attrs = image.attrs
    with tempfile.TemporaryDirectory(prefix="fromscratch-inspect-", dir=scratch_dir()) as tmp:
        saved = _save(image, tag, Path(tmp) / "image.tar")
        with tarfile.open(saved) as tar:
            manifest_member = tar.extractfile("manifest.json")
            assert manifest_member is not None
            manifest = json.load(manifest_member)[0]
            streams = (tar.extractfile(name) for name in manifest["Layers"])
            files = layer_files(s for s in streams if s is not None)
    return {
        "tag": tag, "id": attrs["Id"], "size": attrs.get("Size", 0),
        "platform": "/".join(p for p in (attrs.get("Os"), attrs.get("Architecture"), attrs.get("Variant")) if p),
        "layers": len(attrs.get("RootFS", {}).get("Layers", [])), "created": attrs.get("Created"),
        # what the image sets: the engine's unset defaults and the builder's parent-image field left out
        "config": {k: v for k, v in (attrs.get("Config") or {}).items()
                   if v not in (None, "", [], {}, False) and k != "Image"},
        "files": files,
    }


def render_inspect(info: dict) -> str:
    lines = [f"image:    {info['tag']}", f"id:       {info['id']}", f"platform: {info['platform']}",
             f"created:  {info['created']}",
             f"size:     {info['size']:,} bytes in {info['layers']} layer{'s' if info['layers'] != 1 else ''}",
             "config:"]
    lines += [f"  {key:<12} {json.dumps(value, sort_keys=True)}" for key, value in sorted(info["config"].items())]
    regular = [f for f in info["files"] if f.kind == "file"]
    lines.append(f"files:    {len(regular)} regular, {sum(f.size for f in regular):,} bytes")
    for f in info["files"]:
        target = f" -> {f.link}" if f.link else ""
        lines.append(f"  {_mode_string(f)} {f.uid}:{f.gid:<6} {f.size:>10,}  {f.path}{target}")
    return "\n".join(lines)


def _mode_string(f: FileInfo) -> str:
    return {"dir": "d", "symlink": "l", "hardlink": "h"}.get(f.kind, "-") + stat_filemode(f.mode)


def stat_filemode(mode: int) -> str:
    import stat

    return stat.filemode(mode | stat.S_IFREG)[1:]
