"""The fallback of a --debian build whose Build-Depends apt cannot install for a foreign target (its cross
build-dep is unsatisfiable): the same plan built inside a container of the target's own architecture, under QEMU,
with the target's native gcc, over a base image debootstrapped for it (rootfs/bases.py). Here: when to fall back,
what apt said, and how much slower the emulated build was than the package's cross builds."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .. import files, targets
from ..errors import BuildFailed
from .buildimage import BuildImage, ImageFailed

log = logging.getLogger(__name__)


class BaseImages(Protocol):
    """The Debian base images builds stand on, by suite and architecture: what the wing that knows Debian
    (debian/build.py, with rootfs/bases.py) gives the container toolchain, which then can fall back."""

    def tag(self, suite: str, target: targets.Target | None = None) -> str:
        """The base image of suite for target (None: the build machine's own)."""

    def ensure(self, client: Any, name: str) -> bool:
        """Make name (one tag() gives) unless the engine has it; False: name is not one of these."""

    def architectures(self, suite: str) -> tuple[str, ...]:
        """The dpkg architectures suite's archive carries (its signed Release says)."""

# The label an emulated build image's build-dep layer carries: why the cross build-dep failed, said again when the
# image is reused (the cross layer is not tried again while an emulated image stands in for it)
REASON_LABEL = "org.fromscratch.cross-build-dep-failed"
# apt's words for a request it cannot satisfy; a failure without them (the archive unreachable, a full disk) is
# not one an emulated build would get past
_UNSATISFIABLE = re.compile(r"unmet dependencies|Unable to correct problems|Unable to satisfy|"
                            r"has no installation candidate|Unable to locate package|is not installable")
_REASON = re.compile(r"^\s*(\S+ : Depends: .+|Package \S+ has no installation candidate.*|"
                     r"E: Unable to locate package .+|E: Unable to satisfy .+)$")
_ESCAPES = re.compile(r"\x1b\[[0-9;]*m")
_MAX_REASON = 300


def apt_reason(log_text: str) -> str | None:
    """What apt said made a request impossible, in one line; None when it failed for another reason."""
    text = _ESCAPES.sub("", log_text)
    if not _UNSATISFIABLE.search(text):
        return None
    said = [m.group(1).strip() for line in text.splitlines() if (m := _REASON.match(line))]
    reason = "; ".join(dict.fromkeys(said)) or "apt found its Build-Depends unsatisfiable"
    return reason if len(reason) <= _MAX_REASON else reason[:_MAX_REASON - 3] + "..."


def falls_back(layer: BuildImage, failed: BuildFailed) -> str | None:
    """apt's reason when the layer that failed is a cross build-dep (the Build-Depends of a source package for a
    foreign architecture) and apt found them unsatisfiable: then an emulated build may get them. None: it may not
    (a native build-dep failed, another layer did, or apt failed for want of the archive)."""
    if not layer.build_dep or not layer.build_arch:
        return None
    return apt_reason(failed.log)


def falling_back(target: targets.Target, reason: str) -> str:
    """The one line that says a target's build goes into an emulated container, and why."""
    return (f"cross build-dep failed for {target.name} ({reason}): building inside an emulated {target.debian_arch} "
            "container")


def arch_lacking(suite: str, architectures: tuple[str, ...], target: targets.Target) -> ImageFailed | None:
    """The one-line failure of a target whose architecture suite does not carry (Debian bookworm has no riscv64);
    None when it does (or the suite's Release names none)."""
    if not architectures or target.debian_arch in architectures:
        return None
    since = f" ({target.debian_arch} is an official Debian architecture from {target.debian_since} on)" \
        if target.debian_since else ""
    hint = f"--suite {target.debian_since}" if target.debian_since else "a suite that has it (--suite SUITE)"
    return ImageFailed(f"Debian {suite} has no {target.debian_arch} packages, so the Build-Depends cannot be "
                       f"installed for {target.name}, cross or emulated{since}",
                       hint=f"build it from {hint}; {suite} has {', '.join(architectures)}")


@dataclass(frozen=True)
class Compared:
    """An emulated build's time beside the package's cross build's, when one is known."""

    target: targets.Target
    seconds: float
    cross: tuple[str, float] | None  # (target name, seconds) of a cross build of the same package

    def line(self, package: str) -> str:
        said = (f"{package} for {self.target.name}: built inside an emulated {self.target.debian_arch} container "
                f"in {self.seconds:.0f} s")
        if self.cross is None:
            return f"{said} (no cross build of {package} to compare with yet)"
        other, seconds = self.cross
        ratio = self.seconds / max(seconds, 0.5)
        return f"{said}, {ratio:.1f}x the {seconds:.0f} s of its cross build for {other}"


class Timings:
    """How long the build step of each --debian package took, by target and how it ran ("cross", "emulated",
    "native"): kept in the user's cache (a small JSON file), so that an emulated build can say how much slower it
    was than the package's cross builds, in this run or an earlier one."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or files.cache_dir() / "build-times.json"
        self._lock = threading.Lock()

    def _read(self) -> dict[str, dict[str, dict[str, float]]]:
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(self.path.read_text())
            if isinstance(data, dict):
                return data
        return {}

    def record(self, package: str, target: targets.Target, how: str, seconds: float) -> None:
        with self._lock:
            data = self._read()
            data.setdefault(package, {}).setdefault(how, {})[target.name] = round(seconds, 1)
            files.keep(self.path, json.dumps(data, sort_keys=True, indent=1) + "\n")  # a figure for a message

    def cross(self, package: str) -> tuple[str, float] | None:
        """The typical cross build of package on record (target name, seconds), None if there is none."""
        return typical(self._read().get(package, {}).get("cross", {}))


def typical(times: Mapping[str, float]) -> tuple[str, float] | None:
    """The median of a package's cross build times (the lower middle one of an even count), with its target."""
    valid = sorted(((float(s), name) for name, s in times.items() if isinstance(s, (int, float)) and s > 0))
    if not valid:
        return None
    seconds, name = valid[(len(valid) - 1) // 2]
    return name, seconds
