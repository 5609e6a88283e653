"""verify-image reads what the image itself holds (issue 28, point 7): from the engine, its own layers (a one-file
image is one file, not the engine's /etc/hosts and friends too); from a registry with --remote, every platform
of an index or the one --platform picks; and a multi-platform image's per-platform tags in the engine."""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest

from tests.conftest import assert_clean_failure, invoke, serve_registry

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    with serve_registry(tmp_path_factory.mktemp("registry")) as served:
        yield served.host


def test_a_one_file_image_has_one_file(binaries, image_tag, tmp_path):
    tag = image_tag()
    assert invoke("image", "--tag", tag, "--binary", str(binaries["static"]), cwd=tmp_path).code == 0
    result = invoke("verify-image", "--tag", tag)
    assert result.code == 0, result
    assert result.out.startswith(f"{tag} (linux/amd64): 1 file(s), 1 ELF\n"), result.out
    doc = json.loads(invoke("verify-image", "--tag", tag, "--json").out)
    assert doc["files"] == 1 and doc["elf_files"] == 1


def test_a_pushed_image_is_checked_in_its_registry(registry, tmp_path, docker_client):
    name = f"{registry}/fromscratch-test-{uuid.uuid4().hex[:8]}"
    store = {"FROMSCRATCH_STORE": str(tmp_path / "store")}
    try:
        made = invoke("image", "--tag", name, "--platform", "linux/amd64,linux/arm64", "--toolchain", "native",
                      cwd=tmp_path, env=store, timeout=900)
        assert made.code == 0, made
        assert invoke("push", "--tag", name, env=store).code == 0
    finally:  # pushed, not pulled: nothing of it is left in the engine
        for tag in (f"{name}:latest", f"{name}:latest-amd64", f"{name}:latest-arm64"):
            subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)
    local = invoke("verify-image", "--tag", name)
    assert_clean_failure(local, 2)
    assert "--remote" in local.err and "docker pull" in local.err and len(local.err.strip().splitlines()) == 1

    both = invoke("verify-image", "--tag", name, "--remote")
    assert both.code == 0, both
    assert f"{name}:latest (linux/amd64): 1 file(s), 1 ELF" in both.out
    assert f"{name}:latest (linux/arm64/v8): 1 file(s), 1 ELF" in both.out
    docs = json.loads(invoke("verify-image", "--tag", name, "--remote", "--json").out)
    assert [d["platform"] for d in docs] == ["linux/amd64", "linux/arm64/v8"] and all(d["ok"] for d in docs)
    one = invoke("verify-image", "--tag", name, "--remote", "--platform", "arm64", "--json")
    assert one.code == 0, one
    assert json.loads(one.out)["platform"] == "linux/arm64/v8"
    absent = invoke("verify-image", "--tag", name, "--remote", "--platform", "s390x")
    assert_clean_failure(absent, 2)
    assert "linux/s390x" in absent.err and "linux/arm64/v8" in absent.err, absent.err
    alone = invoke("verify-image", "--tag", name, "--insecure")  # a registry flag without the registry
    assert_clean_failure(alone, 2)
    assert "--insecure" in alone.err and "--remote" in alone.err
    never = invoke("verify-image", "--tag", f"{name}-never", "--remote")
    assert_clean_failure(never, 2)
    assert f"no image {name}-never:latest in its registry" in never.err and len(never.err.strip().splitlines()) == 1


def test_platform_picks_a_multi_platform_images_tag_in_the_engine(tmp_path, image_tag):
    tag = image_tag()
    try:
        made = invoke("image", "--tag", tag, "--platform", "linux/amd64,linux/arm64", "--toolchain", "native",
                      cwd=tmp_path, timeout=900, env={"FROMSCRATCH_STORE": str(tmp_path / "store")})
        assert made.code == 0, made
        arm = invoke("verify-image", "--tag", tag, "--platform", "linux/arm64", "--json")
        assert arm.code == 0, arm
        assert json.loads(arm.out)["image"] == f"{tag}-arm64" and json.loads(arm.out)["platform"] == "linux/arm64/v8"
        # the plain tag is the engine's own platform's
        assert json.loads(invoke("verify-image", "--tag", tag, "--json").out)["platform"] == "linux/amd64"
    finally:
        for extra in (f"{tag}-amd64", f"{tag}-arm64"):
            subprocess.run(["docker", "rmi", "-f", extra], capture_output=True)
