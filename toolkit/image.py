"""A FROM scratch image from a verified binary: the binary is checked first, then written as one layer."""

from __future__ import annotations

import contextlib
import logging
import shlex
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import elf, engine, oci, targets, verify
from .errors import InputError, VerifyFailed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Built:
    tag: str
    image: oci.Image
    verdict: verify.Verdict


def normalize_tag(tag: str) -> str:
    """name -> name:latest; a tag that the engine could not accept is refused here, before any work."""
    import re

    tag = tag.strip()
    ref = r"^[a-z0-9]+([._-]+[a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-]+[a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$"
    if not tag or not re.match(ref, tag):
        raise InputError(f"--tag {tag!r} is not a valid image name",
                         hint="lowercase letters, digits, . _ - and /, then an optional :tag, e.g. hello:1.0")
    last = tag.rsplit("/", 1)[-1]
    return tag if ":" in last else f"{tag}:latest"


def parse_cmd(text: str | None, default: list[str]) -> tuple[str, ...]:
    """--cmd as a shell-like string -> exec form (scratch has no /bin/sh for a shell form)."""
    if text is None:
        return tuple(default)
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise InputError(f"--cmd {text!r} does not parse ({exc})") from None
    if not words:
        raise InputError("--cmd is empty", hint="give the program to run, e.g. --cmd /hello")
    return tuple(words)


def checked(binary: Path, arch: str | None = None) -> verify.Verdict:
    """Verify binary for a scratch image; a failing binary is refused with verify's reasons."""
    verdict = verify.verify(elf.read(str(binary)), arch)
    if not verdict.ok:
        raise VerifyFailed(f"{binary} cannot run in a FROM scratch image: " + "; ".join(verdict.failures),
                           reasons=verdict.failures, hint=f"see `invoke verify {binary}`")
    return verdict


def platform_of(verdict: verify.Verdict, arch: str | None = None) -> oci.ImageConfig:
    facts = verdict.facts
    if arch:
        target = targets.lookup(arch)
    else:
        matches = targets.for_elf(facts.elf_class or 0, facts.endianness or "", facts.machine or "")
        # ARM headers do not say the variant; v7 is what `docker run --platform linux/arm` means.
        target = next((t for t in matches if t.variant == "v7"), matches[0])
    return oci.ImageConfig(architecture=target.architecture, variant=target.variant)


@contextlib.contextmanager
def assemble(binary: Path, tag: str, cmd: str | None = None, arch: str | None = None,
             epoch: int = 0) -> Iterator[Built]:
    """Verify binary and write its one-layer image into a temporary directory that lives for the block."""
    verdict = checked(binary, arch)
    name = binary.name
    base = platform_of(verdict, arch)
    config = oci.ImageConfig(architecture=base.architecture, variant=base.variant,
                             cmd=parse_cmd(cmd, [f"/{name}"]))
    with tempfile.TemporaryDirectory(prefix="fromscratch-image-") as tmp:
        layer_path = Path(tmp) / "layer.tar"
        with open(layer_path, "wb") as fh:
            desc = oci.write_layer([oci.entry_for(binary, name, 0o755)], fh, epoch)
        image = oci.make_image([(desc, layer_path)], config, epoch,
                               created_by=f"fromscratch image: COPY {name} /{name}")
        yield Built(tag, image, verdict)


def load(client: Any, built: Built, workdir: Path | None = None) -> dict:
    """Load into the engine through `docker load`; returns the engine's view: id and size."""
    with tempfile.TemporaryDirectory(prefix="fromscratch-load-", dir=workdir) as tmp:
        archive = Path(tmp) / "image.tar"
        with open(archive, "wb") as fh:
            oci.write_archive([built.image], fh, repo_tags=[built.tag])
        with engine.step(f"loading {built.tag} into the engine"), open(archive, "rb") as fh:
            client.images.load(fh)
    with engine.step(f"inspecting {built.tag}"):
        attrs = client.images.get(built.tag).attrs
    return {"tag": built.tag, "id": attrs["Id"], "size": attrs.get("Size", built.image.size)}
