"""A step that takes long says what it does (issue 28, point 8): zig's first build for a target, each cold layer
of a build image (by name, then what its apt-get is doing every few seconds), and the test suite's own run."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import IN_CI, REPO, invoke

pytestmark = pytest.mark.engine

HELLO = '#include <stdio.h>\nint main(void){ puts("hello"); return 0; }\n'
FIRST = "zig: the first build for amd64 compiles musl"


def test_zigs_first_build_for_a_target_is_announced_once(tmp_path):
    if importlib.util.find_spec("ziglang") is None:
        msg = "the zig toolchain needs ziglang: pip install -e '.[zig]' (scripts/dev does)"
        pytest.fail(msg) if IN_CI else pytest.skip(msg)
    (tmp_path / "hello.c").write_text(HELLO)
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "hello.c").write_text(HELLO)
    (proj / "Makefile").write_text("hello: hello.c\n\t$(CC) hello.c -o hello\n")
    # toolkit's notes in a cache of their own, zig's own cache where it is (so the build itself is quick)
    zig_cache = os.environ.get("ZIG_GLOBAL_CACHE_DIR") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "zig")
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "ZIG_GLOBAL_CACHE_DIR": zig_cache}
    first = invoke("build", "--src", "hello.c", "--out", "a", "--toolchain", "zig", cwd=tmp_path, env=env,
                   timeout=1800)
    assert first.code == 0, first
    assert FIRST in first.err, first.err
    again = invoke("build", "--src", "hello.c", "--out", "b", "--toolchain", "zig", cwd=tmp_path, env=env)
    assert again.code == 0 and FIRST not in again.err, again
    project = invoke("build", "--project", str(proj), "--out", str(tmp_path / "dist"), "--toolchain", "zig",
                     cwd=tmp_path, env=env)
    assert project.code == 0 and FIRST not in project.err, project  # the same zig, cache and target
    other = invoke("build", "--project", str(proj), "--out", str(tmp_path / "dist2"), "--toolchain", "zig",
                   cwd=tmp_path, env={**env, "XDG_CACHE_HOME": str(tmp_path / "other")})
    assert other.code == 0 and FIRST in other.err, other


def test_each_cold_build_image_layer_is_named_as_it_builds(tmp_path, fresh_base):
    result = invoke("build-hello", "--arch", "arm64", "--toolchain", "container", "--builder-base", fresh_base,
                    cwd=tmp_path, timeout=1800)
    assert result.code == 0, result
    named = re.findall(r"building the build image's layer of (.+?): fromscratch/builder:", result.err)
    assert named == ["gcc and g++", "arm64 cross gcc"], result.err
    # while a layer builds, what its apt-get does, named by the layer
    assert re.search(r"^  arm64 cross gcc: (Get:|Unpacking |Setting up )", result.err, flags=re.M), result.err
    warm = invoke("build-hello", "--arch", "arm64", "--toolchain", "container", "--builder-base", fresh_base,
                  "--out", "again", cwd=tmp_path)
    assert warm.code == 0 and "building the build image" not in warm.err, warm


def test_the_suite_runs_with_a_line_per_test(tmp_path):
    dev = (REPO / "scripts" / "dev").read_text()
    assert "exec scripts/run-tests" in dev  # what `scripts/dev test` runs once the machine is set up
    proc = subprocess.run([str(REPO / "scripts" / "run-tests"), "tests/unit/test_targets.py", "-p",
                           "no:cacheprovider", "-k", "parse_archs or qemu_name"], capture_output=True, text=True,
                          env={**os.environ, "PYTHON": sys.executable}, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("tests/unit/test_targets.py::")]
    assert len(lines) == 2 and all(re.search(r" PASSED +\[ *\d+%\]$", line) for line in lines), proc.stdout
    assert "slowest 10 durations" in proc.stdout
