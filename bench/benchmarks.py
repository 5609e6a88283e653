"""The benchmarks, in table order: each runs ours and the peer a user would otherwise pick, side by side."""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import REPO
from .context import HELLO_C, Bench
from .harness import (
    CommandFailed,
    Probe,
    Row,
    Sample,
    Skip,
    Stat,
    Target,
    faster,
    faster_by,
    measure,
    ours_below,
    over_peer_below,
    smaller,
    within,
)

Benchmark = Callable[[Bench], list[Row]]
BENCHMARKS: list[tuple[str, Benchmark]] = []

# docker-library/hello-world's published, stripped binary sizes (the one file of each image)
HELLO_WORLD_BYTES = {"amd64": 10_072, "arm64": 5_200}
BIG = 1 << 30


def benchmark(title: str) -> Callable[[Benchmark], Benchmark]:
    """Register a benchmark; title names its row when it is skipped or fails as a whole."""

    def register(fn: Benchmark) -> Benchmark:
        BENCHMARKS.append((title, fn))
        return fn

    return register


@benchmark("build-hello, native toolchain vs plain gcc -static")
def build_native(b: Bench) -> list[Row]:
    args = ("build-hello", "--toolchain", "native", "--out", "hello-native")
    flags = ("-static", "-Os", "-s")  # what build-hello passes: the same work, without the toolkit around it
    ours = Probe(b.shown(*args), b.invoke(*args), cwd=b.work)
    peer = Probe(shlex.join(["gcc", *flags, "csrc/hello.c", "-o", "hello-gcc"]),
                 ["gcc", *flags, str(HELLO_C), "-o", "hello-gcc"], cwd=b.work)
    o, p, start = b.measure([ours, peer, _startup(b)])
    return [b.row("build-hello, native", ours, o, peer, p, ours_below(0.3, "s"), cpu=True,
                  note="the link record is kept after the warm-up run (keyed on what it reads: the inputs' sizes, "
                       "times and inodes, the compiler, dpkg's status file), so is the sha256 of each input; "
                       f"{_startup_note(start, p, 'gcc')}")]


@benchmark("build-hello in the warm build container vs native")
def build_container(b: Bench) -> list[Row]:
    b.require_builder_base()
    if b.quick and not b.builder_warm():
        raise Skip("the build image is not built yet and --quick does not build it (a full run does)")
    args = ("build-hello", "--toolchain", "container", "--builder-base", b.builder_base, "--out", "hello-cont")
    native = ("build-hello", "--toolchain", "native", "--out", "hello-native")
    ours = Probe(b.shown(*args), b.invoke(*args), cwd=b.work)
    peer = Probe(b.shown(*native), b.invoke(*native), cwd=b.work)
    return [b.compare("build-hello, warm build container vs native", ours, peer,
                      note="the warm-up run builds the build image if it is missing; timed runs reuse it")]


def _dockerfile_context(b: Bench, binary: Path, name: str) -> Path:
    """The Dockerfile a user would write for the same image: FROM scratch, COPY, exec-form CMD."""
    ctx = b.work / f"ctx-{name}"
    ctx.mkdir(exist_ok=True)
    dest = ctx / binary.name
    if not dest.exists():
        try:
            os.link(binary, dest)  # the 1 GiB binary is not copied
        except OSError:
            shutil.copy2(binary, dest)
    (ctx / "Dockerfile").write_text(f'FROM scratch\nCOPY {binary.name} /{binary.name}\nCMD ["/{binary.name}"]\n')
    return ctx


def _image_argv(b: Bench, side: str, tag: str, binary: Path, ctx: Path, label: str) -> list[str]:
    """One image build, ours or docker build's. Each carries a label unique to its run, so that neither side
    can answer from an identical image left by an earlier run (ours reuses one when the engine holds it)."""
    if side == "peer":
        return ["docker", "build", "--no-cache", "-q", "--label", f"org.fromscratch.bench={label}", "-t", tag,
                str(ctx)]
    argv = b.invoke("image", "--tag", tag, "--binary", str(binary))
    if b.has_flag("image", "--label"):
        argv += ["--label", f"org.fromscratch.bench={label}"]
    return argv


def _image_probes(b: Bench, binary: Path, kind: str) -> tuple[Probe, Probe]:
    """`invoke image` and `docker build --no-cache` of the same binary, each run under a fresh tag."""
    ctx = _dockerfile_context(b, binary, kind)

    def probe(side: str, shown: str) -> Probe:
        def argv(i: int) -> list[str]:
            return _image_argv(b, side, b.tag(f"{kind}-{side}", i), binary, ctx, f"{b.run_id}-{kind}-{i}")

        return Probe(shown, argv, after=lambda i: b.remove_image(b.tag(f"{kind}-{side}", i)))

    return (probe("ours", b.shown("image", "--tag", "T", "--binary", binary.name)),
            probe("peer", f"docker build --no-cache -t T {ctx.name}  # FROM scratch, COPY {binary.name}, CMD"))


def _builder_note(b: Bench) -> str:
    buildkit = b.output(["docker", "buildx", "version"]).returncode == 0
    return ("docker build used BuildKit" if buildkit else "docker build used the legacy builder (no buildx here)") + \
        "; --no-cache, as after a change to the binary, since ours does the whole work every run; each run's " \
        "image carries its own label, so neither side finds it already built"


def _startup(b: Bench) -> Probe:
    """`invoke --version`: Python and Invoke starting and stopping, which every `invoke` command pays before
    any of its own work. Measured in the same loop as a row, it shows how much of the row's ratio is left to
    the toolkit: a floor above a row's target means no work of ours can meet it."""
    return Probe("invoke --version", b.invoke("--version"))


def _startup_note(start: Sequence[Sample], peer: Sequence[Sample], peer_name: str) -> str:
    floor = Stat.wall(start)
    return (f"start-up alone (`invoke --version`, same loop): {floor.show()}, "
            f"{floor.median / Stat.wall(peer).median:.2f} of {peer_name}")


@benchmark("invoke image vs docker build of the same Dockerfile")
def image_vs_docker_build(b: Bench) -> list[Row]:
    b.client  # noqa: B018 - skips without an engine
    ours, peer = _image_probes(b, b.hello, "image")
    o, p, start = b.measure([ours, peer, _startup(b)])
    return [b.row("image hello vs docker build", ours, o, peer, p, faster_by(3),
                  note=f"{_builder_note(b)}; {_startup_note(start, p, 'docker build')}")]


@benchmark("verify one binary, whole process, vs readelf -lh and file")
def verify_one(b: Bench) -> list[Row]:
    b.hello  # noqa: B018 - built before timing
    ours = Probe(b.shown("verify", "./hello"), b.invoke("verify", "./hello"), cwd=b.work)
    readelf = Probe("readelf -lh ./hello", ["readelf", "-lh", "./hello"], cwd=b.work)
    file = Probe("file ./hello", ["file", "./hello"], cwd=b.work)
    o, r, f = b.measure([ours, readelf, file])
    return [b.row("verify ./hello vs readelf -lh", ours, o, readelf, r, ours_below(0.3, "s"), cpu=True),
            b.row("verify ./hello vs file", ours, o, file, f, ours_below(0.3, "s"), cpu=True)]


def _verify_walks_directories(b: Bench) -> bool:
    """Whether `invoke verify DIR` walks a directory (issue 3): before, it fails the directory itself."""
    probe = b.work / "verify-dir-probe"
    probe.mkdir(exist_ok=True)
    shutil.copy2(b.hello, probe / "elf-inside")
    proc = b.output(b.invoke("verify", str(probe)))
    return proc.returncode == 0 and "elf-inside" in proc.stdout


@benchmark("verify a Debian minbase tree vs scanelf -R and file")
def verify_tree(b: Bench) -> list[Row]:
    if not _verify_walks_directories(b):
        raise Skip("`invoke verify DIR` is not on main yet (issue 3)")
    tree = b.tree
    files = sum(len(names) for _, _, names in os.walk(tree))
    # exit 1 is a verdict, not a failure: most ELFs in Debian are dynamic and fail the static check
    ours = Probe(b.shown("verify", "TREE"), b.invoke("verify", str(tree)), ok=(0, 1))
    scanelf = Probe("scanelf -R TREE", ["scanelf", "-R", str(tree)])
    file = Probe("find TREE -type f -exec file {} +", ["find", str(tree), "-type", "f", "-exec", "file", "{}", "+"])
    # scanelf and ours take tenths of a second: as many runs as any fast row, for a median that one noisy run
    # cannot move; `file` takes seconds, so it gets its own loop with fewer runs.
    o, s, start = b.measure([ours, scanelf, _startup(b)])
    o_file, f = b.measure([ours, file], slow=True, warm=True)
    note = f"TREE: {tree}, {files:,} files"
    return [b.row("verify Debian tree vs scanelf -R", ours, o, scanelf, s, within(3),
                  f"{note}; {_startup_note(start, s, 'scanelf -R')}", cpu=True),
            b.row("verify Debian tree vs file", ours, o_file, file, f, faster(), note, cpu=True)]


@benchmark("rootfs tar + import vs tar | docker import -")
def rootfs_import(b: Bench) -> list[Row]:
    tree = b.tree
    ours = Probe(b.shown("import-rootfs", "TREE", "--tag", "T"),
                 lambda i: b.invoke("import-rootfs", str(tree), "--tag", b.tag("rootfs-ours", i)),
                 after=lambda i: b.remove_image(b.tag("rootfs-ours", i)))
    peer = Probe("tar -C TREE -c . | docker import - T",
                 lambda i: ["sh", "-c", f"tar -C {shlex.quote(str(tree))} -c . | docker import - "
                                        f"{b.tag('rootfs-peer', i)} >/dev/null"],
                 after=lambda i: b.remove_image(b.tag("rootfs-peer", i)))
    return [b.compare("tar + import a Debian tree", ours, peer, slow=True,
                      note=f"TREE: {tree}; ours writes a deterministic tar (sorted, numeric owners, clamped mtimes)")]


def _built(b: Bench, name: str, *flags: str) -> Path:
    out = b.work / name
    if not out.exists():
        b.must(b.invoke("build-hello", *flags, "--out", str(out)))
    return out


def _size_row(b: Bench, name: str, binary: Path, arch: str, target: Target | None) -> Row:
    tag = b.tag(f"size-{binary.name}")
    b.must(b.invoke("image", "--tag", tag, "--binary", str(binary)))
    try:
        size = b.image_size(tag)
    finally:
        b.remove_image(tag)
    published = HELLO_WORLD_BYTES[arch]
    return Row(name, Stat((size,), "B"), Stat((published,), "B"), b.shown("image", "--binary", binary.name), "",
               target, f"the image's size as the engine reports it (its one file); peer: the binary in "
                       f"docker-library/hello-world's {arch} image, {published:,} B as published")


def _toolchain_flags(b: Bench, arch: str) -> tuple[str, ...]:
    """A toolchain that builds for arch here without minutes of set-up, or a skip that says what is missing."""
    from toolkit import targets

    target = targets.lookup(arch)
    if shutil.which(target.gcc):
        return ("--arch", arch, "--toolchain", "native")
    if "zig" in b.task_help("build-hello"):
        import importlib.util

        if importlib.util.find_spec("ziglang"):
            return ("--arch", arch, "--toolchain", "zig")
    b.require_builder_base()
    if b.quick and not b.builder_warm(arch):
        raise Skip(f"no {arch} toolchain is ready: no {target.gcc}, no zig, and --quick does not build "
                   "the cross build image (a full run does)")
    return ("--arch", arch, "--toolchain", "container", "--builder-base", b.builder_base)


@benchmark("image sizes vs hello-world's")
def sizes(b: Bench) -> list[Row]:
    b.client  # noqa: B018 - skips without an engine
    no_tiny = "" if b.has_flag("build-hello", "--tiny") else "`invoke build-hello --tiny` is not on main yet (issue 5)"
    rows = []
    for arch in HELLO_WORLD_BYTES:
        try:
            flags, no_toolchain = _toolchain_flags(b, arch), ""
        except Skip as exc:
            flags, no_toolchain = (), str(exc)
        # glibc (the default), musl (hello-world's own libc; goal on amd64: under 32 KiB) and the libc-free tiny
        for stem, extra in (("hello", ()), ("hello-musl", ("--libc", "musl")), ("hello-tiny", ("--tiny",))):
            name = f"image size: {stem}, {arch}"
            target = {"hello-tiny": smaller(), "hello-musl": ours_below(32 * 1024, "B") if arch == "amd64" else None,
                      "hello": None}[stem]
            reason = no_toolchain or (no_tiny if stem == "hello-tiny" else "")
            if reason:
                rows.append(Row(name, target=target, skipped=reason))
                continue
            binary = _built(b, f"{stem}-{arch}", *extra, *flags)
            rows.append(_size_row(b, name, binary, arch, target))
    return rows


@benchmark("peak memory for a 1 GiB binary")
def big_binary(b: Bench) -> list[Row]:
    big = b.work / "big"
    if not big.exists():
        shutil.copy2(b.hello, big)
        os.truncate(big, BIG)  # a valid static ELF with 1 GiB of (sparse) zeros after its segments
    ours = Probe(b.shown("verify", "big"), b.invoke("verify", str(big)))
    readelf = Probe("readelf -lh big", ["readelf", "-lh", str(big)])
    o, r = b.measure([ours, readelf], slow=True, memory=True)
    rows = [b.row("peak memory: verify a 1 GiB binary", ours, o, readelf, r, ours_below(100, "MiB"),
                  f"wall: ours {Stat.wall(o).show()}, readelf {Stat.wall(r).show()}", memory=True)]
    name, target = "peak memory: image a 1 GiB binary", ours_below(100, "MiB")
    try:
        b.full_only("it writes and loads gigabytes: about a minute here")
    except Skip as exc:
        return [*rows, Row(name, target=target, skipped=str(exc))]
    b.client  # noqa: B018 - the image half needs an engine
    ours_img, peer_img = _image_probes(b, big, "big")
    note = "peak RSS of the client process and its children, not the engine's"
    o, p = b.measure([ours_img, peer_img], slow=True, memory=True)
    rows.append(b.row(name, ours_img, o, peer_img, p, target,
                      f"{note}; wall: ours {Stat.wall(o).show()}, docker build {Stat.wall(p).show()}", memory=True))
    return rows


@benchmark("build every target: warm container and zig, --jobs 2 vs serial")
def every_target(b: Bench) -> list[Row]:
    b.require_flag("build-hello", "--jobs", issue=4)
    b.full_only("each run builds every target four times over")
    probes: dict[tuple[str, int], Probe] = {}
    chains: dict[str, tuple[str, ...]] = {"container": ("--toolchain", "container", "--builder-base", b.builder_base)}
    if "zig" in b.task_help("build-hello"):
        chains["zig"] = ("--toolchain", "zig")
    for chain, flags in chains.items():
        for jobs in (2, 1):
            cwd = b.work / f"all-{chain}-{jobs}"
            cwd.mkdir(exist_ok=True)
            args = ("build-hello", "--arch", "all", *flags, "--jobs", str(jobs))
            probes[chain, jobs] = Probe(b.shown(*args), b.invoke(*args), cwd=cwd)
    # the warm-up run builds the cross build image and fills zig's cache; the timed runs reuse both
    got = dict(zip(probes, b.measure(list(probes.values()), slow=True), strict=True))
    rows = [b.row(f"every target, {chain}: --jobs 2 vs serial", probes[chain, 2], got[chain, 2],
                  probes[chain, 1], got[chain, 1], faster()) for chain in chains]
    if "zig" in chains:
        rows.append(b.row("every target, serial: zig vs warm container", probes["zig", 1], got["zig", 1],
                          probes["container", 1], got["container", 1],
                          note="zig keeps what it compiled in its cache (~/.cache/zig), so after the warm-up run "
                               "an unchanged hello.c is not compiled again; gcc in the container compiles each time"))
    else:
        rows.append(Row("every target: zig", skipped="`invoke build-hello --toolchain zig` is not on main yet "
                                                     "(issue 4)"))
    return rows


@dataclass(frozen=True)
class _Project:
    """A real program nobody here wrote, built by ours and, as its authors document, by hand with the host's gcc."""

    name: str  # as its row shows it
    package: str  # the Debian source package of its upstream tree
    args: tuple[str, ...]  # ours' flags besides --project, --toolchain, --builder-base and --out
    by_hand: str  # the peer, a shell command; COPY stands for the run's fresh copy of the tree
    made: str  # what by_hand makes, relative to COPY: checked static after each run
    how: str  # what the two sides run, for the row's note
    # timed runs a side: a build of a few seconds varies by a tenth from run to run on a shared two-core
    # machine, so a short one gets more runs for its medians
    runs: int = 3


ZSTD_OFF = "-DZSTD_BUILD_SHARED=OFF -DZSTD_BUILD_TESTS=OFF -DZSTD_LEGACY_SUPPORT=OFF"
PROJECTS = (
    # both sides run the Makefile's default target: `guess`, which picks linux here (LUA_USE_LINUX, -ldl)
    _Project("Lua 5.4", "lua5.4", (), "make -C COPY -j$(nproc) MYLDFLAGS=-static", "src/lua",
             "both run the Makefile's default target (`guess`, here linux), ours with CC=its static wrapper, the "
             "peer with MYLDFLAGS=-static; ours takes lua and luac, the peer makes the same two programs", runs=7),
    _Project("zstd", "zstd", ("--subdir", "build/cmake", "--configure-args", ZSTD_OFF),
             f"cmake -S COPY/build/cmake -B COPY/b -G Ninja -DCMAKE_BUILD_TYPE=Release {ZSTD_OFF} "
             "-DCMAKE_EXE_LINKER_FLAGS=-static && cmake --build COPY/b -j$(nproc)", "b/programs/zstd",
             "both configure with Ninja, Release and the same options; ours then runs `cmake --install` into a "
             "fresh prefix and takes zstd"),
)


def _source_tree(package: str) -> tuple[Path, str]:
    """The upstream tree of a Debian source package, downloaded once into the tests' cache (only ever copied,
    never built in), and the version the row names."""
    from tests import debsrc

    try:
        tree = debsrc.fetch(package)
    except (RuntimeError, OSError) as exc:
        raise Skip(f"no source tree for {package}: {str(exc).splitlines()[0]}") from None
    dscs = sorted((debsrc.cache_dir() / "src" / package).glob("*.dsc"))
    return tree, (dscs[0].stem.split("_", 1)[-1] if dscs else tree.name)


def _is_static(b: Bench, path: Path) -> bool:
    return path.is_file() and b.output(b.invoke("verify", str(path))).returncode == 0


def _project_probes(b: Bench, project: _Project, tree: Path) -> tuple[Probe, Probe, dict[int, bool]]:
    """Ours and the by-hand build, each run in a fresh copy of the tree with a clean output; the third value
    says, per run, whether the peer made a static program (the checked build is the one that was timed)."""
    root = b.work / f"project-{project.package}"
    flags = ("--toolchain", "container", "--builder-base", b.builder_base)
    static: dict[int, bool] = {}

    def fresh(side: str, i: int) -> Path:
        # called from argv, which Probe.run makes before its clock starts: the copy is set-up, not measured
        copy = root / f"{side}-{i}" / tree.name
        shutil.copytree(tree, copy, symlinks=True)
        return copy

    def ours(i: int) -> list[str]:
        copy = fresh("ours", i)
        # a full build: no compiler cache (the zstd ccache row measures that)
        return ["env", "FROMSCRATCH_CCACHE=0", *b.invoke("build", "--project", str(copy), *flags, "--out",
                                                         str(copy.parent / "dist"), *project.args)]

    def ours_after(i: int) -> None:
        _forget_states(b, root)
        shutil.rmtree(root / f"ours-{i}", ignore_errors=True)

    def peer(i: int) -> list[str]:
        return ["sh", "-c", project.by_hand.replace("COPY", shlex.quote(str(fresh("peer", i))))]

    def peer_after(i: int) -> None:
        static[i] = _is_static(b, root / f"peer-{i}" / tree.name / project.made)
        shutil.rmtree(root / f"peer-{i}", ignore_errors=True)

    shown = b.shown("build", "--project", "COPY", *flags, "--out", "DIST", *project.args)
    return (Probe(shown, ours, after=ours_after),
            Probe(project.by_hand, peer, after=peer_after), static)


def _project_row(b: Bench, project: _Project) -> Row:
    tree, version = _source_tree(project.package)
    ours, peer, static = _project_probes(b, project, tree)
    o, p = b.measure([ours, peer], slow=True, runs=project.runs)
    if not all(static.values()):
        raise CommandFailed(f"`{project.by_hand}` did not make a static {project.made} (invoke verify)")
    note = (f"COPY: a fresh copy of Debian's {project.package} {version} upstream tree ({tree.name}) per run, "
            f"made before the clock starts, and a clean DIST; {project.how}; the peer's {project.made} passes "
            "`invoke verify` after each run, ours verifies its programs itself; the warm-up run builds the build "
            "image if it is missing, timed runs reuse it; ours with FROMSCRATCH_CCACHE=0 (no compiler cache)")
    return b.row(f"project build, {project.name}: warm build container vs its own build on the host", ours, o,
                 peer, p, within(1.2), note)


@benchmark("project build, warm build container vs the project's own make")
def project_build(b: Bench) -> list[Row]:
    b.full_only("a Lua build takes ~20 s a side on two cores, zstd's ~90 s")
    b.require_builder_base()
    return [_project_row(b, project) for project in PROJECTS]


def _forget_states(b: Bench, under: Path) -> None:
    """The kept build states (volumes) of the projects under a directory the bench made, removed: a fresh copy per
    run is a new state each time."""
    from toolkit.compile import kept
    from toolkit.engine import volume

    for v in volume.kept(b.client, sizes=False):
        if v.labels.get(kept.LABEL + "project", "").startswith(f"{under}/"):
            volume.remove(b.client, v.name)
            kept.forget_done(None, v.name)  # and what its last build delivered, kept on this machine


def _slow_project(b: Bench, package: str, why: str) -> tuple[Path, str, Path]:
    """A full run's project row: the upstream tree of package, its version, and an empty directory for copies."""
    b.full_only(why)
    b.require_builder_base()
    tree, version = _source_tree(package)
    root = b.work / f"rebuilds-{package}"
    shutil.rmtree(root, ignore_errors=True)
    return tree, version, root


LUA_TOUCHED = "src/lapi.c"  # one file of liblua: it recompiles, the archive and both programs are made again


@benchmark("Lua rebuilt: one file changed, and nothing changed, kept state vs make's own incremental build")
def lua_rebuilds(b: Bench) -> list[Row]:
    tree, version, root = _slow_project(b, "lua5.4", "each side builds Lua once first, ~20 s a side on two cores")
    ours_tree, peer_tree = root / "ours" / tree.name, root / "peer" / tree.name
    shutil.copytree(tree, ours_tree, symlinks=True)
    shutil.copytree(tree, peer_tree, symlinks=True)
    flags = ("--toolchain", "container", "--builder-base", b.builder_base, "--out", str(root / "dist"))
    ours_argv = b.invoke("build", "--project", str(ours_tree), *flags)
    peer_argv = ["make", "-C", str(peer_tree), f"-j{os.cpu_count() or 2}", "MYLDFLAGS=-static"]
    try:
        b.must(ours_argv)  # the first builds: the state each side keeps (untimed)
        b.must(peer_argv)

        def touched(argv: list[str], copy: Path) -> Callable[[int], list[str]]:
            def change(i: int) -> list[str]:  # before the clock: one file's content changes
                with open(copy / LUA_TOUCHED, "a") as fh:
                    fh.write(f"/* change {b.run_id} {i} */\n")
                return argv
            return change

        shown = b.shown("build", "--project", "COPY", "--toolchain", "container", "--builder-base", "B", "--out",
                        "DIST")
        peer_shown = "make -C COPY -j$(nproc) MYLDFLAGS=-static"
        o1, p1 = b.measure([Probe(shown, touched(ours_argv, ours_tree)), Probe(peer_shown, touched(peer_argv,
                                                                                                    peer_tree))],
                           runs=5)
        o2, p2 = b.measure([Probe(shown, ours_argv), Probe(peer_shown, peer_argv)], runs=5)
    finally:
        _forget_states(b, root)
    note = (f"Debian's lua5.4 {version} upstream tree, one copy a side, each built once before the clock; each "
            f"timed run first appends a comment to {LUA_TOUCHED} on both sides (ours sends that one file into its "
            "kept state, a volume, and runs the same make there: what changed is found against the manifest this "
            "machine kept of the state's last build, its generation checked inside the container, and the "
            "programs come back on the build's standard output; each link's record is kept while the system "
            "inputs it names are unchanged)")
    return [b.row("Lua, one file changed: kept state (container) vs make incremental", Probe(shown, ours_argv),
                  o1, Probe(peer_shown, peer_argv), p1, within(1.5), note),
            b.row("Lua, nothing changed: kept state (container) vs make's no-op", Probe(shown, ours_argv), o2,
                  Probe(peer_shown, peer_argv), p2, over_peer_below(0.5),
                  "the same copies, nothing changed between runs: ours finds the tree (size and time, content when "
                  "the time changed), flags and build image as they were at its last build and delivers the programs "
                  "it kept on this machine again, verified and with the same SBOMs, without a container (make's "
                  "\"Nothing to be done\"); what is left is Python and Invoke starting, the project's declarations, "
                  "one engine request over its socket for the build image, and the delivery")]


@benchmark("zstd (CMake), a fresh copy of a tree built once: ccache warm vs cold")
def zstd_ccache(b: Bench) -> list[Row]:
    tree, version, root = _slow_project(b, "zstd", "a cold zstd build takes ~90 s on two cores")
    project = next(p for p in PROJECTS if p.package == "zstd")
    flags = ("--toolchain", "container", "--builder-base", b.builder_base, *project.args)
    from toolkit.compile import kept
    from toolkit.engine import volume

    def cold_set(i: int) -> str:  # a compiler cache of the cold run's own: the one every build shares stays
        return f"bench-cold-{os.getpid()}-{i}"

    def fresh(side: str, cold: bool) -> Callable[[int], list[str]]:
        def argv(i: int) -> list[str]:  # before the clock: a fresh copy; for the cold side an empty compiler cache
            copy = root / f"{side}-{i}" / tree.name
            shutil.copytree(tree, copy, symlinks=True)
            build = b.invoke("build", "--project", str(copy), "--out", str(copy.parent / "dist"), *flags)
            return ["env", f"FROMSCRATCH_CCACHE_SET={cold_set(i)}", *build] if cold else build
        return argv

    def after(side: str) -> Callable[[int], None]:
        def clean(i: int) -> None:
            _forget_states(b, root)
            shutil.rmtree(root / f"{side}-{i}", ignore_errors=True)
            if side == "cold":
                volume.remove(b.client, kept.ccache_volume("amd64", cold_set(i))[0])
        return clean

    shown = b.shown("build", "--project", "COPY", *flags, "--out", "DIST")
    try:
        # warm first: each warm run follows a build of the same sources (the warm-up's, or the cold run's)
        warm, cold = b.measure([Probe(shown + "  # ccache warm", fresh("warm", False), after=after("warm")),
                                Probe(shown + "  # ccache cold", fresh("cold", True), after=after("cold"))],
                               slow=True)
    finally:
        _forget_states(b, root)
    note = (f"Debian's zstd {version} upstream tree, a fresh copy per run (a new kept state: everything is "
            "compiled); warm: the amd64 compiler cache holds an earlier build of the same tree; cold: an empty "
            "compiler cache of the run's own (FROMSCRATCH_CCACHE_SET), removed after it")
    return [b.row("zstd fresh copy: ccache warm vs cold", Probe(shown + "  # ccache warm", []), warm,
                  Probe(shown + "  # ccache cold", []), cold, Target("≤ 0.4", 0.4, inclusive=True), note)]


# Finding alone, as the build does it before its first compile: a project's declarations read, looked up in the
# Contents index (kept in $XDG_CACHE_HOME/fromscratch, fetched when that holds none), the lines printed.
_FIND = """\
import sys
from pathlib import Path
from toolkit import targets
from toolkit.compile import deps, found, plan
from toolkit.rootfs import contents
root = Path(sys.argv[1])
system = plan.detect(root) or "make"
finding = found.find(deps.declared(root, "", system), [targets.lookup(sys.argv[2])], contents.cached_index,
                     headers_alone=system == "make")
print("\\n".join(finding.lines(1)))
"""


@benchmark("dependencies found, cold and cached, vs the build itself")
def finding(b: Bench) -> list[Row]:
    b.full_only("each run builds pbzip2 in the build container, ~30 s")
    b.require_builder_base()
    tree, version = _source_tree("pbzip2")
    arch = "amd64"
    find = [sys.executable, "-c", _FIND, str(tree), arch]
    shown_find = f"python -c FIND {tree.name} {arch}"
    build_flags = ("--toolchain", "container", "--builder-base", b.builder_base, "--arch", arch)
    root = b.work / "finding"

    def build(i: int) -> list[str]:
        copy = root / f"build-{i}" / tree.name
        shutil.copytree(tree, copy, symlinks=True)
        return b.invoke("build", "--project", str(copy), *build_flags, "--out", str(copy.parent / "dist"))

    def cold(i: int) -> list[str]:
        cache = root / f"cache-{i}"  # empty: the index is fetched from the mirror and kept, as on a first build
        return ["env", f"XDG_CACHE_HOME={cache}", *find]

    the_build = Probe(b.shown("build", "--project", "COPY", *build_flags, "--out", "DIST"), build, cwd=REPO,
                      after=lambda i: shutil.rmtree(root / f"build-{i}", ignore_errors=True))
    cached = Probe(shown_find, find, cwd=REPO)
    fetched = Probe(f"XDG_CACHE_HOME=EMPTY {shown_find}", cold, cwd=REPO,
                    after=lambda i: shutil.rmtree(root / f"cache-{i}", ignore_errors=True))
    o, c, p = b.measure([cached, fetched, the_build], slow=True)
    note = (f"Debian's pbzip2 {version} ({tree.name}, its Makefile's LDLIBS = -lbz2): FIND reads its declarations "
            f"and looks them up for {arch} as the build does before it compiles (found libbz2-dev); the build is "
            "the whole zero-flag build in the warm build container, finding included, in a fresh copy (COPY)")
    return [b.row("finding a project's dependencies, Contents index kept, vs its warm container build", cached, o,
                  the_build, p, ours_below(1.0, "s"), note),
            b.row("finding a project's dependencies, cold (Contents-amd64.gz fetched, 11 MB), vs the same build",
                  fetched, c, the_build, p, within(1.0), note + "; cold: an empty cache each run, the index fetched "
                  "from the host's mirror and checked against its signed Release")]


# One build image's layers, given as JSON, built bottom first as the container toolchain does: its own process,
# timed whole like every other command here.
_ENSURE_LAYERS = """\
import json, sys
from toolkit.compile import buildimage
from toolkit.engine import client
layers = [buildimage.BuildImage(d["base"], tuple(d["packages"]), tuple(d["foreign"]), d["emulator"],
                                base_id=d["base_id"]) for d in json.loads(sys.argv[1])]
buildimage.ensure_chain(client.connect(), layers)
"""
COLD_RUNS = 2  # each cold build downloads hundreds of MB: two runs a side, no warm-up (every run is cold)


def _cold_probe(b: Bench, side: str, shown: str, layers_on: Callable[[str], list[Any]],
                sizes: list[float]) -> Probe:
    """One side's build image, built cold each run. Removing a shared layer's tag would not make it cold: while
    other build images sit on it the engine only untags it and the next build finds it in its cache. So each
    run builds on a base of its own (the builder base under a fresh id), and removes all it made afterwards."""
    made: dict[int, list[Any]] = {}

    def argv(i: int) -> list[str]:
        # Probe.run makes argv before its clock starts: the fresh base is set-up, not measured
        layers = made[i] = layers_on(b.fresh_base(b.builder_base, f"cold-{side}", i))
        for layer in layers:
            b.remember(layer.tag)
        return [sys.executable, "-c", _ENSURE_LAYERS, json.dumps([dataclasses.asdict(x) for x in layers])]

    def after(i: int) -> None:
        layers = made.pop(i, [])
        if layers and b.image_exists(layers[-1].tag):
            sizes.append(b.image_size(layers[-1].tag))
        for layer in reversed(layers):  # top first: an image with a child would only be untagged, not deleted
            b.remove_image(layer.tag)
        b.remove_image(b.tag(f"cold-{side}", i))

    return Probe(shown, argv, cwd=REPO, after=after)


@benchmark("cold build image for arm64 alone vs all targets in one image")
def cold_build_image(b: Bench) -> list[Row]:
    b.full_only("each cold build downloads hundreds of MB of packages")
    b.require_builder_base()
    from toolkit import targets
    from toolkit.compile import buildimage

    host, arm64 = b.host_arch, targets.lookup("arm64")
    if arm64.architecture == host:
        raise Skip("the engine is arm64 itself: its arm64 build image has no cross layer to compare")
    foreign = [t for t in targets.TARGETS if t.architecture != host]
    # the build image before layers: the image's own gcc and every foreign target's cross gcc, for any target
    everything = tuple(dict.fromkeys(("gcc", "libc6-dev", "binutils", *(p for t in foreign for p in t.packages))))
    sizes: dict[str, list[float]] = {"ours": [], "peer": []}
    ours = _cold_probe(b, "ours", f"buildimage.ensure_chain(client, buildimage.chain(BASE, arm64, {host}))",
                       lambda base: buildimage.chain(base, arm64, host,
                                                     base_id=buildimage.base_image_id(b.client, base)),
                       sizes["ours"])
    peer = _cold_probe(b, "peer", "buildimage.ensure(client, BuildImage(BASE, ('gcc', 'libc6-dev', 'binutils', "
                                  "*each foreign target's packages)))",
                       lambda base: [buildimage.BuildImage(base, everything)], sizes["peer"])
    o, p = measure([ours, peer], COLD_RUNS, warmup=0)
    layers = buildimage.chain(b.builder_base, arm64, host, base_id=buildimage.base_image_id(b.client, b.builder_base))
    compilers = len({t.packages for t in foreign})  # arm v5 and v6 share armel's
    name = "cold build image for arm64: {}, its layers alone vs all targets in one image"
    note = (f"BASE: {b.builder_base} under a fresh id each run (a label of its own), so no layer or build cache "
            f"applies and apt-get downloads and installs every package; ours: the image of a --src build (what the "
            f"old image could do: compile C for any target), {len(layers)} layers, "
            f"{' + '.join(' '.join(x.packages) for x in layers)}; a --project build adds a shared layer of build "
            f"systems ({' '.join(buildimage.SYSTEM_PACKAGES)}) and QEMU (qemu-{arm64.qemu}-static only); "
            f"peer: one image, {' '.join(everything)}: the {compilers} cross compilers of all {len(foreign)} "
            "foreign targets, as before the build image was layered; no warm-up (every run is cold), the sides "
            "alternating; downloads included, so the network's speed counts")
    return [b.row(name.format("build time"), ours, o, peer, p, faster_by(2), note),
            Row(name.format("image size"), Stat(tuple(sizes["ours"]), "B"), Stat(tuple(sizes["peer"]), "B"),
                ours.label, peer.label, Target("at most half the size (ratio ≤ 0.5)", 0.5, inclusive=True),
                "the engine's Size of ours' top layer and of the peer's image, each over BASE, from the builds of "
                "the build time row")]


@benchmark("20 image builds in a row, then 4 at a time, vs docker build")
def load(b: Bench) -> list[Row]:
    b.full_only("80 image builds per run")
    hello = b.hello
    ctx = _dockerfile_context(b, hello, "image")
    count = 20

    def batch(side: str, jobs: int) -> Probe:
        def tags(i: int) -> list[str]:
            return [b.tag(f"load-{side}-{jobs}-{i}", k) for k in range(1, count + 1)]

        def argv(i: int) -> list[str]:
            tags(i)
            each = b.tag(f"load-{side}-{jobs}-{i}", "{}", remember=False)  # xargs puts 1..20 in place of {}
            one = _image_argv(b, side, each, hello, ctx, f"{b.run_id}-load-{jobs}-{i}-{{}}")
            return ["sh", "-c", f"seq {count} | xargs -P {jobs} -I{{}} {shlex.join(one)} >/dev/null"]

        def after(i: int) -> None:
            for tag in tags(i):
                b.remove_image(tag)

        shown = "invoke image --tag T-N --binary hello" if side == "ours" else "docker build --no-cache -t T-N ctx"
        return Probe(f"seq {count} | xargs -P {jobs} -I N {shown}", argv, after=after)

    rows = []
    for jobs, how in ((1, "in a row"), (4, "4 at a time")):
        ours, peer = batch("ours", jobs), batch("peer", jobs)
        rows.append(b.compare(f"{count} image builds {how} vs docker build", ours, peer, slow=True,
                              note=_builder_note(b)))
    return rows
