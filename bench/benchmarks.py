"""The benchmarks, in table order: each runs ours and the peer a user would otherwise pick, side by side."""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from .context import HELLO_C, Bench
from .harness import (
    Probe,
    Row,
    Sample,
    Skip,
    Stat,
    Target,
    faster,
    faster_by,
    ours_below,
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
    return [b.compare("build-hello, native", ours, peer, cpu=True)]


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
        for tiny in (False, True):
            stem = "hello-tiny" if tiny else "hello"
            name, target = f"image size: {stem}, {arch}", smaller() if tiny else None
            reason = no_toolchain or (no_tiny if tiny else "")
            if reason:
                rows.append(Row(name, target=target, skipped=reason))
                continue
            binary = _built(b, f"{stem}-{arch}", *(("--tiny",) if tiny else ()), *flags)
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
