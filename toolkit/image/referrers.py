"""Artifacts that refer to an image (its SBOMs) in a registry, pushed after it and read back: through the referrers
API where the registry has one, else through the referrers tag `sha256-<hex>` of the OCI distribution spec."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ToolkitError
from ..sbom import read
from . import oci, registry, store

log = logging.getLogger(__name__)
# What a read back follows at most, so that a registry's 4 MiB index of tens of thousands of entries cannot make
# it ask tens of thousands of questions: an image index lists a manifest per platform (and an attestation per
# platform, as BuildKit writes them); a platform manifest has an SBOM or a few.
MAX_MANIFESTS = 256
MAX_SBOMS = 16


@dataclass(frozen=True)
class Pushed:
    artifact: oci.Artifact
    platform: str
    how: str  # "referrers API" or "tag sha256-<hex>"


def kept_for(local: str, images: Sequence[oci.Image]) -> list[tuple[oci.Image, oci.Artifact]]:
    """What invoke image kept for these images made under the name local (by name and image ID) whose subject is
    exactly the manifest pushed."""
    return [(image, a) for image in images for a in store.referrers(local, image.image_id)
            if a.subject.digest == image.manifest_desc.digest]


def push(images: list[oci.Image], ref: registry.Reference, dxf: Any,
         local: str | None = None) -> tuple[oci.Descriptor, list[Pushed]]:
    """The image's blobs and manifests (by digest), then each artifact kept for its platform manifests, and the
    tag last: a push whose SBOM step fails leaves the tag as it was, never naming an image without its SBOM."""
    login = getattr(dxf, "login", None)
    pushed = []
    with dxf:
        top, data = registry.push_content(images, ref, dxf)
        try:
            for image, artifact in kept_for(local or str(ref), images):
                for desc, source in artifact.blobs:
                    with registry.talking(ref, f"uploading blob {desc.digest[:19]}", login):
                        dxf.push_blob(data=oci.blob_chunks(source, desc.size), digest=desc.digest)
                with registry.talking(ref, f"uploading the {image.platform} SBOM", login):
                    answer = dxf._request("put", f"manifests/{artifact.descriptor.digest}", data=artifact.manifest,
                                          headers={"Content-Type": oci.MEDIA_MANIFEST})
                    answer.close()
                # a registry with the referrers API says so by naming the subject; any other needs the tag
                if answer.headers.get("OCI-Subject") == artifact.subject.digest:
                    how = "referrers API"
                else:
                    how = _add_to_tag(dxf, ref, artifact, login)
                log.info("pushed %s for %s (%s)", artifact.descriptor.digest, image.platform, how)
                pushed.append(Pushed(artifact, image.platform, how))
        except ToolkitError as exc:
            exc.message += (f"; {ref} was not tagged (the tag still names what it named before; the image is in "
                            f"the registry as {top.digest}, without its SBOM)")
            raise
        registry.set_tag(ref, dxf, data)
    return top, pushed


def tag_for(subject: str) -> str:
    """The referrers tag of a subject digest: sha256:<hex> -> sha256-<hex>."""
    return subject.replace(":", "-", 1)


def _add_to_tag(dxf: Any, ref: registry.Reference, artifact: oci.Artifact, login: Any) -> str:
    """Add the artifact to the index the subject's referrers tag names (an empty one if none), keeping what it
    already lists."""
    tag = tag_for(artifact.subject.digest)
    listed = _tag_index(dxf, ref, tag)
    if all(d.get("digest") != artifact.descriptor.digest for d in listed):
        listed.append(artifact.descriptor.to_json())
        data = oci.canonical_json({"schemaVersion": 2, "mediaType": oci.MEDIA_INDEX, "manifests": listed})
        with registry.talking(ref, f"updating the referrers tag {tag}", login):
            dxf.set_manifest(tag, data.decode())
    return f"tag {tag}"


def _tag_index(dxf: Any, ref: registry.Reference, tag: str) -> list[dict[str, Any]]:
    """The descriptors the referrers tag's index lists; none where there is no such tag, or where it names
    something other than an index (the spec's fallback then starts a new one)."""
    import requests

    try:
        found, _, _ = registry.get_manifest(dxf, ref, tag)
    except registry.RegistryError as exc:
        cause = exc.__cause__
        if isinstance(cause, requests.HTTPError) and cause.response is not None and cause.response.status_code == 404:
            return []
        raise
    if found.get("mediaType") != oci.MEDIA_INDEX:
        return []
    return _listed(found, f"{ref.registry}'s referrers tag {tag}")


def _listed(index: dict[str, Any], what: str) -> list[dict[str, Any]]:
    """An index's manifests, each a checked descriptor (as JSON, to list again)."""
    manifests = index.get("manifests", [])
    if not isinstance(manifests, list):
        raise ToolkitError(f"{what}: its manifests are not an array")
    return [oci.Descriptor.checked(d, f"{what}: manifests[{i}]").to_json() for i, d in enumerate(manifests)]


# --- reading them back ---------------------------------------------------------------------------------------

def fetch(ref: registry.Reference, dxf: Any, artifact_type: str) -> list[tuple[str, oci.Artifact]]:
    """(platform, artifact) for each artifact of that type referring to a platform manifest of ref. Every answer
    is read within the session's limits and checked: digests, JSON, the types of the fields read."""
    out = []
    with dxf:
        top, body, digest = registry.get_manifest(dxf, ref, ref.tag)
        if top.get("mediaType") == oci.MEDIA_INDEX:
            manifests = [oci.Descriptor.from_json(d) for d in _listed(top, f"{ref.registry}'s index for {ref}")]
        else:
            manifests = [oci.Descriptor(oci.MEDIA_MANIFEST, digest, len(body))]
        if len(manifests) > MAX_MANIFESTS:
            raise registry.RegistryError(f"{ref.registry}'s index for {ref} lists {len(manifests):,} manifests, more "
                                         f"than the {MAX_MANIFESTS} an image has platforms")
        for manifest in manifests:
            if manifest.artifact_type:
                continue
            wanted = [d for d in _referrers(dxf, ref, manifest.digest) if d.get("artifactType") == artifact_type]
            if len(wanted) > MAX_SBOMS:
                raise registry.RegistryError(f"{ref.registry} lists {len(wanted):,} SBOMs for {manifest.digest[:19]}, "
                                             f"more than the {MAX_SBOMS} read back for one image")
            for desc in wanted:
                _, data, _ = registry.get_manifest(dxf, ref, desc["digest"])
                artifact = oci.artifact_from(data, lambda d: registry.pull_blob(dxf, ref, d, read.MAX_BYTES))
                out.append((_platform(manifest), artifact))
    return out


def _platform(manifest: oci.Descriptor) -> str:
    plat = manifest.platform or {}
    return "/".join(p for p in (plat.get("os"), plat.get("architecture"), plat.get("variant")) if p)


def _referrers(dxf: Any, ref: registry.Reference, digest: str) -> list[dict[str, Any]]:
    """The referrers API's answer, else the referrers tag's index (a 404 means the registry has no such API)."""
    import requests

    from .. import net

    what = f"the referrers of {digest[:19]}"
    try:
        with registry.talking(ref, f"reading {what}", getattr(dxf, "login", None)):
            answer = dxf._request("get", f"referrers/{digest}", headers={"Accept": oci.MEDIA_INDEX}, stream=True)
            data = net.body(answer)
    except registry.RegistryError as exc:
        cause = exc.__cause__
        if not (isinstance(cause, requests.HTTPError) and cause.response is not None
                and cause.response.status_code in (404, 405)):
            raise
        return _tag_index(dxf, ref, tag_for(digest))
    return _listed(oci.json_object(data, f"{ref.registry}'s answer for {what}"), f"{ref.registry}'s {what}")
