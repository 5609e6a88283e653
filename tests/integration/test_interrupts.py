"""Ctrl-C (SIGINT to the process group) and SIGTERM sent to real runs at chosen moments: each run says
"interrupted", exits 130, and leaves no container, no temporary or half-built image, no partial output and no
temporary directory behind."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.conftest import assert_clean_failure, gcc
from tests.faults import SLOW_CFLAGS, descendants, sparse_binary
from toolkit.image import scratch as img
from toolkit.rootfs import debootstrap as rootfs
from toolkit.rootfs.load import planned_image

pytestmark = pytest.mark.engine

SIGNALS = pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
HELLO = '#include <stdio.h>\nint main(void){ puts("hello"); return 0; }\n'
BIG = 512 << 20  # large enough that each moment below lasts a while, small enough to keep the suite lean


def assert_interrupted(result) -> None:
    assert_clean_failure(result, 130)
    assert "interrupted" in result.err


def _running(box) -> list:
    return [c for c in box.containers() if c["State"] == "running"]


@SIGNALS
def test_during_a_container_compile(signum, sandbox, builder_base):
    (sandbox.work / "app.c").write_text(HELLO)
    run = sandbox.start("build", "--src", "app.c", "--out", "out/app", "--toolchain", "container",
                        "--builder-base", builder_base, "--cflags", SLOW_CFLAGS)
    run.wait_for("the build container to run gcc", lambda: _running(sandbox))
    time.sleep(0.5)
    run.interrupt(signum)
    assert_interrupted(run.finish())
    assert not (sandbox.work / "out").exists()
    sandbox.assert_clean()


def test_a_second_signal_does_not_cut_the_cleanup_short(sandbox, builder_base):
    (sandbox.work / "app.c").write_text(HELLO)
    run = sandbox.start("build", "--src", "app.c", "--out", "app", "--toolchain", "container",
                        "--builder-base", builder_base, "--cflags", SLOW_CFLAGS)
    run.wait_for("the build container to run gcc", lambda: _running(sandbox))
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGTERM):
        run.interrupt(signum)
        time.sleep(0.02)
    assert_interrupted(run.finish())
    assert sorted(p.name for p in sandbox.work.iterdir()) == ["app.c"]
    sandbox.assert_clean()


@SIGNALS
def test_during_a_native_compile(signum, sandbox):
    (sandbox.work / "app.c").write_text(HELLO)
    run = sandbox.start("build", "--src", "app.c", "--out", "app", "--toolchain", "native",
                        "--cflags", SLOW_CFLAGS)
    run.wait_for("gcc to start on the partial output", lambda: sandbox.partial_files())
    time.sleep(0.3)
    run.interrupt(signum)
    assert_interrupted(run.finish())
    assert sorted(p.name for p in sandbox.work.iterdir()) == ["app.c"]
    sandbox.assert_clean()
    assert not _processes_mentioning(sandbox.root), "gcc's children outlived the interrupted run"


@SIGNALS
def test_during_native_compiles_for_two_targets_at_once(signum, sandbox):
    """Compiles in worker threads: the signal reaches the main thread only, which stops their process groups."""
    (sandbox.work / "app.c").write_text(HELLO)
    run = sandbox.start("build", "--src", "app.c", "--out", "app", "--arch", "amd64,arm64", "--jobs", "2",
                        "--toolchain", "native", "--cflags", SLOW_CFLAGS)
    run.wait_for("both compiles to start", lambda: len(sandbox.partial_files()) == 2)
    time.sleep(0.3)
    run.interrupt(signum)
    assert_interrupted(run.finish(timeout=60))
    assert sorted(p.name for p in sandbox.work.iterdir()) == ["app.c"]
    sandbox.assert_clean()
    assert not _processes_mentioning(sandbox.root), "a compiler outlived the interrupted run"


def _processes_mentioning(text: Path) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().decode(errors="replace")
        except OSError:
            continue
        if str(text) in args:
            found.append(args.replace("\0", " "))
    return found


@SIGNALS
def test_during_the_build_image_creation(signum, sandbox, fresh_base, docker_client):
    base_id = docker_client.images.get(fresh_base).id
    run = sandbox.start("build-hello", "--toolchain", "container", "--builder-base", fresh_base)
    # the RUN apt-get step's container: the ENV step before it has already committed an image
    run.wait_for("apt-get in the build image's RUN step",
                 lambda: docker_client.api.containers(filters={"ancestor": base_id}))
    time.sleep(1)
    run.interrupt(signum)
    assert_interrupted(run.finish())
    assert not docker_client.api.containers(all=True, filters={"ancestor": base_id})
    left = descendants(docker_client, base_id)
    assert not left, [(a["Id"][:19], a.get("RepoTags")) for a in left]
    assert not (sandbox.work / "hello").exists()
    sandbox.assert_clean()


@SIGNALS
def test_during_a_run(signum, sandbox, docker_client, image_tag):
    sleeper = gcc(sandbox.root, "#include <unistd.h>\nint main(void){ sleep(600); return 0; }\n", "-static",
                  name="sleeper")
    tag = image_tag()
    assert sandbox.run("image", "--tag", tag, "--binary", str(sleeper)).code == 0
    run = sandbox.start("run", "--tag", tag)
    run.wait_for("the container to run", lambda: _running(sandbox))
    run.interrupt(signum)
    assert_interrupted(run.finish())
    sandbox.assert_clean()


@pytest.fixture(scope="module")
def big_binary(binaries, tmp_path_factory) -> tuple[Path, str]:
    """A 1 GiB static binary and the id of the image `invoke image` makes of it (computed here, in process)."""
    path = sparse_binary(binaries["static"], tmp_path_factory.mktemp("big") / "big", BIG)
    with img.assemble(path, "unused:latest") as built:
        return path, built.image.image_id


def _found(box, pattern: str, min_size: int = 0) -> bool:
    return any(p.stat().st_size >= min_size for p in box.tmp.glob(pattern))


# The layer is written to a scratch file, then the archive around it is streamed to the engine.
IMAGE_POINTS = {
    "writing-the-layer": ("fromscratch-image-*/layer.tar", 0),
    "streaming-it-to-the-engine": ("fromscratch-image-*/layer.tar", BIG),
}


@SIGNALS
@pytest.mark.parametrize("point", list(IMAGE_POINTS))
def test_during_image_assembly_and_load(point, signum, sandbox, big_binary, docker_client, image_tag):
    path, image_id = big_binary
    tag = image_tag()
    run = sandbox.start("image", "--tag", tag, "--binary", str(path))
    pattern, size = IMAGE_POINTS[point]
    run.wait_for(point, lambda: _found(sandbox, pattern, size))
    run.interrupt(signum)
    result = run.finish()
    assert_interrupted(result)
    _assert_whole_or_nothing(docker_client, tag, image_id)
    sandbox.assert_clean()


@SIGNALS
def test_during_a_dockerfile_build(signum, sandbox, big_binary, docker_client, image_tag):
    """The dockerfile backend: each Dockerfile step commits an image; an interrupted build keeps none of them."""
    path, _ = big_binary
    tag = image_tag()
    started = time.time()
    run = sandbox.start("image", "--tag", tag, "--binary", str(path), "--backend", "dockerfile",
                        env=sandbox.env(FROMSCRATCH_LOG="INFO"))
    run.wait_for("the COPY step", lambda: "Step 2/" in run.err)
    run.interrupt(signum)
    assert_interrupted(run.finish())
    assert not _dangling_since(docker_client, started, BIG)
    sandbox.assert_clean()


def _dangling_since(client, started: float, size: int) -> list[str]:
    """Untagged images with no child, at least size bytes, made since started: what an interrupted build of the
    big binary could leave (no other test makes images this big)."""
    images = client.api.images(all=True)
    parents = {i.get("ParentId") for i in images}
    return [i["Id"] for i in images
            if not [t for t in i.get("RepoTags") or [] if t != "<none>:<none>"] and i["Id"] not in parents
            and i.get("Size", 0) >= size and i.get("Created", 0) >= started - 1]


def _assert_whole_or_nothing(client, tag: str, image_id: str) -> None:
    """The interrupt may land after the engine took the whole archive; then the image is complete and tagged.
    Otherwise no image with that id exists at all: nothing dangling."""
    from docker.errors import ImageNotFound

    try:
        tagged = client.images.get(tag).id
    except ImageNotFound:
        tagged = None
    try:
        client.images.get(image_id)
        present = True
    except ImageNotFound:
        present = False
    assert tagged == image_id if present else tagged is None, (tag, tagged, present)


@pytest.fixture(scope="module")
def rootfs_tree(tmp_path_factory) -> tuple[Path, str]:
    """A small root filesystem with two large sparse files (so the tar takes a moment), and its image id."""
    root = tmp_path_factory.mktemp("rootfs") / "root"
    for d in ("bin", "etc", "usr/lib", "var/empty"):
        (root / d).mkdir(parents=True)
    (root / "etc/os-release").write_text("ID=fromscratch-test\n")
    (root / "bin/sh").symlink_to("busybox")
    for name in ("usr/lib/big-a", "usr/lib/big-b"):
        with open(root / name, "wb") as fh:
            fh.truncate(BIG // 2)
    ready = rootfs.prepare_import(root, None, False, EPOCH)
    image = planned_image(ready.plan, ready.config, ready.created, ready.created_by)
    return root, image.image_id


EPOCH = 1_700_000_000
# The tree is checked, then streamed once into the engine (no file on disk): the progress lines mark the moments.
ROOTFS_POINTS = {
    "checking-the-tree": "==> checking",
    "streaming-the-layer": "(25%)",
}


@SIGNALS
@pytest.mark.parametrize("point", list(ROOTFS_POINTS))
def test_during_a_rootfs_tar_and_import(point, signum, sandbox, rootfs_tree, docker_client, image_tag):
    root, image_id = rootfs_tree
    tag = image_tag("fromscratch-test-rootfs")
    run = sandbox.start("import-rootfs", str(root), "--tag", tag,
                        env=sandbox.env(SOURCE_DATE_EPOCH=str(EPOCH)))
    run.wait_for(point, lambda: ROOTFS_POINTS[point] in run.err)
    run.interrupt(signum)
    assert_interrupted(run.finish())
    _assert_whole_or_nothing(docker_client, tag, image_id)
    sandbox.assert_clean()


def test_the_rootfs_id_above_is_what_import_makes(sandbox, rootfs_tree, docker_client, image_tag):
    """Guards the whole-or-nothing checks: an uninterrupted import gives exactly the id they expect."""
    root, image_id = rootfs_tree
    tag = image_tag("fromscratch-test-rootfs")
    result = sandbox.run("import-rootfs", str(root), "--tag", tag, env=sandbox.env(SOURCE_DATE_EPOCH=str(EPOCH)))
    assert result.code == 0, result
    assert docker_client.images.get(tag).id == image_id
    sandbox.assert_clean()
