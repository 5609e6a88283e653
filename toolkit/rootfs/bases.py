"""The Debian base images build images stand on, named by suite and architecture (fromscratch/debian:trixie for
this machine's own, fromscratch/debian:bookworm-s390x for an emulated build's): made on first use with debootstrap
(under QEMU for a foreign architecture), kept in the engine and as a tarball in the user's cache, from which an
engine that lost the image gets it back in seconds instead of a debootstrap's minutes."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

from .. import command, files, targets
from ..errors import BuildFailed

if TYPE_CHECKING:
    from ..engine.client import Client

log = logging.getLogger(__name__)

REPOSITORY = "fromscratch/debian"
_TAG = re.compile(r"fromscratch/debian:([a-z][a-z0-9-]{0,40}?)(?:-([a-z0-9]{2,20}))?")


def tag(suite: str, target: targets.Target | None = None) -> str:
    """The base image of suite for target (None: the build machine's own, named by the suite alone)."""
    return f"{REPOSITORY}:{suite}" + (f"-{target.debian_arch}" if target is not None else "")


def parse(name: str) -> tuple[str, targets.Target | None] | None:
    """(suite, target) of a name tag() makes; None for any other image."""
    found = _TAG.fullmatch(name)
    if found is None:
        return None
    suite, arch = found.group(1), found.group(2)
    if arch is None:
        return suite, None
    known = [t for t in targets.TARGETS if t.debian_arch == arch]
    return (suite, known[0]) if known else None


def cached_tarball(suite: str, target: targets.Target) -> Path:
    return files.cache_dir() / "rootfs" / f"{suite}-{target.debian_arch}.tar"


def ensure(client: Client, name: str) -> bool:
    """Make the base image name (one tag() makes) unless the engine has it: from the cached tarball, else with
    debootstrap (root only), which also writes the tarball. False: name is not one of ours (nothing done)."""
    from ..engine import client as engine

    parsed = parse(name)
    if parsed is None:
        return False
    suite, target = parsed
    machine = target or targets.host()
    with files.exclusive(name.replace("/", "_").replace(":", "_"),
                         waiting=f"waiting for another fromscratch process that is making {name}"):
        if engine.image_exists(client, name):
            return True
        _make(client, name, suite, machine)
    return True


def _make(client: Client, name: str, suite: str, target: targets.Target) -> None:
    import time

    from ..progress import Progress
    from . import debootstrap as rfs

    cached = cached_tarball(suite, target)
    started = time.monotonic()
    if cached.is_file():
        log.warning("loading the base image %s from %s", name, cached)
        rfs.import_path(cached, client=client, tag=name, want=target, allow_devices=False, progress=Progress())
        return
    how = "under QEMU" if not target.runs_natively_on(targets.host()) else "natively"
    log.warning("making the base image %s: debootstrap %s for %s %s (once; kept in the engine and in %s)", name,
                suite, target.debian_arch, how, cached)
    req = rfs.Request.make(suite, None, "minbase", target.name)
    try:
        rfs.build(req, client=client, tag=name, out=cached, progress=Progress())
    except BuildFailed as exc:
        by_hand = command.line(f"rootfs --suite {suite} --arch {target.name} --tag {name}")
        raise BuildFailed(f"making the base image {name} failed: {exc.message}",
                          hint=exc.hint or f"make it with `{by_hand}`", log=exc.log) from None
    log.warning("made the base image %s in %.0f s", name, time.monotonic() - started)


class DebianBases:
    """compile/emulated.BaseImages over this module and the host's mirror."""

    def tag(self, suite: str, target: targets.Target | None = None) -> str:
        return tag(suite, target)

    def ensure(self, client: Client, name: str) -> bool:
        return ensure(client, name)

    def architectures(self, suite: str) -> tuple[str, ...]:
        from . import mirror

        return mirror.release(mirror.host_mirror(), suite).architectures
