"""The zig toolchain: `zig cc` (`zig c++`) from the ziglang package on PyPI, for every target: static musl, no
Docker and no cross packages; the build runs in a temporary copy on this host."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from .. import files, targets
from ..engine.limits import DEFAULT_LIMITS, Limits
from ..errors import BuildFailed
from . import cross, plan
from .toolchain import run_here

log = logging.getLogger(__name__)


class Zig:
    name = "zig"
    libc = "musl"

    def __init__(self, limits: Limits = DEFAULT_LIMITS, python: str = sys.executable) -> None:
        self.limits = limits
        self._python = python

    def missing(self, job: plan.Plan, wanted: Sequence[targets.Target]) -> str | None:
        return None if importlib.util.find_spec("ziglang") is not None else "ziglang"

    def prepare(self, job: plan.Plan, wanted: Sequence[targets.Target]) -> None:
        if self.missing(job, wanted):
            raise BuildFailed("the zig toolchain needs the ziglang package, which is not installed",
                              hint="pip install 'fromscratch[zig]' (or pip install ziglang)")

    @contextlib.contextmanager
    def run(self, job: plan.Plan, target: targets.Target, skip: Callable[[str], bool]) -> Iterator[Path]:
        with first_build(target), \
                run_here(job, target, cross.zig(target, targets.host(), self._python), self.limits, skip) as work:
            yield work


@contextlib.contextmanager
def first_build(target: targets.Target) -> Iterator[None]:
    """Say so before zig's first build for a target, which compiles musl and its runtime into zig's cache (about a
    minute, without a word from zig); a build that succeeds leaves a note that the next one needs no saying.
    The note is kept per zig (where it is installed, its version), per zig cache and per target."""
    from importlib import metadata  # ~30 ms to import: only a zig build needs it

    spec = importlib.util.find_spec("ziglang")
    try:
        version = metadata.version("ziglang")
    except metadata.PackageNotFoundError:
        version = "?"
    zig_cache = os.environ.get("ZIG_GLOBAL_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "zig")
    key = "\n".join([str(spec.origin if spec else ""), version, zig_cache, target.zig, target.zig_cpu or ""])
    note = files.cache_dir() / "zig-built" / hashlib.sha256(key.encode()).hexdigest()[:16]
    if not note.exists():
        log.warning("zig: the first build for %s compiles musl and its runtime into zig's cache (about a minute, "
                    "once)", target.name)
    yield
    with contextlib.suppress(OSError):
        note.parent.mkdir(parents=True, exist_ok=True)
        note.write_text(f"{target.zig} {target.zig_cpu or ''} with ziglang {version}\n")
