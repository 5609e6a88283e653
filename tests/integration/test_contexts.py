"""The engine picked as the docker CLI picks it: DOCKER_HOST, then DOCKER_CONTEXT, then the current context of
the docker config, then the default socket. Contexts are made with the docker CLI itself and point at the Podman
service, so that which engine answered is plain to see; bad input is one line and exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.conftest import assert_clean_failure, gcc, invoke

pytestmark = pytest.mark.engine

PROGRAM = '#include <stdio.h>\nint main(void){ puts("hi from a context"); return 4; }\n'
DEFAULT = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


@pytest.fixture
def cli_config(tmp_path, podman) -> Path:
    """A docker config directory with three contexts made by the docker CLI: Podman's socket, Podman over TCP,
    and one whose engine is not there; none of them current yet."""
    config = tmp_path / "docker-config"
    config.mkdir()
    for name, host in (("fs-podman", podman.socket), ("fs-podman-tcp", podman.tcp),
                       ("fs-gone", f"unix://{tmp_path}/no-engine.sock")):
        _docker(config, "context", "create", name, "--docker", f"host={host}")
    return config


def _docker(config: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DOCKER_CONTEXT")}
    done = subprocess.run(["docker", *args], env={**env, "DOCKER_CONFIG": str(config)}, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _env(config: Path, **extra: str) -> dict[str, str]:
    """The environment of a task: this config, and DOCKER_HOST/DOCKER_CONTEXT only when given."""
    return {"DOCKER_CONFIG": str(config), "DOCKER_HOST": "", "DOCKER_CONTEXT": "", "FROMSCRATCH_LOG": "info",
            **extra}


@pytest.fixture
def program(tmp_path) -> Path:
    return gcc(tmp_path, PROGRAM, "-static", "-Os", name="ctx")


@pytest.fixture
def tag(podman, docker_client):
    name = f"fromscratch-test-ctx-{uuid.uuid4().hex[:10]}:latest"
    yield name
    for client in (docker_client, podman.client()):
        try:
            client.api.remove_image(name, force=True)
        except Exception:
            pass


def _in(client, tag: str) -> bool:
    try:
        client.images.get(tag)
        return True
    except Exception:
        return False


def test_the_current_context_picks_the_engine_as_for_the_docker_cli(cli_config, program, tag, podman,
                                                                    docker_client):
    _docker(cli_config, "context", "use", "fs-podman")
    made = invoke("image", "--tag", tag, "--binary", str(program), env=_env(cli_config))
    assert made.code == 0, made
    assert f"engine: {podman.socket} (docker context 'fs-podman')" in made.err, made.err
    assert _in(podman.client(), tag) and not _in(docker_client, tag)
    ran = invoke("run", "--tag", tag, env=_env(cli_config))
    assert ran.code == 4 and ran.out == "hi from a context\n", ran
    # the docker CLI, through the same context, sees the same image
    assert json.loads(_docker(cli_config, "image", "inspect", tag))[0]["Config"]["Cmd"] == ["/ctx"]
    checked = invoke("verify-image", "--tag", tag, env=_env(cli_config))
    assert checked.code == 0, checked


def test_docker_context_beats_the_current_one_and_docker_host_beats_both(cli_config, program, tag, podman,
                                                                         docker_client):
    _docker(cli_config, "context", "use", "fs-gone")
    over_tcp = invoke("image", "--tag", tag, "--binary", str(program),
                      env=_env(cli_config, DOCKER_CONTEXT="fs-podman-tcp"))
    assert over_tcp.code == 0, over_tcp
    assert f"engine: {podman.tcp} (docker context 'fs-podman-tcp')" in over_tcp.err
    assert _in(podman.client(), tag)
    host = invoke("image", "--tag", tag, "--binary", str(program),
                  env=_env(cli_config, DOCKER_HOST=DEFAULT, DOCKER_CONTEXT="fs-gone"))
    assert host.code == 0, host
    assert f"engine: {DEFAULT} (DOCKER_HOST)" in host.err
    assert _in(docker_client, tag)
    default = invoke("run", "--tag", tag, env=_env(cli_config, DOCKER_CONTEXT="default", DOCKER_HOST=""))
    if DEFAULT == "unix:///var/run/docker.sock":  # the default context is the default socket
        assert default.code == 4, default


def test_no_engine_names_the_context_it_tried(cli_config, program):
    _docker(cli_config, "context", "use", "fs-gone")
    for args in (("run", "--tag", "x"), ("verify-image", "--tag", "x"), ("image", "--tag", "x", "--binary",
                                                                          str(program))):
        result = invoke(*args, env=_env(cli_config))
        assert_clean_failure(result, 2)
        assert "no Docker engine answered" in result.err and "docker context 'fs-gone'" in result.err, result.err
        assert "docker context ls" in result.err


def test_bad_contexts_hosts_and_configs_are_one_line_and_exit_2(cli_config, program, tmp_path):
    (tmp_path / "hello").write_bytes(program.read_bytes())  # image's default binary: the engine is what fails
    (tmp_path / "hello").chmod(0o755)
    cases = [
        (_env(cli_config, DOCKER_CONTEXT="fs-no-such"), "docker context 'fs-no-such' (from DOCKER_CONTEXT) does "
                                                        "not exist"),
        (_env(cli_config, DOCKER_HOST="foo://bar"), "DOCKER_HOST 'foo://bar' does not parse"),
        (_env(cli_config, DOCKER_HOST="tcp://127.0.0.1:port"), "DOCKER_HOST 'tcp://127.0.0.1:port' does not parse"),
    ]
    broken = tmp_path / "broken-config"
    broken.mkdir()
    (broken / "config.json").write_text('{"currentContext": ')
    cases.append((_env(broken), "is not JSON"))
    for env, words in cases:
        for args in (("run", "--tag", "x"), ("image", "--tag", "x"), ("push", "--tag", "localhost:5000/x")):
            result = invoke(*args, env=env, cwd=tmp_path)
            assert_clean_failure(result, 2)
            assert words in result.err and len(result.err.strip().splitlines()) == 1, (args, result.err)
