"""The measuring and the reporting: whole-process wall time and peak memory of commands, rows, the Markdown table."""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

MIB = 1 << 20


class Skip(Exception):
    """A benchmark that cannot run here; the message says why and lands in the table."""


class CommandFailed(Exception):
    """A measured command exited with a code it should not have: the figure would be meaningless."""


@dataclass(frozen=True)
class Sample:
    wall: float  # seconds, spawn to reap
    maxrss: int = 0  # bytes: peak resident set of the process or any child it waited for (when asked for)
    cpu: float = 0.0  # seconds of user + system time of the process and its children (not the engine's)


GNU_TIME = "/usr/bin/time"


def run_once(argv: Sequence[str], cwd: Path | None = None, ok: tuple[int, ...] = (0,),
             memory: bool = False) -> Sample:
    """Run argv to completion, output discarded, and measure it as a user's shell would (whole process).

    Peak memory comes from GNU time, a small C parent: a child spawned by this Python process starts with
    this process's own peak as its ru_maxrss (Linux carries the old high-water mark across exec), so neither
    wait4 nor RUSAGE_CHILDREN here could tell a 2 MiB readelf from the bench itself.
    """
    with tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile(mode="r") as rss:
        if memory:
            if not os.access(GNU_TIME, os.X_OK):
                raise CommandFailed(f"peak memory needs GNU time at {GNU_TIME} (Debian package `time`)")
            argv = [GNU_TIME, "-f", "%M", "-o", rss.name, *argv]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)  # sums of CPU time: their difference is exact
        start = time.perf_counter()
        proc = subprocess.run(list(argv), cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=err)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        if proc.returncode not in ok:
            err.seek(0)
            tail = " ".join(err.read().decode("utf-8", "replace").split())[-300:]
            shown = " ".join(map(str, argv[5:] if memory else argv))
            raise CommandFailed(f"`{shown}` exited {proc.returncode}: {tail}")
        kib = rss.read().split()[-1] if memory else "0"
    return Sample(wall, int(kib) * 1024, cpu)


@dataclass
class Probe:
    """One command to measure. argv may depend on the run number (a fresh image tag per run, say)."""

    label: str  # the command as the table shows it
    argv: Sequence[str] | Callable[[int], Sequence[str]]
    cwd: Path | None = None
    ok: tuple[int, ...] = (0,)
    after: Callable[[int], None] | None = None  # untimed clean-up after each run

    def run(self, i: int, memory: bool = False) -> Sample:
        argv = self.argv(i) if callable(self.argv) else self.argv
        try:
            return run_once(argv, self.cwd, self.ok, memory)
        finally:
            if self.after is not None:
                self.after(i)


def measure(probes: Sequence[Probe], runs: int, warmup: int = 1, memory: bool = False) -> list[list[Sample]]:
    """Samples per probe. Runs interleave (A B A B ...) so a busy neighbour slows every side alike."""
    samples: list[list[Sample]] = [[] for _ in probes]
    for i in range(warmup + runs):
        for probe, got in zip(probes, samples, strict=True):
            sample = probe.run(i, memory)
            if i >= warmup:
                got.append(sample)
    return samples


@dataclass(frozen=True)
class Stat:
    """Several values of one quantity: the table shows the median, with min and max beside it."""

    values: tuple[float, ...]
    unit: str  # "s", "MiB" or "B"

    @classmethod
    def wall(cls, samples: Sequence[Sample]) -> Stat:
        return cls(tuple(s.wall for s in samples), "s")

    @classmethod
    def cpu(cls, samples: Sequence[Sample]) -> Stat:
        return cls(tuple(s.cpu for s in samples), "s")

    @classmethod
    def peak(cls, samples: Sequence[Sample]) -> Stat:
        return cls(tuple(s.maxrss / MIB for s in samples), "MiB")

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def show(self, value: float | None = None) -> str:
        v = self.median if value is None else value
        if self.unit == "B":
            return f"{v:,.0f} B"
        if self.unit == "MiB":
            return f"{v:.1f} MiB"
        return f"{v:.3f} s" if v < 10 else f"{v:.1f} s"

    @property
    def spread(self) -> str:
        if len(self.values) < 2:
            return "—"
        return f"{self.show(min(self.values))} – {self.show(max(self.values))}"


@dataclass(frozen=True)
class Target:
    """A goal from an issue, checked on the median: either on ours ÷ peer or on our own figure."""

    text: str
    limit: float
    on: str = "ratio"  # "ratio", "ours", or "over" (ours less the peer)
    inclusive: bool = False

    def met(self, ours: Stat, ratio: float | None) -> bool | None:
        value = ratio if self.on == "ratio" else ours.median
        if self.on == "over":  # ours' median less the peer's
            value = None if not ratio else ours.median - ours.median / ratio
        if value is None:
            return None
        slack = self.limit * 1e-9  # 0.2 / 0.6 is "3x faster", floating point notwithstanding
        return value <= self.limit + slack if self.inclusive else value < self.limit


def faster_by(times: float) -> Target:
    return Target(f"≥ {times:g}x faster (ratio ≤ {1 / times:.2f})", 1 / times, inclusive=True)


def within(times: float) -> Target:
    return Target(f"within {times:g}x (ratio ≤ {times:g})", times, inclusive=True)


def faster() -> Target:
    return Target("faster (ratio < 1)", 1.0)


def smaller() -> Target:
    return Target("smaller (ratio < 1)", 1.0)


def over_peer_below(limit: float) -> Target:
    return Target(f"ours − peer ≤ {Stat((limit,), 's').show()}", limit, on="over", inclusive=True)


def ours_below(limit: float, unit: str) -> Target:
    return Target(f"ours < {Stat((limit,), unit).show()}", limit, on="ours")


@dataclass(frozen=True)
class Row:
    """One measurement: ours and the peer side by side, or the reason there is no figure."""

    name: str
    ours: Stat | None = None
    peer: Stat | None = None
    ours_cmd: str = ""
    peer_cmd: str = ""
    target: Target | None = None
    note: str = ""
    skipped: str = ""
    failed: str = ""

    @property
    def ratio(self) -> float | None:
        if self.ours is None or self.peer is None or self.peer.median == 0:
            return None
        return self.ours.median / self.peer.median

    @property
    def verdict(self) -> str:
        if self.failed:
            return "failed"
        if self.skipped:
            return "skipped"
        if self.target is None or self.ours is None:
            return "n/a"
        met = self.target.met(self.ours, self.ratio)
        return "n/a" if met is None else ("yes" if met else "no")


COLUMNS = ("#", "Measurement", "Ours (median)", "Ours min – max", "Peer (median)", "Peer min – max",
           "Ours ÷ peer", "Target", "Met")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(rows: Sequence[Row], machine: Sequence[tuple[str, str]], title: str, intro: str) -> str:
    """BENCHMARKS.md: the table, then per row the exact commands and notes, then the machine."""
    lines = [f"# {title}", "", intro, "", "| " + " | ".join(COLUMNS) + " |",
             "|" + "|".join("---" for _ in COLUMNS) + "|"]
    for n, row in enumerate(rows, 1):
        if row.skipped or row.failed:
            cells = [str(n), row.name, "—", "—", "—", "—", "—", row.target.text if row.target else "—",
                     f"{row.verdict}: {row.skipped or row.failed}"]
        else:
            ratio = row.ratio
            cells = [str(n), row.name,
                     row.ours.show() if row.ours else "—", row.ours.spread if row.ours else "—",
                     row.peer.show() if row.peer else "—", row.peer.spread if row.peer else "—",
                     f"{ratio:.2f}" if ratio is not None else "—",
                     row.target.text if row.target else "—", row.verdict]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    lines += ["", "## What each row runs", ""]
    for n, row in enumerate(rows, 1):
        parts = []
        if row.ours_cmd:
            parts.append(f"ours: `{row.ours_cmd}`")
        if row.peer_cmd:
            parts.append(f"peer: `{row.peer_cmd}`")
        if row.ours is not None and len(row.ours.values) > 1:
            parts.append(f"{len(row.ours.values)} runs each")
        if row.note:
            parts.append(row.note)
        lines.append(f"{n}. " + ("; ".join(parts) if parts else row.name))
    lines += ["", "## Machine", ""]
    lines += [f"- {key}: {value}" for key, value in machine]
    return "\n".join(lines) + "\n"
