"""What the build tasks compile (csrc/'s hello programs and their recipes, or the user's sources) and compiling
one recipe for one or several targets, a line for each target as it finishes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .. import targets
from ..sbom.spdx import NOASSERTION
from . import provides
from . import toolchain as tc

if TYPE_CHECKING:
    from ..engine.client import Limits

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGED_CSRC = Path(__file__).resolve().parents[1] / "csrc"
# hello-tiny.c has no libc: -nostdlib and its own _start; the rest is hello-world's recipe for a small file
# (sections garbage-collected, no unwind tables, .comment, build-id or RELRO padding, stripped).
TINY_CFLAGS = ("-Os", "-nostdlib", "-static", "-fno-pie", "-no-pie", "-ffreestanding", "-fno-stack-protector",
               "-fno-asynchronous-unwind-tables", "-fno-unwind-tables", "-fno-ident", "-ffunction-sections",
               "-fdata-sections", "-Wl,--gc-sections", "-Wl,--build-id=none", "-Wl,-z,norelro")
# GNU ld on x86 gives code its own page-aligned segment by default; one segment keeps the file under 1 KiB.
# (zig's linker already does that, and refuses the flag.)
TINY_GNU_LD_FLAGS = ("-Wl,-z,noseparate-code",)


def csrc(name: str) -> Path:
    """A file of csrc/ from a checkout, else the copy packaged with the toolkit."""
    checkout = REPO_ROOT / "csrc" / name
    return checkout if checkout.is_file() else PACKAGED_CSRC / name


@dataclass(frozen=True)
class Recipe:
    """Sources and flags; ldflags come after the sources (libraries: -lm), gnu_ld_flags go only to GNU ld (zig's
    linker refuses them)."""

    sources: tuple[Path, ...]
    cflags: tuple[str, ...] = ()
    gnu_ld_flags: tuple[str, ...] = ()
    ldflags: tuple[str, ...] = ()


def hello(tiny: bool = False, strip: bool = True, extra: Sequence[str] = (),
          sources: Sequence[Path] = ()) -> Recipe:
    """csrc/hello.c at -Os, or csrc/hello-tiny.c with the tiny flags; sources, when given, replace the file."""
    name, flags, ld = ("hello-tiny.c", TINY_CFLAGS, TINY_GNU_LD_FLAGS) if tiny else ("hello.c", ("-Os",), ())
    return Recipe(tuple(sources) or (csrc(name),), (*flags, *(["-s"] if strip else []), *extra), ld)


def compile_for(recipe: Recipe, arch: str | None, toolchain: str, out: Path, base: str | None,
                say: Callable[[str], None], *, per_target: bool = False, jobs: int = 1,
                libc: str | None = None, limits: Limits | None = None, index: provides.Index | None = None,
                supplier: str = NOASSERTION) -> None:
    """Build for every target arch names (default: this host), jobs at a time; say each, fail if any did (a
    target that lacked a file Debian packages is told which package, from index: see compile/provides.py). Each
    program's SBOM names supplier as its supplier."""
    wanted = targets.parse_archs(arch) if arch else [targets.host()]
    outs = tc.output_paths(out, wanted, per_target or len(wanted) > 1)
    chain = tc.select(toolchain, wanted, base=base, libc=libc, **({"limits": limits} if limits else {}))
    cflags = [*recipe.cflags, *(recipe.gnu_ld_flags if chain.name != "zig" else ())]

    def report(done: tc.Outcome) -> None:
        if done.error is None:
            say(f"built {done.out} for {done.target.platform} with the {chain.name} toolchain")

    outcomes = tc.build_all(chain, list(recipe.sources), wanted, outs, cflags, jobs, on_done=report,
                            ldflags=recipe.ldflags, supplier=supplier)
    provides.explain([o.error for o in outcomes], wanted, provides.for_sources(chain.name), index)
    tc.raise_failures(outcomes, wanted)
