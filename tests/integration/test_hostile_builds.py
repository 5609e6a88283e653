"""Container builds a user starts are bounded and safe: limits the kernel enforces, a time limit, an end when the
client dies, output that costs the client no memory, and the project's tree copied by the same rules as a native
build. Real engine, real build images."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import REPO, assert_clean_failure, hello_project, invoke, max_rss_mib
from toolkit.engine import client as engine

pytestmark = pytest.mark.engine


def _args(proj: Path, out: Path, base: str, *extra: str) -> list[str]:
    return ["build", "--project", str(proj), "--out", str(out), "--toolchain", "container", "--builder-base", base,
            *extra]


def _ours(client, session: str) -> list:
    return client.containers.list(all=True, filters={"label": f"{engine.SESSION}={session}"})


def test_a_build_container_runs_within_its_limits(tmp_path, builder_base):
    """The kernel's own numbers, read inside the build: processes and memory as FROMSCRATCH_BUILD_* set them."""
    proj = hello_project(tmp_path)
    show = ("cat /sys/fs/cgroup/pids.max /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/memory.max "
            "/sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null; exit 7")
    result = invoke(*_args(proj, tmp_path / "out", builder_base, "--run", show), cwd=tmp_path,
                    env={"FROMSCRATCH_BUILD_PIDS": "200", "FROMSCRATCH_BUILD_MEMORY": "300m"})
    assert_clean_failure(result, 1)
    shown = result.err.split()
    assert "200" in shown and str(300 << 20) in shown, result.err


def test_a_build_container_stops_at_its_timeout_and_is_removed(tmp_path, builder_base, docker_client):
    proj = hello_project(tmp_path)
    session = uuid.uuid4().hex[:16]
    started = time.monotonic()
    result = invoke(*_args(proj, tmp_path / "out", builder_base, "--run", "sleep 120", "--timeout", "3"),
                    cwd=tmp_path, env={"FROMSCRATCH_SESSION": session})
    assert_clean_failure(result, 1)
    assert time.monotonic() - started < 60
    assert "time limit of 3 s" in result.err and "--timeout" in result.err
    assert _ours(docker_client, session) == []


def test_a_build_ends_within_seconds_when_its_client_is_killed(tmp_path, builder_base, docker_client):
    """kill -9 of the client leaves no finally to run: the container notices its stdin close and ends itself."""
    proj = hello_project(tmp_path)
    session = uuid.uuid4().hex[:16]
    client = subprocess.Popen([sys.executable, "-m", "invoke", "--search-root", str(REPO),
                               *_args(proj, tmp_path / "out", builder_base, "--run", "sleep 300")],
                              cwd=tmp_path, env={**os.environ, "FROMSCRATCH_SESSION": session},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not [c for c in _ours(docker_client, session) if c.status == "running"]:
            assert time.monotonic() < deadline, "the build container never started"
            assert client.poll() is None, "the client ended before its build started"
            time.sleep(0.2)
        time.sleep(1)  # the sleep is running inside
        client.send_signal(signal.SIGKILL)
        client.wait()
        killed = time.monotonic()
        while [c for c in _ours(docker_client, session) if c.status == "running"]:
            assert time.monotonic() - killed < 10, "the build kept running after its client died"
            time.sleep(0.2)
    finally:
        if client.poll() is None:
            client.kill()
        for left in _ours(docker_client, session):  # exited, labelled: what `docker container prune` takes
            left.remove(force=True)


def test_container_build_output_costs_the_client_no_memory(tmp_path, builder_base):
    proj = hello_project(tmp_path)
    loud = "yes 'a line of build output' | head -c 50000000; echo last; exit 1"
    peak, err = max_rss_mib(*_args(proj, tmp_path / "out", builder_base, "--run", loud), cwd=tmp_path)
    assert peak < 150, f"peak RSS {peak} MiB"
    assert "last" in err and "failed (exit 1)" in err


@pytest.mark.parametrize("kind", ["fifo", "socket"])
def test_special_files_are_refused_before_any_container(tmp_path, builder_base, docker_client, kind):
    proj = hello_project(tmp_path)
    if kind == "fifo":
        os.mkfifo(proj / "z")
    else:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(proj / "z"))
        sock.close()
    session = uuid.uuid4().hex[:16]
    result = invoke(*_args(proj, tmp_path / "out", builder_base), cwd=tmp_path, env={"FROMSCRATCH_SESSION": session})
    assert_clean_failure(result, 2)
    assert f"{proj / 'z'}: is a" in result.err
    assert _ours(docker_client, session) == []
    assert not (tmp_path / "out").exists()


def test_links_into_the_tree_work_in_the_container_and_the_artifact_must_stay_inside(tmp_path, builder_base):
    proj = hello_project(tmp_path)
    (proj / "real.h").write_text("#define GREETING \"hi\"\n")
    (proj / "gen.h").symlink_to(proj / "real.h")  # absolute: in the container it points into the copy
    (proj / "hello.c").write_text('#include <stdio.h>\n#include "gen.h"\nint main(void){puts(GREETING);}\n')
    result = invoke(*_args(proj, tmp_path / "out", builder_base), cwd=tmp_path)
    assert result.code == 0, result
    escaped = invoke(*_args(proj, tmp_path / "out2", builder_base, "--run", "ln -s /usr/bin/env prog",
                            "--artifact", "prog"), cwd=tmp_path)
    assert_clean_failure(escaped, 1)
    assert "--artifact prog: leads outside the build, to /usr/bin/env" in escaped.err
