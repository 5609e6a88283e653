"""The headline path on a real engine: build-hello -> verify -> image -> run, with both toolchains."""

from __future__ import annotations

import pytest

from tests.conftest import assert_clean_failure, invoke

pytestmark = pytest.mark.engine


def _run(docker_client, tag: str) -> str:
    return docker_client.containers.run(tag, remove=True).decode()


@pytest.mark.parametrize("toolchain", ["native", "container"])
def test_build_verify_image_run(toolchain, tmp_path, docker_client, builder_base, image_tag):
    base = ("--builder-base", builder_base) if toolchain == "container" else ()  # native runs no container
    built = invoke("build-hello", "--toolchain", toolchain, *base, cwd=tmp_path)
    assert built.code == 0, built
    assert f"with the {toolchain} toolchain" in built.out
    checked = invoke("verify", "./hello", "--arch", "amd64", cwd=tmp_path)
    assert checked.code == 0, checked
    tag = image_tag()
    made = invoke("image", "--tag", tag, cwd=tmp_path)
    assert made.code == 0, made
    assert tag in made.out and "sha256:" in made.out
    assert "Hello from fromscratch!" in _run(docker_client, tag)
    ran = invoke("run", "--tag", tag)
    assert ran.code == 0 and "built for linux/amd64" in ran.out, ran
    # only the user's file, owned by the user, came back from the build container
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hello", "hello.spdx.json"]


def test_image_config_and_contents(tmp_path, docker_client, image_tag):
    assert invoke("build-hello", "--toolchain", "native", cwd=tmp_path).code == 0
    tag = image_tag()
    assert invoke("image", "--tag", tag, cwd=tmp_path).code == 0
    attrs = docker_client.images.get(tag).attrs
    assert attrs["Config"]["Cmd"] == ["/hello"]
    assert attrs["Architecture"] == "amd64" and attrs["Os"] == "linux"
    assert len(attrs["RootFS"]["Layers"]) == 1
    assert attrs["Size"] == (tmp_path / "hello").stat().st_size


def test_image_refuses_a_dynamic_binary(binaries, docker_client, image_tag):
    tag = image_tag()
    result = invoke("image", "--tag", tag, "--binary", str(binaries["dynamic"]))
    assert_clean_failure(result, 1)
    assert "/lib64/ld-linux-x86-64.so.2" in result.err
    # the low-level list: images.list() inspects each image, and another run may remove one in between
    assert not [i for i in docker_client.api.images() if tag in (i.get("RepoTags") or [])]


def test_run_exits_with_the_containers_code(tmp_path, docker_client, image_tag):
    (tmp_path / "three.c").write_text('#include <stdio.h>\nint main(void){ puts("three"); return 3; }\n')
    assert invoke("build", "--src", "three.c", "--out", "three", "--toolchain", "native", cwd=tmp_path).code == 0
    tag = image_tag()
    assert invoke("image", "--tag", tag, "--binary", "three", cwd=tmp_path).code == 0
    ran = invoke("run", "--tag", tag)
    assert ran.code == 3 and "three" in ran.out, ran
    assert not docker_client.containers.list(all=True, filters={"ancestor": tag})


def test_custom_cmd_is_exec_form(tmp_path, docker_client, image_tag):
    (tmp_path / "echo.c").write_text(
        '#include <stdio.h>\nint main(int c, char **v){ for (int i = 1; i < c; i++) puts(v[i]); }\n')
    assert invoke("build", "--src", "echo.c", "--out", "echo", "--toolchain", "native", cwd=tmp_path).code == 0
    tag = image_tag()
    assert invoke("image", "--tag", tag, "--binary", "echo", "--cmd", "/echo 'two words' x", cwd=tmp_path).code == 0
    assert docker_client.images.get(tag).attrs["Config"]["Cmd"] == ["/echo", "two words", "x"]
    assert _run(docker_client, tag) == "two words\nx\n"


def test_no_engine_is_one_line_and_exit_2(tmp_path, binaries):
    env = {"DOCKER_HOST": f"unix://{tmp_path}/no-such.sock"}
    for args in (("image", "--tag", "x", "--binary", str(binaries["static"])), ("run", "--tag", "x"),
                 ("build-hello", "--toolchain", "container"), ("import-rootfs", str(tmp_path), "--tag", "x")):
        result = invoke(*args, env=env, cwd=tmp_path)
        assert_clean_failure(result, 2)
        assert "no Docker engine answered" in result.err and "DOCKER_HOST" in result.err
        assert len(result.err.strip().splitlines()) == 1, result.err


@pytest.mark.slow
def test_rootfs_debootstrap_import_and_run(docker_client, image_tag):
    tag = image_tag("fromscratch-test-rootfs")
    made = invoke("rootfs", "--suite", "bookworm", "--tag", tag, timeout=900)
    assert made.code == 0, made
    out = docker_client.containers.run(tag, ["cat", "/etc/os-release"], remove=True).decode()
    assert "bookworm" in out
    attrs = docker_client.images.get(tag).attrs
    assert attrs["Config"]["Cmd"] == ["/bin/bash"] and attrs["Architecture"] == "amd64"
    policy = docker_client.containers.run(tag, ["sh", "-c", "/usr/sbin/policy-rc.d; echo $?"], remove=True)
    assert policy.decode().strip() == "101"
