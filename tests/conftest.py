"""Shared fixtures: the real engine (required under CI=true), real gcc binaries, and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest_plugins = ["tests.faults"]  # fixtures for the fault tests: sandbox, fresh_base, engine_proxy

REPO = Path(__file__).resolve().parent.parent
CSRC = REPO / "csrc"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# The build container's base: no registry is reachable here, so CI makes this one with `invoke rootfs`.
BUILDER_BASE = os.environ.get("FROMSCRATCH_TEST_BUILDER_BASE", "fromscratch/debian:bookworm")


@dataclass
class Result:
    code: int
    out: str
    err: str


def invoke(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
           timeout: int = 600) -> Result:
    """Run `invoke <args>` against this checkout's tasks.py as a separate process, as a user would."""
    proc = subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(REPO), *args],
                          cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    return Result(proc.returncode, proc.stdout, proc.stderr)


def assert_clean_failure(result: Result, code: int | None = None) -> None:
    """A failure that a user can read: non-zero, no Python traceback."""
    assert result.code != 0, result
    if code is not None:
        assert result.code == code, result
    assert "Traceback" not in result.err + result.out, result.err


@pytest.fixture(scope="session")
def docker_client():
    """The real engine. Outside CI a missing engine skips; under CI=true it fails the test."""
    from toolkit.engine import client as engine
    from toolkit.errors import EngineUnavailable

    try:
        return engine.connect()
    except EngineUnavailable as exc:
        if IN_CI:
            pytest.fail(f"CI=true but no Docker engine answers: {exc}")
        pytest.skip(f"no Docker engine answers: {exc}")


@pytest.fixture(scope="session")
def builder_base(docker_client) -> str:
    from toolkit.engine import client as engine

    if not engine.image_exists(docker_client, BUILDER_BASE):
        msg = (f"the build container's base {BUILDER_BASE} is missing: make it with "
               f"`invoke rootfs --suite bookworm --tag {BUILDER_BASE}` (scripts/dev does)")
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    return BUILDER_BASE


@pytest.fixture
def image_tag(docker_client):
    """A unique image name, removed from the engine afterwards."""
    tags: list[str] = []

    def make(prefix: str = "fromscratch-test") -> str:
        tag = f"{prefix}-{uuid.uuid4().hex[:10]}:latest"
        tags.append(tag)
        return tag

    yield make
    for tag in tags:
        try:
            docker_client.images.remove(tag, force=True)
        except Exception:
            pass


def gcc(tmp: Path, source: str, *flags: str, name: str = "prog") -> Path:
    """Compile C source text with the host gcc; a real binary for a real test."""
    src = tmp / f"{name}.c"
    src.write_text(source)
    out = tmp / name
    subprocess.run(["gcc", *flags, str(src), "-o", str(out)], check=True, capture_output=True)
    return out


@pytest.fixture(scope="session")
def binaries(tmp_path_factory) -> dict[str, Path]:
    """Static and dynamic builds of a tiny program, compiled once per session."""
    tmp = tmp_path_factory.mktemp("bin")
    src = '#include <stdio.h>\nint main(void){ puts("hi"); return 0; }\n'
    return {
        "static": gcc(tmp, src, "-static", "-O2", name="static"),
        "dynamic": gcc(tmp, src, "-O2", name="dynamic"),
        "object": gcc(tmp, src, "-c", name="object.o"),
        "shared": gcc(tmp, "int f(void){return 1;}\n", "-shared", "-fPIC", name="libf.so"),
        "static_pie": gcc(tmp, src, "-static-pie", "-fPIE", "-O2", name="static_pie"),
    }
