"""The tasks against the engines users have: dockerd, and Podman's Docker-API service on a socket of its own and
over TCP (the path every remote DOCKER_HOST takes). Image load and run, run's exit code, verify-image, a
container-toolchain build whose build image that engine built, a multi-platform image pushed, a rootfs import,
and interrupts that leave nothing behind, each on every engine."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.conftest import assert_clean_failure, gcc, serve_registry
from tests.faults import SLOW_CFLAGS, Sandbox, descendants, new_base
from toolkit.engine.client import ROLE, SESSION
from toolkit.rootfs import debootstrap as rootfs
from toolkit.rootfs.load import planned_image

pytestmark = pytest.mark.engine

ENGINES = ["docker", "podman", "podman-tcp"]
EPOCH = 1_600_000_000
PROGRAM = '#include <stdio.h>\nint main(void){ puts("hello from a scratch image"); return 3; }\n'


@dataclass
class Engine:
    name: str
    host: str  # the DOCKER_HOST the tasks are given
    client: Any
    box: Sandbox
    made: list[str] = field(default_factory=list)  # names to remove from the engine afterwards

    def run(self, *args: str, timeout: float = 600, **env: str) -> Any:
        return self.box.run(*args, env=self.box.env(DOCKER_HOST=self.host, **env), timeout=timeout)

    def start(self, *args: str, **env: str) -> Any:
        return self.box.start(*args, env=self.box.env(DOCKER_HOST=self.host, **env))

    def tag(self) -> str:
        name = f"fromscratch-test-{self.name}-{uuid.uuid4().hex[:10]}:latest"
        self.made.append(name)
        return name

    def assert_clean(self) -> None:
        """As Sandbox.assert_clean, but a build image this run made is meant to stay (and carries its label)."""
        box = self.box
        assert not box.containers(), box.containers()
        left = [i for i in box.images() if (i.get("Labels") or {}).get(ROLE) != "builder"]
        assert not left, left
        assert not box.temp_leftovers() and not box.partial_files(), (box.temp_leftovers(), box.partial_files())


@pytest.fixture(params=ENGINES)
def engine(request, tmp_path, docker_client) -> Iterator[Engine]:
    """One engine, with a sandbox whose leftovers are looked for in that engine; every tag made is removed."""
    if request.param == "docker":
        host, client = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock", docker_client
    else:
        podman = request.getfixturevalue("podman")
        host = podman.socket if request.param == "podman" else podman.tcp
        client = podman.client(host)
    made = Engine(request.param, host, client, Sandbox(tmp_path, client))
    yield made
    made.box.remove_containers()
    names = tuple(tag.split(":latest")[0] for tag in made.made)
    for image in client.api.images():
        for name in image.get("RepoTags") or []:
            # Podman's names carry the registry it assumed: localhost/NAME or docker.io/library/NAME
            short = name.removeprefix("localhost/").removeprefix("docker.io/library/")
            if short.startswith(names):
                client.api.remove_image(name, force=True)


@pytest.fixture
def base(engine, request) -> str:
    """The build container's base in that engine: dockerd's own, or a copy in Podman's store."""
    if engine.name == "docker":
        return str(request.getfixturevalue("builder_base"))
    return str(request.getfixturevalue("podman_builder_base"))


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Iterator[str]:
    with serve_registry(tmp_path_factory.mktemp("registry")) as served:
        yield served.host


def test_image_run_exit_code_verify_image_and_inspect(engine):
    prog = gcc(engine.box.root, PROGRAM, "-static", "-Os", name="greeter")
    tag = engine.tag()
    made = engine.run("image", "--tag", tag, "--binary", str(prog))
    assert made.code == 0 and "loaded linux/amd64 into the engine" in made.out, made
    ran = engine.run("run", "--tag", tag)
    assert ran.code == 3 and ran.out == "hello from a scratch image\n", ran
    checked = engine.run("verify-image", "--tag", tag)
    assert checked.code == 0 and "ok:" in checked.out, checked
    shown = engine.run("inspect", "--tag", tag, "--json")
    assert shown.code == 0, shown
    info = json.loads(shown.out)
    assert info["platform"] == "linux/amd64" and [f["path"] for f in info["files"]] == ["/greeter"]
    assert engine.client.images.get(tag).attrs["Config"]["Cmd"] == ["/greeter"]
    engine.assert_clean()


def test_a_missing_image_is_one_line(engine):
    result = engine.run("run", "--tag", f"fromscratch-test-never-{uuid.uuid4().hex[:8]}")
    assert_clean_failure(result, 2)
    assert "no image" in result.err and len(result.err.strip().splitlines()) == 1, result.err


def test_container_toolchain_build_with_a_build_image_that_engine_built(engine, base):
    result = engine.run("build-hello", "--toolchain", "container", "--builder-base", base, "--out", "hello",
                        timeout=900)
    assert result.code == 0, result
    builders = [t for i in engine.client.api.images(filters={"label": f"{ROLE}=builder"})
                for t in i.get("RepoTags") or [] if "fromscratch/builder:" in t]
    assert builders, "the build image is not in this engine"
    tag = engine.tag()
    assert engine.run("image", "--tag", tag, "--binary", "hello").code == 0
    ran = engine.run("run", "--tag", tag)
    assert ran.code == 0 and "built for linux/amd64" in ran.out, ran
    engine.assert_clean()


def test_multi_platform_image_then_push(engine, registry, tmp_path):
    name = f"{registry}/fromscratch-test-{engine.name}-{uuid.uuid4().hex[:8]}"
    engine.made.append(name)
    store = {"FROMSCRATCH_STORE": str(tmp_path / "store")}
    made = engine.run("image", "--tag", name, "--platform", "linux/amd64,linux/arm64", "--toolchain", "native",
                      **store)
    assert made.code == 0, made
    index_digest = next(line.split()[1] for line in made.out.splitlines() if line.startswith("digest:"))
    ran = engine.run("run", "--tag", f"{name}:latest-arm64")
    assert ran.code == 0 and "built for linux/arm64" in ran.out, ran
    pushed = engine.run("push", "--tag", name, **store)
    assert pushed.code == 0 and index_digest in pushed.out, pushed
    index = _manifest(registry, name, "latest")
    assert [m["platform"]["architecture"] for m in index["manifests"]] == ["amd64", "arm64"]
    # a one-platform image is pushed from the engine's own copy (its `docker save`), with the digest it was given
    assert engine.run("build-hello", "--tiny", "--toolchain", "native").code == 0
    single = engine.run("image", "--tag", f"{name}:one", **store)
    assert single.code == 0, single
    digest = next(line.split()[1] for line in single.out.splitlines() if line.startswith("digest:"))
    pushed = engine.run("push", "--tag", f"{name}:one", **store)
    assert pushed.code == 0 and f"digest:   {digest}" in pushed.out, pushed


def _manifest(registry: str, name: str, ref: str) -> dict:
    repository = name.split("/", 1)[1]
    request = urllib.request.Request(f"http://{registry}/v2/{repository}/manifests/{ref}", headers={
        "Accept": "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return dict(json.load(answer))


def test_rootfs_import(engine, binaries):
    tree = engine.box.root / "tree"
    (tree / "usr/bin").mkdir(parents=True)
    (tree / "usr/bin/env").write_bytes(binaries["static"].read_bytes())
    (tree / "usr/bin/env").chmod(0o755)
    os.link(tree / "usr/bin/env", tree / "usr/bin/sh")
    (tree / "bin").symlink_to("usr/bin")
    ready = rootfs.prepare_import(tree, None, False, EPOCH)
    expected = planned_image(ready.plan, ready.config, ready.created, ready.created_by).image_id
    tag = engine.tag()
    made = engine.run("import-rootfs", str(tree), "--tag", tag, "--quiet", SOURCE_DATE_EPOCH=str(EPOCH))
    assert made.code == 0, made
    attrs = engine.client.images.get(tag).attrs
    assert attrs["Id"] == expected and attrs["Architecture"] == "amd64" and attrs["Config"]["Cmd"] == ["/bin/sh"]
    ran = engine.run("run", "--tag", tag)
    assert ran.code == 0 and ran.out == "hi\n", ran
    engine.assert_clean()  # the throw-away import image (role rootfs-import) is gone too


def _running(box: Sandbox) -> list:
    return [c for c in box.containers() if c["State"] == "running"]


def test_interrupted_run_and_container_compile_leave_nothing(engine, base):
    sleeper = gcc(engine.box.root, "#include <unistd.h>\nint main(void){ sleep(600); return 0; }\n", "-static",
                  name="sleeper")
    tag = engine.tag()
    assert engine.run("image", "--tag", tag, "--binary", str(sleeper)).code == 0
    run = engine.start("run", "--tag", tag)
    run.wait_for("the container to run", lambda: _running(engine.box))
    run.interrupt(signal.SIGINT)
    result = run.finish()
    assert_clean_failure(result, 130)
    engine.assert_clean()

    (engine.box.work / "app.c").write_text(PROGRAM)
    run = engine.start("build", "--src", "app.c", "--out", "out/app", "--toolchain", "container",
                       "--builder-base", base, "--cflags", SLOW_CFLAGS)
    run.wait_for("the build container to run gcc", lambda: _running(engine.box), timeout=900)
    time.sleep(0.5)
    run.interrupt(signal.SIGTERM)
    result = run.finish()
    assert_clean_failure(result, 130)
    assert not (engine.box.work / "out").exists()
    engine.assert_clean()


def test_an_interrupted_build_image_leaves_no_image_in_podman(podman, podman_builder_base, tmp_path):
    """Podman's builder runs the RUN step it is stopped in to its end and keeps each step's image until then; the
    build waits for that, and removes them."""
    client = podman.client()
    fresh = new_base(client, podman_builder_base)
    base_id = client.images.get(fresh).id
    box = Sandbox(tmp_path, client)
    try:
        run = box.start("build-hello", "--toolchain", "container", "--builder-base", fresh,
                        env=box.env(DOCKER_HOST=podman.socket, FROMSCRATCH_LOG="INFO"))
        run.wait_for("the build image's RUN step", lambda: ": RUN " in run.err)
        time.sleep(1)
        run.interrupt(signal.SIGINT)
        result = run.finish(timeout=400)
        assert_clean_failure(result, 130)
        left = descendants(client, base_id)
        assert not left, [(a["Id"][:19], a.get("RepoTags")) for a in left]
        assert not (box.work / "hello").exists()
        box.assert_clean()
    finally:
        client.api.remove_image(fresh, force=True)


KEPT_MAKEFILE = "app: main.o part.o\n\t$(CC) -o app main.o part.o\n"
KEPT_MAIN = '#include <stdio.h>\nint part(void);\nint main(void){ printf("%d\\n", part()); return 0; }\n'


def test_a_kept_state_rebuilds_what_changed_on_each_engine(engine, base):
    """The kept build state is a volume of that engine (Podman's own, over its socket and over TCP): a rebuild
    sends the change and matches a clean build; `invoke clean` lists it and removes it."""
    proj = engine.box.work / "proj"
    proj.mkdir()
    for name, text in (("Makefile", KEPT_MAKEFILE), ("main.c", KEPT_MAIN), ("part.c", "int part(void){return 1;}\n")):
        (proj / name).write_text(text)
    args = ("build", "--project", str(proj), "--toolchain", "container", "--builder-base", base)
    first = engine.run(*args, "--out", "one", timeout=900)
    assert first.code == 0, first
    states = engine.client.api.volumes(filters={"label": f"{SESSION}={engine.box.session}"}).get("Volumes") or []
    [state] = [v["Name"] for v in states if (v.get("Labels") or {}).get(ROLE) == "state"]
    try:
        (proj / "part.c").write_text("int part(void){return 2;}\n")
        again = engine.run(*args, "--out", "two")
        assert again.code == 0, again
        clean = engine.run(*args, "--out", "three", "--clean")
        assert clean.code == 0, clean
        work = engine.box.work
        assert (work / "two" / "app").read_bytes() == (work / "three" / "app").read_bytes()
        assert (work / "one" / "app").read_bytes() != (work / "two" / "app").read_bytes()
        listed = engine.run("clean", "--dry-run")
        assert listed.code == 0 and state in listed.out + listed.err, listed
    finally:
        for v in engine.client.api.volumes(filters={"label": f"{SESSION}={engine.box.session}"}).get("Volumes") or []:
            engine.client.api.remove_volume(v["Name"], force=True)
    engine.assert_clean()
