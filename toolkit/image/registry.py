"""Pushing an image to a registry: blobs, then each platform's manifest by digest, then the tag.

The HTTP side is python-dxf's (a maintained Docker registry v2 client that streams blob uploads, sends
manifest bytes unchanged with their own media type, and speaks HTTP to insecure registries); registry
errors are translated into ours here and only here.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError, ToolkitError
from . import oci

log = logging.getLogger(__name__)

DOCKER_HUB = "registry-1.docker.io"
_LOOPBACK = ("localhost", "127.", "[::1]")


class RegistryError(ToolkitError):
    """The registry could not be reached, or refused a request."""


@dataclass(frozen=True)
class Reference:
    registry: str  # host[:port]
    repository: str
    tag: str

    def __str__(self) -> str:
        return f"{self.registry}/{self.repository}:{self.tag}"

    @property
    def loopback(self) -> bool:
        return self.registry.startswith(_LOOPBACK)


def parse_reference(text: str) -> Reference:
    """REGISTRY/NAME[:TAG] as docker reads it: a first part with '.' or ':' (or localhost) names the registry."""
    text = text.strip()
    if "@" in text:
        raise InputError(f"--tag {text!r}: push by digest is not supported", hint="give REGISTRY/NAME[:TAG]")
    first, _, rest = text.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, rest
    else:
        registry, path = DOCKER_HUB, text if "/" in text else f"library/{text}"
    last = path.rsplit("/", 1)[-1]
    name, tag = (path.rsplit(":", 1) if ":" in last else (path, "latest"))
    if not name or not tag:
        raise InputError(f"--tag {text!r} is not REGISTRY/NAME[:TAG]", hint="e.g. localhost:5000/hello:1.0")
    return Reference(registry, name, tag)


def _credentials(registry: str) -> tuple[str, str] | None:
    """A login that `docker login` saved in ~/.docker/config.json (plain auths only, not credential helpers)."""
    config = Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker")) / "config.json"
    try:
        auths = json.loads(config.read_text()).get("auths", {})
    except (OSError, ValueError):
        return None
    for key in (registry, f"https://{registry}", f"http://{registry}",
                *(("https://index.docker.io/v1/",) if registry == DOCKER_HUB else ())):
        auth = auths.get(key, {}).get("auth")
        if auth:
            user, _, password = base64.b64decode(auth).decode().partition(":")
            return user, password
    return None


@contextlib.contextmanager
def _talking(ref: Reference, what: str) -> Iterator[None]:
    import requests
    from dxf.exceptions import DXFUnauthorizedError

    try:
        yield
    except DXFUnauthorizedError as exc:
        raise RegistryError(f"{what}: {ref.registry} asks for credentials",
                            hint=f"docker login {ref.registry}") from exc
    except requests.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        body = (exc.response.text if exc.response is not None else "").strip().replace("\n", " ")[:200]
        raise RegistryError(f"{what}: {ref.registry} answered {status} {body}".rstrip()) from exc
    except requests.RequestException as exc:
        raise RegistryError(f"{what}: no registry answered at {ref.registry} ({type(exc).__name__})",
                            hint="is the registry running, and is the host:port right?") from exc


def client(ref: Reference, insecure: bool | None = None) -> Any:
    """A dxf.DXF for the repository; plain HTTP for loopback registries (as docker allows) or when asked."""
    from dxf import DXF

    creds = _credentials(ref.registry)

    def auth(dxf: Any, response: Any) -> None:
        if creds is None:
            from dxf.exceptions import DXFUnauthorizedError

            raise DXFUnauthorizedError()
        dxf.authenticate(creds[0], creds[1], response=response)

    use_http = ref.loopback if insecure is None else insecure
    return DXF(ref.registry, ref.repository, auth=auth, insecure=use_http, timeout=300)


def push(images: list[oci.Image], ref: Reference, dxf: Any | None = None) -> oci.Descriptor:
    """Push every blob, each platform's manifest (by digest) and then the tag; returns what the tag names."""
    dxf = dxf or client(ref)
    for desc, source in oci.blobs(images):
        if desc.media_type in (oci.MEDIA_MANIFEST, oci.MEDIA_INDEX):
            continue
        with _talking(ref, f"uploading blob {desc.digest[:19]}"):
            dxf.push_blob(data=oci.blob_chunks(source, desc.size), digest=desc.digest)
        log.info("pushed blob %s (%d bytes)", desc.digest, desc.size)
    if len(images) == 1:
        top, data = images[0].manifest_desc, images[0].manifest
    else:
        for image in images:
            with _talking(ref, f"uploading the {image.platform} manifest"):
                dxf.set_manifest(image.manifest_desc.digest, image.manifest.decode())
        data, top = oci.image_index(images)
    with _talking(ref, f"tagging {ref}"):
        dxf.set_manifest(ref.tag, data.decode())
    return top
