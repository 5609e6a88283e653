"""The `invoke bench` task: flags in, bench.run does the work, a summary line out."""

from __future__ import annotations

from pathlib import Path

from invoke import Context, Exit

from toolkit.cli import cli, task

from . import DEFAULT_BUILDER_BASE, REPO


@task(help={"quick": "a short run (under two minutes): fewer runs, nothing slow to set up",
            "out": "where to write the table (default: BENCHMARKS.md in the checkout; with --only, "
                   "BENCHMARKS-only.md beside it, so a partial run never replaces the whole table)",
            "builder_base": f"base image of the build container (default {DEFAULT_BUILDER_BASE})",
            "tree": "a Debian root tree to verify and import (default: one cached under ~/.cache/fromscratch)",
            "only": "run only the benchmarks whose title contains this text"})
@cli
def bench(c: Context, quick: bool = False, out: str | None = None, builder_base: str | None = None,
          tree: str | None = None, only: str | None = None) -> None:
    """Measure fromscratch against the tools a user would otherwise run; write BENCHMARKS.md."""
    from .run import main

    path = Path(out) if out else REPO / ("BENCHMARKS-only.md" if only else "BENCHMARKS.md")
    rows = main(path, quick=quick, builder_base=builder_base, tree=Path(tree) if tree else None, only=only)
    failed = [r for r in rows if r.failed]
    counts = {v: sum(r.verdict == v for r in rows) for v in ("yes", "no", "n/a", "skipped", "failed")}
    print(f"wrote {path}: {len(rows)} rows; targets met {counts['yes']}, missed {counts['no']}, "
          f"no target {counts['n/a']}, skipped {counts['skipped']}, failed {counts['failed']}")
    if failed:  # a benchmark that could not run is a broken harness or product, unlike a missed target
        raise Exit("error: " + "; ".join(f"{r.name}: {r.failed}" for r in failed), code=1)


@task(help={"names": "Debian source packages, comma-separated (default: bench/corpus.py's list)",
            "arch": "targets, comma-separated (default amd64)", "toolchain": "container (default) or native",
            "builder_base": f"base image of the build container (default {DEFAULT_BUILDER_BASE})",
            "out": "the Markdown report (default docs/corpus.md; the JSON goes beside it)",
            "title": "the report's title"})
@cli
def corpus(c: Context, names: str | None = None, arch: str = "amd64", toolchain: str = "container",
           builder_base: str | None = None, out: str | None = None, title: str = "Zero-flag builds of Debian programs"
           ) -> None:
    """Build real programs from Debian's sources with no flags, smoke-run each in its scratch image, report."""
    from . import corpus as corpus_run

    packages = [n.strip() for n in names.split(",")] if names else list(corpus_run.DEFAULT)
    results = corpus_run.run(packages, [a.strip() for a in arch.split(",")], toolchain, builder_base)
    path = Path(out) if out else REPO / "docs" / "corpus.md"
    corpus_run.report(results, path, title)
    print(f"wrote {path}: {sum(r.built for r in results)} of {len(results)} built")
