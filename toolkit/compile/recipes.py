"""What the build tasks compile from sources: csrc/'s hello programs and their recipes, or the user's files; a
recipe becomes a one-rule plan (compile/plan.py) built for each target like any project."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import targets
from ..engine.limits import DEFAULT_LIMITS, Limits
from ..sbom import NOASSERTION
from . import pipeline, plan, provides
from .sources import sources as checked_sources

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
    linker refuses them); packages are -dev packages for the target, tools packages the build machine runs."""

    sources: tuple[Path, ...]
    cflags: tuple[str, ...] = ()
    gnu_ld_flags: tuple[str, ...] = ()
    ldflags: tuple[str, ...] = ()
    packages: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()


def hello(tiny: bool = False, strip: bool = True, extra: Sequence[str] = (),
          sources: Sequence[Path] = ()) -> Recipe:
    """csrc/hello.c at -Os, or csrc/hello-tiny.c with the tiny flags; sources, when given, replace the file."""
    name, flags, ld = ("hello-tiny.c", TINY_CFLAGS, TINY_GNU_LD_FLAGS) if tiny else ("hello.c", ("-Os",), ())
    return Recipe(tuple(sources) or (csrc(name),), (*flags, *(["-s"] if strip else []), *extra), ld)


def compile_for(recipe: Recipe, wanted: Sequence[targets.Target], toolchain: str, out: Path, base: str | None,
                say: Callable[[str], None], *, per_target: bool = False, jobs: int = 1,
                libc: str | None = None, limits: Limits | None = None,
                index: provides.Index | None = None, supplier: str = NOASSERTION, find: bool = True,
                exclude: Sequence[str] = ()) -> list[pipeline.Outcome]:
    """Build recipe for every wanted target into out (out-<target> for each of several), jobs at a time; the
    programs' SBOMs name supplier."""
    outs = pipeline.output_paths(out, wanted, per_target or len(wanted) > 1)
    job = plan.from_sources(checked_sources(recipe.sources), out.name, recipe.cflags, recipe.ldflags,
                            recipe.packages, recipe.tools, recipe.gnu_ld_flags)
    return pipeline.build(job, wanted, toolchain, lambda target, name: outs[target.name], say, base=base, jobs=jobs,
                          libc=libc, index=index, limits=limits or DEFAULT_LIMITS, supplier=supplier,
                          find=find, exclude=exclude)
