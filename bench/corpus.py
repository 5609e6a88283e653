"""A corpus of real programs built as a user would: each Debian source package's upstream tree built with
`build --project DIR --arch ...` and no other flag, then each program it made smoke-run in its own scratch image
(toolkit/census.py's smoke(): the first of its arguments that exits 0 saying something, else a usage text with
exit 1 or 2). What a change to the build path buys, measured on trees nobody here wrote; the report goes to docs/,
not to the test suite (it takes tens of minutes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from toolkit.census import SMOKE_SAID, Smoke, engine_remover, error_line, smoke

from . import DEFAULT_BUILDER_BASE, REPO

# Command-line programs with and without libraries, over make, CMake, Meson and autotools. (Left out: packages
# whose Debian part this mirror answers 404 for, which apt-get source cannot fetch: pigz, hexedit, qrencode,
# cmatrix; issue 25 builds those from the .dsc and .orig.)
DEFAULT = ("lua5.4", "zstd", "sqlite3", "figlet", "sl", "nano", "htop", "tmux", "less", "ncdu", "dialog", "socat",
           "jq", "pv", "tree", "dos2unix", "lz4", "bc", "bzip2", "xz-utils")


@dataclass
class Result:
    package: str
    arch: str
    built: bool
    seconds: float
    programs: list[str] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)
    error: str = ""
    smoke: list[Smoke] = field(default_factory=list)
    found: list[str] = field(default_factory=list)  # what the build found it needs: "libncurses-dev (-lcurses, ...)"


def _invoke(*args: str, timeout: float, stdin: int | None = subprocess.DEVNULL) -> subprocess.CompletedProcess[str]:
    # errors="replace": a program's --help may print bytes that are not UTF-8 (bzip2 does)
    return subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(REPO), *args], capture_output=True,
                          text=True, errors="replace", timeout=timeout, stdin=stdin,
                          env={**os.environ, "FROMSCRATCH_LOG": "WARNING"})


def build_one(package: str, arch: str, toolchain: str, builder_base: str, timeout: float) -> Result:
    from tests import debsrc

    try:
        tree = debsrc.fetch(package)
    except (RuntimeError, ValueError) as exc:
        return Result(package, arch, False, 0.0, error=f"fetch: {exc}"[:300])
    with tempfile.TemporaryDirectory(prefix="fromscratch-corpus-") as tmp:
        out = Path(tmp) / "out"
        started = time.monotonic()
        try:
            proc = _invoke("build", "--project", str(tree), "--out", str(out), "--arch", arch, "--toolchain",
                           toolchain, "--builder-base", builder_base, "--timeout", str(int(timeout)),
                           timeout=timeout + 600)
        except subprocess.TimeoutExpired:
            return Result(package, arch, False, time.monotonic() - started, error="timed out")
        seconds = time.monotonic() - started
        found = [line.removeprefix("found ") for line in (proc.stdout + proc.stderr).splitlines()
                 if line.startswith("found ")]
        if proc.returncode != 0:
            return Result(package, arch, False, seconds, error=error_line(proc.stderr), found=found)
        programs = sorted(p for p in out.iterdir()  # a program once: not its installed names (symlinks)
                          if p.is_file() and not p.is_symlink() and not p.name.endswith(".spdx.json"))
        result = Result(package, arch, True, seconds, [p.name for p in programs],
                        {p.name: p.stat().st_size for p in programs}, found=found)
        remove = engine_remover()
        for p in programs:
            tag = f"fromscratch-corpus/{package}-{p.name}:{arch}".lower().replace("+", "-")
            result.smoke.append(smoke(p, arch, tag, remove))
        return result


def run(packages: list[str], archs: list[str], toolchain: str = "container", builder_base: str | None = None,
        timeout: float = 1800, say=print) -> list[Result]:
    results = []
    for package in packages:
        for arch in archs:
            done = build_one(package, arch, toolchain, builder_base or DEFAULT_BUILDER_BASE, timeout)
            smoked = sum(s.ok for s in done.smoke)
            say(f"{package} {arch}: {'built ' + ', '.join(done.programs) if done.built else 'failed'} "
                f"({done.seconds:.0f} s){f'; smoke {smoked}/{len(done.smoke)}' if done.built else ''}"
                f"{'; ' + done.error if done.error else ''}")
            results.append(done)
    return results


def report(results: list[Result], markdown: Path, title: str) -> None:
    """A Markdown table (and the same as JSON beside it): package, target, result, programs and their smoke."""
    rows = ["| package | target | found | result | programs (smoke) | seconds | error |",
            "|---|---|---|---|---|---:|---|"]
    for r in results:
        smoke = ", ".join(f"{s.program} ({'ok' if s.ok else 'no'}: {s.how})" for s in r.smoke) or "-"
        error = " ".join(r.error.split()).replace("|", "/")  # one table row, whatever the error held
        found = "; ".join(f.split(" (", 1)[0] for f in r.found) or "-"  # the packages: the JSON has why
        rows.append(f"| {r.package} | {r.arch} | {found} | {'static' if r.built else 'failed'} | {smoke} | "
                    f"{r.seconds:.0f} | {error} |")
    built = [r for r in results if r.built]
    passed = [r for r in built if r.smoke and all(s.ok for s in r.smoke)]
    summary = (f"{len(built)} of {len(results)} builds made static programs; {len(passed)} of {len(results)} "
               f"also answered {SMOKE_SAID} in their scratch image (an answer exits 0, or prints the "
               "program's usage and exits 1 or 2).")
    markdown.write_text(f"# {title}\n\n{summary}\n\n" + "\n".join(rows) + "\n")
    markdown.with_suffix(".json").write_text(json.dumps([asdict(r) for r in results], indent=1, sort_keys=True)
                                             + "\n")
