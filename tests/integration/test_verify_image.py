"""verify-image on a real engine: scratch images from `invoke image`, the rootfs image, and broken ones."""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

import pytest

from tests.conftest import assert_clean_failure, invoke
from toolkit.check import image as imagecheck
from toolkit.image import oci

pytestmark = pytest.mark.engine


def load_unverified(client, tag: str, binary: Path, arch: str = "amd64") -> None:
    """A one-file scratch image written with the toolkit's own OCI writer, skipping verify on purpose."""
    with tempfile.TemporaryDirectory() as tmp:
        layer = Path(tmp) / "layer.tar"
        with open(layer, "wb") as fh:
            desc = oci.write_layer([oci.entry_for(binary, "app", 0o755)], fh)
        image = oci.make_image([(desc, layer)], oci.ImageConfig(architecture=arch, cmd=("/app",)))
        archive = Path(tmp) / "image.tar"
        with open(archive, "wb") as fh:
            oci.write_archive([image], fh, repo_tags=[tag])
        with open(archive, "rb") as fh:
            client.images.load(fh)


def no_export_containers_left(client, tag: str) -> bool:
    label = f"{imagecheck.LABEL}=verify-image"
    return not client.containers.list(all=True, filters={"ancestor": tag, "label": label})


def test_a_scratch_image_from_invoke_image_passes(tmp_path, docker_client, image_tag):
    assert invoke("build-hello", "--toolchain", "native", cwd=tmp_path).code == 0
    tag = image_tag()
    assert invoke("image", "--tag", tag, cwd=tmp_path).code == 0
    result = invoke("verify-image", "--tag", tag)
    assert result.code == 0, result
    assert "PASS  command   /hello: ELF 64-bit LSB executable, amd64, static" in result.out
    assert no_export_containers_left(docker_client, tag)


def test_the_rootfs_image_resolves_every_library(docker_client, builder_base):
    result = invoke("verify-image", "--tag", builder_base, "--json")
    assert result.code == 0, result.out[-2000:] + result.err
    doc = json.loads(result.out)
    assert doc["ok"] and doc["problems"] == [] and doc["platform"] == "linux/amd64"
    assert doc["elf_files"] > 300 and doc["files"] > 2000
    command = next(c for c in doc["checks"] if c["name"] == "command")
    assert "/bin/bash" in command["detail"] and "interpreter /lib64/ld-linux-x86-64.so.2 found" in command["detail"]


def test_a_dynamic_binary_in_scratch_fails_naming_the_interpreter(binaries, docker_client, image_tag):
    tag = image_tag()
    load_unverified(docker_client, tag, binaries["dynamic"])
    result = invoke("verify-image", "--tag", tag)
    assert_clean_failure(result, 1)
    assert "FAIL  command   /app: ELF 64-bit LSB pie executable" in result.out
    assert "interpreter /lib64/ld-linux-x86-64.so.2 is not in the image" in result.out
    assert "no such file or directory" in result.out
    doc = json.loads(invoke("verify-image", "--tag", tag, "--json").out)
    assert {(p["path"], p["name"]) for p in doc["problems"]} == {
        ("/app", "/lib64/ld-linux-x86-64.so.2"), ("/app", "libc.so.6")}
    assert no_export_containers_left(docker_client, tag)


def test_an_image_labelled_for_another_architecture_is_exec_format_error(binaries, docker_client, image_tag):
    tag = image_tag()
    load_unverified(docker_client, tag, binaries["static"], arch="arm64")
    result = invoke("verify-image", "--tag", tag)
    assert_clean_failure(result, 1)
    assert "built for linux/amd64, not linux/arm64/v8" in result.out and "exec format error" in result.out


def test_a_library_deleted_in_a_later_layer_is_missing(docker_client, builder_base, image_tag):
    tag = image_tag()
    dockerfile = (f"FROM {builder_base}\nRUN rm /usr/lib/x86_64-linux-gnu/libacl.so.1*\n"
                  "LABEL org.fromscratch.role=test\n").encode()
    docker_client.images.build(fileobj=io.BytesIO(dockerfile), tag=tag, rm=True, forcerm=True, network_mode="none")
    result = invoke("verify-image", "--tag", tag, "--json")
    assert_clean_failure(result, 1)
    doc = json.loads(result.out)
    assert {p["name"] for p in doc["problems"]} == {"libacl.so.1"}
    assert "/usr/bin/cp" in {p["path"] for p in doc["problems"]}
    assert next(c for c in doc["checks"] if c["name"] == "command")["ok"]  # bash does not need libacl


def test_a_missing_image_is_one_line_and_exit_2(docker_client):
    result = invoke("verify-image", "--tag", "fromscratch-test-no-such-image:never")
    assert_clean_failure(result, 2)
    assert "no image fromscratch-test-no-such-image:never in the engine" in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_no_engine_is_one_line_and_exit_2(tmp_path):
    result = invoke("verify-image", "--tag", "x", env={"DOCKER_HOST": f"unix://{tmp_path}/no-such.sock"})
    assert_clean_failure(result, 2)
    assert "no Docker engine answered" in result.err
