"""What every benchmark shares: a scratch directory, the `invoke` command line, the engine, image tags, the tree."""

from __future__ import annotations

import functools
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import DEFAULT_BUILDER_BASE, REPO
from .harness import Probe, Row, Sample, Skip, Stat, Target, measure

log = logging.getLogger(__name__)

HELLO_C = REPO / "csrc" / "hello.c"
TREE_IMAGE = DEFAULT_BUILDER_BASE  # `invoke rootfs` made it from a debootstrap'd bookworm minbase


def default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fromscratch" / "bench"


@dataclass
class Bench:
    """One bench run. Fast commands get `runs` timed runs after a warm-up; slow ones get `slow_runs`."""

    work: Path
    quick: bool
    builder_base: str = DEFAULT_BUILDER_BASE
    tree_path: Path | None = None
    cache: Path = field(default_factory=default_cache)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    _tags: set[str] = field(default_factory=set)
    _help: dict[str, str] = field(default_factory=dict)

    @property
    def runs(self) -> int:
        return 3 if self.quick else 9

    @property
    def slow_runs(self) -> int:
        return 1 if self.quick else 3

    # --- commands -----------------------------------------------------------------------------------

    def invoke(self, *args: str) -> list[str]:
        """`invoke ARGS` against this checkout, exactly as a user runs it (a new Python process each time)."""
        return [sys.executable, "-m", "invoke", "--search-root", str(REPO), *args]

    @staticmethod
    def shown(*args: str) -> str:
        return "invoke " + shlex.join(args)

    def compare(self, name: str, ours: Probe, peer: Probe, target: Target | None = None, note: str = "",
                slow: bool = False, memory: bool = False, cpu: bool = False) -> Row:
        """Measure ours and the peer in the same loop and make their row."""
        o, p = self.measure([ours, peer], slow, memory)
        return self.row(name, ours, o, peer, p, target, note, memory, cpu)

    def measure(self, probes: Sequence[Probe], slow: bool = False, memory: bool = False,
                warm: bool = False, runs: int | None = None) -> list[list[Sample]]:
        """warm: a warm-up run even for a slow row under --quick (reading a tree cold is another benchmark);
        runs: timed runs for a full bench when the row's own default does not fit it."""
        if runs is None or self.quick:
            runs = self.slow_runs if slow else self.runs
        warmup = 0 if slow and self.quick and not warm else 1
        return measure(probes, runs, warmup, memory)

    @staticmethod
    def row(name: str, ours: Probe, o: Sequence[Sample], peer: Probe, p: Sequence[Sample],
            target: Target | None = None, note: str = "", memory: bool = False, cpu: bool = False) -> Row:
        """cpu: also note CPU time, which other jobs on a shared machine disturb less than wall time; only
        for rows that do not hand their work to the engine, whose CPU time no child's figure includes."""
        stat = Stat.peak if memory else Stat.wall
        if cpu:
            spent = f"CPU time (user + system, median): ours {Stat.cpu(o).show()}, peer {Stat.cpu(p).show()}"
            note = f"{spent}; {note}" if note else spent
        return Row(name, stat(o), stat(p), ours.label, peer.label, target, note)

    def output(self, argv: Sequence[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, timeout=3600)

    def must(self, argv: Sequence[str], cwd: Path | None = None) -> str:
        """Run a preparation step (not measured); its failure stops this benchmark with its message."""
        from .harness import CommandFailed

        proc = self.output(argv, cwd)
        if proc.returncode != 0:
            tail = " ".join((proc.stderr + proc.stdout).split())[-300:]
            raise CommandFailed(f"`{shlex.join(map(str, argv))}` exited {proc.returncode}: {tail}")
        return proc.stdout

    # --- what main has: the bench measures a feature only once it has landed -------------------------

    def task_help(self, task: str) -> str:
        if task not in self._help:
            proc = self.output(self.invoke("--help", task))
            self._help[task] = proc.stdout if proc.returncode == 0 else ""
        return self._help[task]

    def has_flag(self, task: str, flag: str) -> bool:
        return re.search(rf"(^|[\s,]){re.escape(flag)}([=\s,]|$)", self.task_help(task), re.M) is not None

    def require_flag(self, task: str, flag: str, issue: int) -> None:
        if not self.has_flag(task, flag):
            raise Skip(f"`invoke {task} {flag}` is not on main yet (issue {issue})")

    def full_only(self, why: str) -> None:
        """Keep --quick under two minutes: rows that cannot fit in it run in full runs only, and say so."""
        if self.quick:
            raise Skip(f"full runs only ({why}); --quick keeps under two minutes")

    # --- the engine ---------------------------------------------------------------------------------

    @functools.cached_property
    def client(self) -> Any:
        from toolkit.engine import client as engine
        from toolkit.errors import EngineUnavailable

        try:
            return engine.connect()
        except EngineUnavailable as exc:
            raise Skip(f"no Docker engine answers ({exc.message})") from None

    def tag(self, kind: str, i: int | str = 0, remember: bool = True) -> str:
        """A fresh image name; remembered ones are removed at the end even if a run was cut short."""
        tag = f"fromscratch-bench-{self.run_id}-{kind}-{i}:latest"
        if remember:
            self._tags.add(tag)
        return tag

    def remove_image(self, tag: str) -> None:
        """Untag one of ours; an image another tag still names (a deterministic twin) stays."""
        from docker.errors import DockerException

        try:
            self.client.images.remove(tag)
        except DockerException:
            pass
        self._tags.discard(tag)

    def image_size(self, tag: str) -> int:
        return int(self.client.images.get(tag).attrs["Size"])

    def cleanup(self) -> None:
        if "client" not in self.__dict__:
            return
        for tag in sorted(self._tags):
            self.remove_image(tag)

    def image_exists(self, ref: str) -> bool:
        from toolkit.engine import client as engine

        return bool(engine.image_exists(self.client, ref))

    @functools.cached_property
    def host_arch(self) -> str:
        """The engine's own architecture (OCI name): the build image's gcc builds for it without a cross layer."""
        from toolkit import targets

        return targets.lookup(self.client.version().get("Arch", "amd64")).architecture

    def builder_warm(self, arch: str | None = None) -> bool:
        """Whether the build image the container toolchain would use for arch is already in the engine: the top
        layer of its chain (layers are built bottom first)."""
        from toolkit import targets
        from toolkit.compile import buildimage as builder

        target = targets.lookup(arch) if arch else targets.host()
        base_id = builder.base_image_id(self.client, self.builder_base)
        return self.image_exists(builder.chain(self.builder_base, target, self.host_arch, base_id=base_id)[-1].tag)

    def fresh_base(self, image: str, kind: str, i: int) -> str:
        """image under a new id, one of ours: the same files, plus a label unique to this run. A build on it finds
        no cache (the engine's build cache is keyed on the parent's id) and touches no image anyone else uses."""
        import io

        tag = self.tag(kind, i)
        dockerfile = f"FROM {image}\nLABEL org.fromscratch.bench={self.run_id}-{kind}-{i}\n"
        self.client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True, pull=False)
        return tag

    def remember(self, tag: str) -> None:
        """An image a run makes under a name it does not choose (a build image's hash tag): removed at the end
        like our own tags, should the run be cut short before it removes the image itself."""
        self._tags.add(tag)

    def require_builder_base(self) -> None:
        if not self.image_exists(self.builder_base):
            raise Skip(f"the build container's base {self.builder_base} is not in the engine "
                       f"(make it: invoke rootfs --suite bookworm --tag {self.builder_base})")

    # --- inputs ---------------------------------------------------------------------------------------

    @functools.cached_property
    def hello(self) -> Path:
        """./hello as `invoke build-hello` makes it, built once for every row that needs a binary."""
        out = self.work / "hello"
        self.must(self.invoke("build-hello", "--out", str(out)))
        return out

    @functools.cached_property
    def tree(self) -> Path:
        """A Debian bookworm minbase tree: --tree, else one cached from an earlier run, else made now."""
        if self.tree_path is not None:
            return self.tree_path
        tree = self.cache / "bookworm-minbase"
        if tree.is_dir():
            return tree
        partial = self.cache / f"bookworm-minbase.partial-{self.run_id}"
        try:
            partial.mkdir(parents=True)
            self._export(TREE_IMAGE if self.image_exists(TREE_IMAGE) else self._bootstrapped(), partial)
            os.replace(partial, tree)
        finally:
            if partial.exists():
                shutil.rmtree(partial, ignore_errors=True)
        return tree

    def _export(self, image: str, dest: Path) -> None:
        """The image's file system, unpacked: the same files a debootstrap gave `invoke rootfs`."""
        from toolkit.engine import container as containers

        log.warning("bench: unpacking %s into %s (once; later runs reuse it)", image, dest)
        with containers.created(self.client, "bench", image) as container:
            self.must(["sh", "-c", f"docker export {container.id} | tar -C {shlex.quote(str(dest))} -xf -"])
        # what the engine adds to every container's file system, and a debootstrap'd tree does not have
        (dest / ".dockerenv").unlink(missing_ok=True)
        for mounted in (dest / "dev").iterdir():
            if mounted.is_dir() and not mounted.is_symlink():
                shutil.rmtree(mounted)
            else:
                mounted.unlink()

    def _bootstrapped(self) -> str:
        """No such image here: `invoke rootfs` makes one (debootstrap, about a minute; needs root)."""
        tag = self.tag("tree")
        log.warning("bench: %s is not in the engine; making %s with invoke rootfs", TREE_IMAGE, tag)
        self.must(self.invoke("rootfs", "--suite", "bookworm", "--tag", tag))
        return tag
