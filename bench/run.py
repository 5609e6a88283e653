"""One bench run: every benchmark in order, the machine it ran on, BENCHMARKS.md written in one piece."""

from __future__ import annotations

import datetime
import logging
import os
import platform
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from .benchmarks import BENCHMARKS
from .context import REPO, Bench
from .harness import CommandFailed, Row, Skip, render

log = logging.getLogger(__name__)

TITLE = "Benchmarks"
INTRO = (
    "Written by `invoke bench` (`--quick` for a short run). Each row measures fromscratch (ours) and the tool a "
    "user would otherwise run (the peer) in the same run, alternating between them; times are whole processes "
    "(start to exit), memory is the peak resident set of the process and the children it waited for. "
    "**Ours ÷ peer** is the figure to read: below 1, ours is faster or smaller. Absolute figures depend on the "
    "machine (below), which other jobs share. Benchmarks are not tests: a target missed is reported, not failed."
)


def _first_line(argv: Sequence[str]) -> str:
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    lines = (proc.stdout or proc.stderr).strip().splitlines()
    return lines[0].strip() if proc.returncode == 0 and lines else "not found"


def _memory() -> str:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return f"{int(line.split()[1]) / (1 << 20):.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def settle(quick: bool, limit: float = 180.0, poll: float = 5.0) -> str:
    """A full run starts on a quiet machine: it waits, at most limit seconds, until the 1-minute load average is
    under half the cores (a row with a target of its own, build-hello's 0.3 s, is no ratio that a busy neighbour
    slows on both sides). Says how long it waited."""
    if quick:
        return "not waited for (--quick)"
    waited = 0.0
    quiet = max(os.cpu_count() or 1, 1) / 2
    while os.getloadavg()[0] >= quiet and waited < limit:
        if waited == 0:
            log.warning("bench: waiting (at most %.0f s) for the 1-minute load average to fall under %.1f", limit,
                        quiet)
        time.sleep(poll)
        waited += poll
    return f"waited {waited:.0f} s for a 1-minute load average under {quiet:.1f}" + (
        " (it never fell that low)" if waited >= limit else "")


def machine(b: Bench, started: datetime.datetime, seconds: float, load_before: str,
            settled: str) -> list[tuple[str, str]]:
    try:
        version = b.client.version()
        engine = f"Docker Engine {version.get('Version')} (API {version.get('ApiVersion')}, {version.get('Os')}/" \
                 f"{version.get('Arch')})"
    except Skip as exc:
        engine = str(exc)
    commit = _first_line(["git", "-C", str(REPO), "log", "-1", "--format=%h %s"])
    return [
        ("date", started.strftime("%Y-%m-%d %H:%M UTC")),
        ("mode", f"{'--quick' if b.quick else 'full'}: {b.runs} timed runs per fast row after a warm-up run, "
                 f"{b.slow_runs} per slow row{', most without one' if b.quick else ' after one'}; "
                 f"the whole bench took {seconds:.0f} s"),
        ("cores", str(os.cpu_count())),
        ("memory", _memory()),
        ("load average (1, 5, 15 min) before / after", f"{load_before} / {_load()}"),
        ("start", settled),
        ("system", f"{platform.system()} {platform.release()} {platform.machine()}"),
        ("engine", engine),
        ("docker CLI", _first_line(["docker", "--version"])),
        ("gcc", _first_line(["gcc", "--version"])),
        ("python", platform.python_version()),
        ("fromscratch", commit),
    ]


def compile_bytecode() -> None:
    """Timed runs start from bytecode, as an installed package's do (pip compiles it on install). Without this,
    an environment with PYTHONDONTWRITEBYTECODE set would have every run compile each module again."""
    import compileall

    for package in ("toolkit", "bench"):
        compileall.compile_dir(REPO / package, quiet=1)
    compileall.compile_file(REPO / "tasks.py", quiet=1)


def run_benchmarks(b: Bench, only: str | None = None) -> list[Row]:
    rows: list[Row] = []
    for title, fn in BENCHMARKS:
        if only and only.lower() not in (title + fn.__name__).lower():
            continue
        log.warning("bench: %s", title)
        clock = time.perf_counter()
        try:
            rows += fn(b)
        except Skip as exc:
            rows.append(Row(title, skipped=str(exc)))
        except CommandFailed as exc:
            rows.append(Row(title, failed=str(exc)))
        log.warning("bench:   %.1f s", time.perf_counter() - clock)
    return rows


def main(out: Path, quick: bool = False, builder_base: str | None = None, tree: Path | None = None,
         only: str | None = None) -> list[Row]:
    """Run the benchmarks and write out, in one piece once all is measured; returns the rows."""
    from toolkit.errors import InputError
    from toolkit.files import atomic_output

    if tree is not None and not tree.is_dir():
        raise InputError(f"--tree {tree}: not a directory", hint="give a Debian root tree, or leave --tree out")
    if only and not any(only.lower() in (title + fn.__name__).lower() for title, fn in BENCHMARKS):
        raise InputError(f"--only {only!r} matches no benchmark",
                         hint="titles: " + "; ".join(title for title, _ in BENCHMARKS))
    compile_bytecode()
    settled = settle(quick)
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = _load()
    clock = time.perf_counter()
    # the output is checked writable before an hour of measuring, and never left half-written
    with atomic_output(out) as partial, tempfile.TemporaryDirectory(
            prefix="fromscratch-bench-", dir="/var/tmp" if os.path.isdir("/var/tmp") else None) as tmp:
        b = Bench(Path(tmp), quick, tree_path=tree)
        if builder_base:
            b.builder_base = builder_base
        try:
            rows = run_benchmarks(b, only)
            text = render(rows, machine(b, started, time.perf_counter() - clock, load_before, settled), TITLE, INTRO)
        finally:
            b.cleanup()
        partial.write_text(text)
    return rows
