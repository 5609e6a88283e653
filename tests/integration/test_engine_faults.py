"""Engine faults in the middle of real runs: a build container killed or removed from outside, and the engine
going away (a socket proxy in front of the shared engine is killed; the engine itself is never touched). Each is
one error line naming the step, a non-zero exit, and nothing half-written."""

from __future__ import annotations

import re
import time

import pytest

from tests.conftest import assert_clean_failure
from tests.faults import SLOW_CFLAGS, sparse_binary

pytestmark = pytest.mark.engine

HELLO = '#include <stdio.h>\nint main(void){ puts("hello"); return 0; }\n'


def _error_line(result) -> str:
    lines = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.err
    return lines[0]


def _start_slow_build(box, builder_base, **env):
    (box.work / "app.c").write_text(HELLO)
    run = box.start("build", "--src", "app.c", "--out", "app", "--toolchain", "container",
                    "--builder-base", builder_base, "--cflags", SLOW_CFLAGS, env=box.env(**env))
    run.wait_for("the build container to run gcc", lambda: [c for c in box.containers() if c["State"] == "running"])
    return run, box.containers()[0]


def test_build_container_killed_from_outside(sandbox, builder_base, docker_client):
    run, container = _start_slow_build(sandbox, builder_base)
    docker_client.api.kill(container["Id"])
    result = run.finish()
    assert_clean_failure(result, 1)
    assert "the build container was killed while compiling for linux/amd64 (exit 137, signal 9)" in _error_line(result)
    assert sorted(p.name for p in sandbox.work.iterdir()) == ["app.c"]
    sandbox.assert_clean()


def test_build_container_removed_from_outside(sandbox, builder_base, docker_client):
    run, container = _start_slow_build(sandbox, builder_base)
    docker_client.api.remove_container(container["Id"], force=True)
    result = run.finish()
    assert_clean_failure(result)
    assert "compiling for linux/amd64 in the build container failed" in _error_line(result)
    assert "could not remove" not in result.err  # someone else removing it is not our failure to report
    assert sorted(p.name for p in sandbox.work.iterdir()) == ["app.c"]
    sandbox.assert_clean()


def test_engine_goes_away_during_a_container_compile(sandbox, builder_base, engine_proxy, docker_client):
    run, container = _start_slow_build(sandbox, builder_base, DOCKER_HOST=engine_proxy.docker_host)
    engine_proxy.kill()
    result = run.finish()
    assert_clean_failure(result, 2)
    line = _error_line(result)
    assert "compiling for linux/amd64 in the build container failed: the engine stopped answering" in line, line
    assert sorted(p.name for p in sandbox.work.iterdir()) == ["app.c"]
    assert not sandbox.temp_leftovers()
    # The engine was unreachable, so the container could not be removed: the run says which one it left.
    name = container["Names"][0].lstrip("/")
    assert f"docker rm -f {name}" in result.err
    assert [c["Id"] for c in sandbox.containers()] == [container["Id"]]


def test_engine_goes_away_during_an_image_load(sandbox, binaries, engine_proxy, docker_client, image_tag, tmp_path):
    big = sparse_binary(binaries["static"], tmp_path / "big", 512 << 20)
    tag = image_tag()
    # --sbom none: the minimal SBOM's hash of the 512 MiB binary would come between the layer and the load
    run = sandbox.start("image", "--tag", tag, "--binary", str(big), "--sbom", "none",
                        env=sandbox.env(DOCKER_HOST=engine_proxy.docker_host))
    # the layer is written whole first; then the archive around it streams to the engine
    run.wait_for("the layer to be written", lambda: any(p.stat().st_size >= 512 << 20
                                                        for p in sandbox.tmp.glob("fromscratch-image-*/layer.tar")))
    time.sleep(0.3)
    engine_proxy.kill()
    result = run.finish()
    assert_clean_failure(result, 2)
    line = _error_line(result)
    assert re.search(rf"(loading {re.escape(tag)} into the engine|inspecting {re.escape(tag)}) failed: "
                     "the engine stopped answering", line), line
    assert not [i for i in docker_client.api.images() if tag in (i.get("RepoTags") or [])]
    sandbox.assert_clean()


def test_engine_goes_away_during_the_build_image_creation(sandbox, fresh_base, engine_proxy, docker_client):
    base_id = docker_client.images.get(fresh_base).id
    run = sandbox.start("build-hello", "--toolchain", "container", "--builder-base", fresh_base,
                        env=sandbox.env(DOCKER_HOST=engine_proxy.docker_host))
    run.wait_for("apt-get in the build image's RUN step",
                 lambda: docker_client.api.containers(filters={"ancestor": base_id}))
    engine_proxy.kill()
    result = run.finish()
    assert_clean_failure(result, 2)
    line = _error_line(result)
    assert "building the build image fromscratch/builder:" in line and "the engine stopped answering" in line, line
    assert "could not remove the unfinished build's images" in result.err  # and says which
    assert not (sandbox.work / "hello").exists()
    assert not sandbox.temp_leftovers()
