"""The `invoke bench` task: flags in, bench.run does the work, a summary line out."""

from __future__ import annotations

from pathlib import Path

from invoke import Context, Exit

from toolkit.cli import cli, task

from . import DEFAULT_BUILDER_BASE, REPO


@task(help={"quick": "a short run (under two minutes): fewer runs, nothing slow to set up",
            "out": "where to write the table (default: BENCHMARKS.md in the checkout)",
            "builder_base": f"base image of the build container (default {DEFAULT_BUILDER_BASE})",
            "tree": "a Debian root tree to verify and import (default: one cached under ~/.cache/fromscratch)",
            "only": "run only the benchmarks whose title contains this text"})
@cli
def bench(c: Context, quick: bool = False, out: str | None = None, builder_base: str | None = None,
          tree: str | None = None, only: str | None = None) -> None:
    """Measure fromscratch against the tools a user would otherwise run; write BENCHMARKS.md."""
    from .run import main

    path = Path(out) if out else REPO / "BENCHMARKS.md"
    rows = main(path, quick=quick, builder_base=builder_base, tree=Path(tree) if tree else None, only=only)
    failed = [r for r in rows if r.failed]
    counts = {v: sum(r.verdict == v for r in rows) for v in ("yes", "no", "n/a", "skipped", "failed")}
    print(f"wrote {path}: {len(rows)} rows; targets met {counts['yes']}, missed {counts['no']}, "
          f"no target {counts['n/a']}, skipped {counts['skipped']}, failed {counts['failed']}")
    if failed:  # a benchmark that could not run is a broken harness or product, unlike a missed target
        raise Exit("error: " + "; ".join(f"{r.name}: {r.failed}" for r in failed), code=1)
