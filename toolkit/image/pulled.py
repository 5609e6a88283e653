"""An image read back from its registry, for verify-image --remote: one platform's manifest, or each of an
index's, then its config and its layers, every blob checked against its digest on the way in."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import command, targets
from ..errors import InputError
from . import registry
from .registry import Reference, RegistryError

_CONFIG_MAX = 4 << 20  # an image config is a few KiB; a bigger one is refused before it is read


@dataclass(frozen=True)
class Pulled:
    """One platform's image from a registry: its OCI config, parsed, and its layer files on disk, bottom first."""

    platform: str
    config: dict
    layers: tuple[Path, ...]


def pull(ref: Reference, dxf: Any, platform: targets.Target | None, workdir: Path) -> list[Pulled]:
    """ref's image for platform, from its registry; without a platform, each platform of an index. Every blob is
    checked against its digest (python-dxf does, as it streams) and layers go to files in workdir, not memory."""
    import requests

    login = getattr(dxf, "login", None)
    with dxf:
        with registry.talking(ref, f"reading {ref}", login):
            try:
                body, _ = dxf.get_manifest_and_response(ref.tag)
            except requests.HTTPError as exc:
                if exc.response is not None and exc.response.status_code == 404:
                    raise InputError(f"no image {ref} in its registry",
                                     hint=f"check the name; push it with {command.line(f'push --tag {ref}')}") from None
                raise
        top = _json(body, ref)
        if "manifests" in top:  # an index (OCI, or Docker's manifest list)
            wanted = [d for d in top["manifests"] if isinstance(d, dict) and not d.get("artifactType")
                      and (found := _target(d.get("platform") or {})) is not None
                      and (platform is None or found == platform)]
            if not wanted:
                listed = ", ".join(p for d in top["manifests"] if isinstance(d, dict)
                                   if (p := _platform(d.get("platform") or {})) and _target(d["platform"]))
                raise InputError(f"{ref} has no image for {platform.platform if platform else 'any platform'} "
                                 f"in its registry (its index lists {listed or 'none this tool knows'})",
                                 hint=f"pick one with --platform {listed.split(', ')[0]}" if listed else None)
            manifests = []
            for desc in wanted:
                with registry.talking(ref, f"reading the {_platform(desc['platform'])} manifest", login):
                    text, _ = dxf.get_manifest_and_response(desc["digest"])
                if "sha256:" + hashlib.sha256(text.encode()).hexdigest() != desc["digest"]:
                    raise RegistryError(f"{ref.registry} answered {desc['digest']} with other bytes")
                manifests.append(_json(text, ref))
        else:
            manifests = [top]
        out = [_pull_one(ref, dxf, manifest, workdir / str(i), login) for i, manifest in enumerate(manifests)]
    if platform is not None and len(out) == 1 and _target(out[0].config) != platform:
        raise InputError(f"{ref} in its registry is for {out[0].platform}, not {platform.platform}",
                         hint="leave out --platform, or give the image of that platform")
    return out


def _pull_one(ref: Reference, dxf: Any, manifest: dict, where: Path, login: Any) -> Pulled:
    from dxf.exceptions import DXFDigestMismatchError

    try:
        config_desc, layer_descs = manifest["config"], manifest["layers"]
        if int(config_desc.get("size", 0)) > _CONFIG_MAX:
            raise RegistryError(f"{ref}: its config is {config_desc['size']:,} bytes, more than an image config "
                                "holds")
        where.mkdir(parents=True)
        with registry.talking(ref, f"reading the config {config_desc['digest'][:19]}", login):
            config = json.loads(b"".join(dxf.pull_blob(config_desc["digest"])))
        layers = []
        for i, desc in enumerate(layer_descs):
            path = where / f"layer{i}"
            with registry.talking(ref, f"reading the layer {desc['digest'][:19]}", login), open(path, "wb") as fh:
                for chunk in dxf.pull_blob(desc["digest"], chunk_size=1 << 20):
                    fh.write(chunk)
            layers.append(path)
    except DXFDigestMismatchError as exc:
        raise RegistryError(f"{ref.registry} answered a blob of {ref} with other bytes ({exc})") from None
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise RegistryError(f"{ref}: its manifest or config is not an image's ({exc!r})") from None
    if not isinstance(config, dict):
        raise RegistryError(f"{ref}: its config is not a JSON object")
    return Pulled(_platform(config), config, tuple(layers))


def _json(text: str, ref: Reference) -> dict:
    try:
        found = json.loads(text)
    except ValueError:
        raise RegistryError(f"{ref}: the registry's manifest is not JSON") from None
    if not isinstance(found, dict):
        raise RegistryError(f"{ref}: the registry's manifest is not a JSON object")
    return found


def _platform(plat: Mapping[str, Any]) -> str:
    return "/".join(str(plat[k]) for k in ("os", "architecture", "variant") if plat.get(k))


def _target(plat: Mapping[str, Any]) -> targets.Target | None:
    """The target of a platform (an index entry's, or a config's os/architecture/variant); None for others
    (an attestation manifest's unknown/unknown)."""
    try:
        return targets.parse_platform(_platform(plat))
    except InputError:
        return None
