"""The build image for the container toolchain: its Dockerfile text, a content-hash tag, and ensure()."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from typing import Any

from .. import files, targets

log = logging.getLogger(__name__)

DEFAULT_BASE = "ubuntu:24.04"
REPOSITORY = "fromscratch/builder"
SRC_DIR = "/src"
OUT_DIR = "/out"
_NATIVE_PACKAGES = ("gcc", "libc6-dev", "binutils")


@dataclass(frozen=True)
class BuildImage:
    """What goes into a build image; its tag is a hash of exactly that, so a changed input is a new image."""

    base: str
    packages: tuple[str, ...]

    @property
    def dockerfile(self) -> str:
        pkgs = " ".join(self.packages)
        return (
            f"FROM {self.base}\n"
            "ENV DEBIAN_FRONTEND=noninteractive\n"
            "RUN apt-get update \\\n"
            f" && apt-get install -y --no-install-recommends {pkgs} \\\n"
            " && rm -rf /var/lib/apt/lists/*\n"
            f"RUN mkdir -p {SRC_DIR} {OUT_DIR}\n"
            f"WORKDIR {SRC_DIR}\n"
        )

    def serves(self, target: targets.Target, host_arch: str) -> bool:
        """True when this image has a gcc for target (its own for the host's architecture)."""
        return target.architecture == host_arch or all(p in self.packages for p in target.packages)

    @property
    def tag(self) -> str:
        import hashlib  # here, not at the top: every task imports this module, few need a tag (OpenSSL ~2 ms)

        digest = hashlib.sha256(self.dockerfile.encode()).hexdigest()[:16]
        return f"{REPOSITORY}:{digest}"


def for_targets(base: str, wanted: list[targets.Target], host_arch: str) -> BuildImage:
    """The build image for these targets: the image's own gcc for its own architecture, cross gcc for the rest.

    With any foreign target it carries every target's cross compiler, so one image serves them all.
    """
    packages = list(_NATIVE_PACKAGES)
    if any(t.architecture != host_arch for t in wanted):
        for t in targets.TARGETS:
            if t.architecture != host_arch:
                packages += [p for p in t.packages if p not in packages]
    return BuildImage(base, tuple(packages))


def ensure(client: Any, image: BuildImage) -> str:
    """Build the image unless an image with its tag exists; returns the tag. A warm call pays no apt-get.

    One process at a time builds a given image (a machine-wide lock); one that waited finds it made. A build
    that does not finish (an error, Ctrl-C, the engine going away) leaves no half-built image behind.
    """
    from ..engine import client as engine  # here, not at the top: the CLI imports this module and must start fast

    if engine.image_exists(client, image.tag):
        log.info("build image %s is ready", image.tag)
        return image.tag
    if not engine.image_exists(client, image.base):
        from ..errors import InputError

        raise InputError(f"the build image's base {image.base} is not in the engine and cannot be built on",
                         hint=f"pull it (docker pull {image.base}), or make one with "
                              "`invoke rootfs --suite bookworm --tag fromscratch/debian:bookworm` and pass "
                              "--builder-base fromscratch/debian:bookworm")
    with files.exclusive(image.tag.replace("/", "_").replace(":", "_"),
                         waiting=f"waiting for another fromscratch process that is building {image.tag}"):
        if engine.image_exists(client, image.tag):
            log.info("build image %s was made by another process", image.tag)
            return image.tag
        _build(client, image)
    return image.tag


def _context(image: BuildImage) -> io.BytesIO:
    import tarfile

    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        data = image.dockerfile.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    return context


def _build(client: Any, image: BuildImage) -> None:
    from ..engine import build as dockerbuild
    from ..engine import client as engine

    log.warning("building %s from %s (first use; later builds reuse it)", image.tag, image.base)
    dockerbuild.build(client, _context(image), image.tag,
                      {**engine.labels("builder"), "org.fromscratch.base": image.base},
                      what=f"building the build image {image.tag}",
                      hint="the build image installs gcc with apt-get: is the package archive reachable from "
                           "containers?")
