"""Multi-platform images and `invoke push` against a real registry (Debian's docker-registry on 127.0.0.1),
then `docker pull --platform` of what was pushed."""

from __future__ import annotations

import json
import socket
import subprocess
import tarfile
import uuid

import pytest

from tests.conftest import assert_clean_failure, invoke, serve_registry

pytestmark = pytest.mark.engine
PLATFORMS = "linux/amd64,linux/arm64"


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """host:port of a throwaway registry, storage in a temporary directory, stopped afterwards."""
    with serve_registry(tmp_path_factory.mktemp("registry")) as served:
        yield served.host


@pytest.fixture
def names(docker_client, tmp_path, monkeypatch):
    """Unique repository names; every tag made from them is removed from the engine afterwards."""
    monkeypatch.setenv("FROMSCRATCH_STORE", str(tmp_path / "store"))
    made: list[str] = []

    def make(host: str) -> str:
        name = f"{host}/fromscratch-test-{uuid.uuid4().hex[:10]}"
        made.append(name)
        return name

    yield make
    # the low-level list: images.list() inspects every image, and another run may remove one in between
    for image in docker_client.api.images():
        for tag in image.get("RepoTags") or []:
            if any(tag.startswith(name + ":") for name in made):
                docker_client.api.remove_image(tag, force=True)


def _pull_and_run(docker_client, ref: str, platform: str) -> str:
    pulled = subprocess.run(["docker", "pull", "--platform", platform, ref], capture_output=True, text=True)
    assert pulled.returncode == 0, pulled.stderr
    assert docker_client.images.get(ref).attrs["Architecture"] == platform.split("/")[1]
    return docker_client.containers.run(ref, remove=True, platform=platform).decode()


def test_multi_platform_image_pushes_and_pulls_per_platform(registry, names, docker_client, tmp_path):
    name = names(registry)
    made = invoke("image", "--tag", name, "--platform", PLATFORMS, "--toolchain", "native", cwd=tmp_path)
    assert made.code == 0, made
    written = invoke("image", "--tag", name, "--platform", PLATFORMS, "--toolchain", "native",
                     "--output", "oci-archive:multi.tar", cwd=tmp_path)
    assert written.code == 0, written
    digest = next(line.split()[1] for line in made.out.splitlines() if line.startswith("digest:"))
    assert f"digest:   {digest}" in written.out  # two builds, one index digest
    with tarfile.open(tmp_path / "multi.tar") as tar:
        top = json.load(tar.extractfile("index.json"))["manifests"][0]  # type: ignore[arg-type]
        index = json.load(tar.extractfile(f"blobs/sha256/{top['digest'].split(':')[1]}"))  # type: ignore[arg-type]
        assert "manifest.json" not in tar.getnames()
    assert top["mediaType"] == "application/vnd.oci.image.index.v1+json" and top["digest"] == digest
    assert [m["platform"]["architecture"] for m in index["manifests"]] == ["amd64", "arm64"]
    # each platform's image is in the engine too, the engine's own one under the plain tag as well
    for suffix, arch in (("latest-amd64", "amd64"), ("latest-arm64", "arm64"), ("latest", "amd64")):
        assert docker_client.images.get(f"{name}:{suffix}").attrs["Architecture"] == arch
    assert "built for linux/arm64" in docker_client.containers.run(f"{name}:latest-arm64", remove=True,
                                                                     platform="linux/arm64").decode()
    pushed = invoke("push", "--tag", name)
    assert pushed.code == 0, pushed
    assert top["digest"] in pushed.out and "linux/arm64" in pushed.out
    for tag in list(docker_client.images.get(f"{name}:latest").tags):
        docker_client.images.remove(tag, force=True)
    assert "built for linux/arm64" in _pull_and_run(docker_client, name, "linux/arm64")
    docker_client.images.remove(name, force=True)
    assert "built for linux/amd64" in _pull_and_run(docker_client, name, "linux/amd64")


def test_single_platform_push_from_the_engine_keeps_its_digest(registry, names, docker_client, tmp_path):
    name = names(registry)
    assert invoke("build-hello", "--tiny", "--toolchain", "native", cwd=tmp_path).code == 0
    made = invoke("image", "--tag", f"{name}:1.0", cwd=tmp_path)
    assert made.code == 0, made
    digest = next(line.split()[1] for line in made.out.splitlines() if line.startswith("digest:"))
    image_id = docker_client.images.get(f"{name}:1.0").id
    pushed = invoke("push", "--tag", f"{name}:1.0")
    assert pushed.code == 0, pushed
    assert digest in pushed.out
    docker_client.images.remove(f"{name}:1.0", force=True)
    assert "built for linux/amd64" in _pull_and_run(docker_client, f"{name}:1.0", "linux/amd64")
    assert docker_client.images.get(f"{name}:1.0").id == image_id


def test_bad_platform_and_push_failures_are_one_line(names, tmp_path):
    for args, words in ((("--platform", "linux/sparc"), "known:"), (("--platform", "linux/"), "does not parse"),
                        (("--platform", PLATFORMS, "--output", "docker-archive:x.tar"), "one platform")):
        result = invoke("image", "--tag", "x", *args, cwd=tmp_path)
        assert_clean_failure(result, 2)
        assert words in result.err, result.err
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    result = invoke("push", "--tag", f"{dead}/never:1")
    assert_clean_failure(result)
    assert "no image" in result.err
    assert invoke("build-hello", "--tiny", "--toolchain", "native", cwd=tmp_path).code == 0
    name = names(dead)
    assert invoke("image", "--tag", name, cwd=tmp_path).code == 0
    result = invoke("push", "--tag", name)
    assert_clean_failure(result, 1)
    assert "no registry answered" in result.err and len(result.err.strip().splitlines()) == 1
    # the image's SBOM waits in the store (FROMSCRATCH_STORE, here under tmp_path) for a push that works
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "store") == ["hello", "hello.spdx.json"]
