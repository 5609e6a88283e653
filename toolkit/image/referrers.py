"""Artifacts that refer to an image (its SBOMs) in a registry, pushed after it and read back: through the referrers
API where the registry has one, else through the referrers tag `sha256-<hex>` of the OCI distribution spec."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ToolkitError
from . import oci, registry, store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pushed:
    artifact: oci.Artifact
    platform: str
    how: str  # "referrers API" or "tag sha256-<hex>"


def kept_for(images: Sequence[oci.Image]) -> list[tuple[oci.Image, oci.Artifact]]:
    """What invoke image kept for these images (by image ID) whose subject is exactly the manifest pushed."""
    return [(image, a) for image in images for a in store.referrers(image.image_id)
            if a.subject.digest == image.manifest_desc.digest]


def push(images: list[oci.Image], ref: registry.Reference, dxf: Any) -> tuple[oci.Descriptor, list[Pushed]]:
    """The image (registry.push), then each artifact kept for its platform manifests."""
    top = registry.push(images, ref, dxf)
    login = getattr(dxf, "login", None)
    pushed = []
    with dxf:
        for image, artifact in kept_for(images):
            for desc, source in artifact.blobs:
                with registry.talking(ref, f"uploading blob {desc.digest[:19]}", login):
                    dxf.push_blob(data=oci.blob_chunks(source, desc.size), digest=desc.digest)
            with registry.talking(ref, f"uploading the {image.platform} SBOM", login):
                answer = dxf._request("put", f"manifests/{artifact.descriptor.digest}", data=artifact.manifest,
                                      headers={"Content-Type": oci.MEDIA_MANIFEST})
            # a registry with the referrers API says so by naming the subject; any other needs the tag
            if answer.headers.get("OCI-Subject") == artifact.subject.digest:
                how = "referrers API"
            else:
                how = _add_to_tag(dxf, ref, artifact, login)
            log.info("pushed %s for %s (%s)", artifact.descriptor.digest, image.platform, how)
            pushed.append(Pushed(artifact, image.platform, how))
    return top, pushed


def tag_for(subject: str) -> str:
    """The referrers tag of a subject digest: sha256:<hex> -> sha256-<hex>."""
    return subject.replace(":", "-", 1)


def _add_to_tag(dxf: Any, ref: registry.Reference, artifact: oci.Artifact, login: Any) -> str:
    """Add the artifact to the index the subject's referrers tag names (an empty one if none), keeping what it
    already lists."""
    tag = tag_for(artifact.subject.digest)
    with registry.talking(ref, f"reading the referrers tag {tag}", login):
        listed = _tag_index(dxf, tag)
    if all(d.get("digest") != artifact.descriptor.digest for d in listed):
        listed.append(artifact.descriptor.to_json())
        data = oci.canonical_json({"schemaVersion": 2, "mediaType": oci.MEDIA_INDEX, "manifests": listed})
        with registry.talking(ref, f"updating the referrers tag {tag}", login):
            dxf.set_manifest(tag, data.decode())
    return f"tag {tag}"


def _tag_index(dxf: Any, tag: str) -> list[dict[str, Any]]:
    """The descriptors the referrers tag's index lists; none where there is no such tag."""
    import requests

    try:
        body, _ = dxf.get_manifest_and_response(tag)
    except requests.HTTPError as exc:
        if exc.response is not None and exc.response.status_code == 404:
            return []
        raise
    try:
        found = json.loads(body)
    except ValueError:
        return []
    if found.get("mediaType") != oci.MEDIA_INDEX:  # not an index: the spec's fallback starts a new one
        return []
    return [d for d in found.get("manifests", []) if isinstance(d, dict)]


# --- reading them back ---------------------------------------------------------------------------------------

def fetch(ref: registry.Reference, dxf: Any, artifact_type: str) -> list[tuple[str, oci.Artifact]]:
    """(platform, artifact) for each artifact of that type referring to a platform manifest of ref."""
    import requests

    login = getattr(dxf, "login", None)
    out = []
    with dxf:
        with registry.talking(ref, f"reading {ref}", login):
            body, answer = dxf.get_manifest_and_response(ref.tag)
        top = json.loads(body)
        digest = answer.headers.get("Docker-Content-Digest") or oci.blob_bytes(body.encode(), "").digest
        manifests = ([oci.Descriptor.from_json(d) for d in top.get("manifests", [])]
                     if top.get("mediaType") == oci.MEDIA_INDEX
                     else [oci.Descriptor(oci.MEDIA_MANIFEST, digest, len(body.encode()))])
        for manifest in manifests:
            if manifest.artifact_type:
                continue
            with registry.talking(ref, f"reading the referrers of {manifest.digest[:19]}", login):
                listed = _referrers(dxf, manifest.digest, requests)
            for desc in listed:
                if desc.get("artifactType") != artifact_type:
                    continue
                with registry.talking(ref, f"reading {desc['digest'][:19]}", login):
                    text, _ = dxf.get_manifest_and_response(desc["digest"])
                    data = text.encode()
                    if oci.blob_bytes(data, "").digest != desc["digest"]:
                        raise ToolkitError(f"{ref.registry} answered {desc['digest']} with other bytes")
                    out.append((_platform(manifest), oci.artifact_from(data, lambda d: b"".join(dxf.pull_blob(d)))))
    return out


def _platform(manifest: oci.Descriptor) -> str:
    plat = manifest.platform or {}
    return "/".join(p for p in (plat.get("os"), plat.get("architecture"), plat.get("variant")) if p)


def _referrers(dxf: Any, digest: str, requests: Any) -> list[dict[str, Any]]:
    """The referrers API's answer, else the referrers tag's index (a 404 means the registry has no such API)."""
    try:
        answer = dxf._request("get", f"referrers/{digest}", headers={"Accept": oci.MEDIA_INDEX})
        return [d for d in answer.json().get("manifests", []) if isinstance(d, dict)]
    except requests.HTTPError as exc:
        if exc.response is None or exc.response.status_code not in (404, 405):
            raise
    return _tag_index(dxf, tag_for(digest))
