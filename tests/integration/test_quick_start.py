"""The README's quick start, verbatim, with the installed `fromscratch` command from a directory outside this
checkout; and a container build that names no base takes the one the set-up made."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import IN_CI, REPO, serve_registry

pytestmark = pytest.mark.engine
README = (REPO / "README.md").read_text()


def _console_script() -> Path:
    beside = Path(sys.executable).parent / "fromscratch"  # the venv's, as `. .venv/bin/activate` finds it
    found = beside if beside.exists() else shutil.which("fromscratch")
    if found is None:
        pytest.skip("no fromscratch console script: pip install -e . installs it")
    return Path(found)


def _shell(line: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """A README line run by a shell, with the console script on PATH and this checkout's code imported."""
    path = f"{_console_script().parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return subprocess.run(["sh", "-c", line], cwd=cwd, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PATH": path, "PYTHONPATH": str(REPO), **(env or {})})


def test_the_quick_start_works_verbatim_outside_the_checkout(tmp_path, docker_client, image_tag):
    block = README.split("## Quick start", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    lines = [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]
    assert lines[0] == "fromscratch build-hello", lines
    tag = image_tag("fromscratch-test-quick").removesuffix(":latest")  # not the user's own `hello`
    work = tmp_path / "elsewhere"
    work.mkdir()
    with serve_registry(tmp_path / "registry") as served:
        pushed = f"{served.host}/{tag}"
        try:
            for line in lines:
                line = line.replace("localhost:5000/hello", pushed).replace("--tag hello", f"--tag {tag}")
                done = _shell(line, work, env={"FROMSCRATCH_STORE": str(tmp_path / "store")})
                assert done.returncode == 0, (line, done.stdout, done.stderr)
                if line.startswith("fromscratch run"):
                    assert "linux/" in done.stdout, done.stdout  # the greeting names its platform
                if "push" in line:
                    assert f"pushing to {pushed}:latest\n" in done.stdout, done.stdout
        finally:
            for ref in (pushed, f"{pushed}:latest"):
                try:
                    docker_client.images.remove(ref, force=True)
                except Exception:
                    pass
    assert sorted(p.name for p in work.iterdir()) == ["hello", "hello.spdx.json"]


def test_a_container_build_that_names_no_base_takes_the_set_ups(tmp_path, docker_client):
    from toolkit.compile import buildimage
    from toolkit.engine import client as engine

    if not engine.image_exists(docker_client, buildimage.SETUP_BASE):  # what `scripts/dev` makes
        (pytest.fail if IN_CI else pytest.skip)(f"{buildimage.SETUP_BASE} is not in the engine: scripts/dev makes it")
    built = _shell("fromscratch build-hello --toolchain container --out ./hello", tmp_path,
                   env={"FROMSCRATCH_BUILDER_BASE": ""})  # beats a base the user configured
    assert built.returncode == 0, (built.stdout, built.stderr)
    assert (tmp_path / "hello").is_file()


def test_the_first_build_image_says_which_base_and_what_chose_it(tmp_path, docker_client):
    missing = "fromscratch-test-no-such-base:1"
    result = _shell("fromscratch build-hello --toolchain container", tmp_path,
                    env={"FROMSCRATCH_BUILDER_BASE": missing})
    assert result.returncode == 2, result
    said = result.stderr.splitlines()
    assert said[0] == f"build image base: {missing} (--builder-base or the config key builder.base)", said
    assert said[1].startswith(f"error: the build image's base {missing} is not in the engine"), said
