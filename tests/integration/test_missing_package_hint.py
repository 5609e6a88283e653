"""A build that lacks a library names the Debian package that has it (issue 28, point 4): real builds of a zlib
program for amd64 and arm64, with --src and --project, natively and in the build container, each failing for
want of zlib1g-dev (finding turned off with --no-find: what a project declares is found before the build, see
test_found_deps.py). Debian's Contents index comes from the host's mirror once per architecture and is kept in
~/.cache/fromscratch/contents, so the suite (and the next run on this machine) fetches it once."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import assert_clean_failure, invoke
from toolkit import files
from toolkit.rootfs import mirror

pytestmark = pytest.mark.engine

ZC = '#include <stdio.h>\n#include <zlib.h>\nint main(void){ printf("zlib %s\\n", zlibVersion()); return 0; }\n'
# links with -lz without including zlib.h: the link is what fails
ZL = '#include <stdio.h>\nconst char *zlibVersion(void);\nint main(void){ puts(zlibVersion()); return 0; }\n'


def _installed(package: str) -> bool:
    proc = subprocess.run(["dpkg-query", "-W", "-f", "${Status}", package], capture_output=True, text=True)
    return proc.returncode == 0 and proc.stdout.strip().endswith(" installed")


def _without_arm64_zlib() -> None:
    if _installed("zlib1g-dev:arm64"):
        pytest.skip("this host has zlib1g-dev:arm64: a native arm64 build does not lack it")


def _project(tmp: Path, source: str = ZC) -> Path:
    proj = tmp / "zc"
    proj.mkdir()
    (proj / "zc.c").write_text(source)
    (proj / "Makefile").write_text("zc: zc.c\n\t$(CC) $(CFLAGS) zc.c -o zc -lz\n")
    return proj


def _one_error_line(result) -> str:
    errors = [line for line in result.err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.err
    return errors[0]


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_a_project_in_the_build_container_is_told_the_package(tmp_path, builder_base, arch):
    result = invoke("build", "--project", str(_project(tmp_path)), "--out", str(tmp_path / "dist"), "--arch", arch,
                    "--toolchain", "container", "--builder-base", builder_base, "--no-find", cwd=tmp_path,
                    timeout=1800)
    assert_clean_failure(result, 1)
    assert "zlib.h: No such file or directory" in result.err
    assert "(hint: zlib.h is in Debian's zlib1g-dev: add --package zlib1g-dev)" in _one_error_line(result)
    # and the hint is right: with the package the same build makes the program
    fixed = invoke("build", "--project", str(tmp_path / "zc"), "--out", str(tmp_path / "dist"), "--arch", arch,
                   "--toolchain", "container", "--builder-base", builder_base, "--package", "zlib1g-dev",
                   cwd=tmp_path, timeout=1800)
    assert fixed.code == 0, fixed


def test_a_native_arm64_project_is_told_the_package(tmp_path):
    _without_arm64_zlib()
    result = invoke("build", "--project", str(_project(tmp_path, ZL)), "--out", str(tmp_path / "dist"),
                    "--arch", "arm64", "--toolchain", "native", "--no-find", cwd=tmp_path, timeout=900)
    assert_clean_failure(result, 1)
    assert "cannot find -lz" in result.err
    assert "-lz (libz.a) is in Debian's zlib1g-dev: add --package zlib1g-dev" in _one_error_line(result)


def test_src_builds_are_told_the_package_their_way(tmp_path, builder_base):
    (tmp_path / "zc.c").write_text(ZC)
    (tmp_path / "zl.c").write_text(ZL)
    container = invoke("build", "--src", "zc.c", "--out", "zc", "--toolchain", "container",
                       "--builder-base", builder_base, "--no-find", cwd=tmp_path, timeout=900)
    assert_clean_failure(container, 1)
    line = _one_error_line(container)
    assert "zlib.h is in Debian's zlib1g-dev: add --package zlib1g-dev" in line  # --src takes --package
    if not _installed("zlib1g-dev:arm64"):
        native = invoke("build", "--src", "zl.c", "--out", "zl", "--arch", "arm64", "--toolchain", "native",
                        "--ldflags", "-lz", "--no-find", cwd=tmp_path, timeout=900)
        assert_clean_failure(native, 1)
        assert "apt-get install zlib1g-dev:arm64" in _one_error_line(native)
    # several targets that lack the same package: the hint once, on the last line
    both = invoke("build", "--src", "zc.c", "--out", "zc", "--arch", "amd64,arm64", "--toolchain", "container",
                  "--builder-base", builder_base, "--no-find", cwd=tmp_path, timeout=900)
    assert_clean_failure(both, 1)
    assert "2 of 2 targets failed" in both.err.splitlines()[-1] and "zlib1g-dev" in both.err.splitlines()[-1]
    assert not (tmp_path / "zc").exists() and not (tmp_path / "zl").exists()
    # and the hint is right: --src takes --package as a project does, and the SBOM names what the link took
    fixed = invoke("build", "--src", "zc.c", "--out", "zc", "--toolchain", "container", "--builder-base",
                   builder_base, "--package", "zlib1g-dev", "--ldflags", "-lz", cwd=tmp_path, timeout=1800)
    assert fixed.code == 0, fixed
    assert subprocess.run([str(tmp_path / "zc")], capture_output=True, text=True).stdout.startswith("zlib 1.")
    document = json.loads((tmp_path / "zc.spdx.json").read_text())
    assert "zlib1g-dev" in {p["name"] for p in document["packages"]}


def test_the_index_is_fetched_once_and_kept(tmp_path, builder_base):
    proj = _project(tmp_path)
    first = invoke("build", "--project", str(proj), "--out", str(tmp_path / "dist"), "--arch", "arm64",
                   "--toolchain", "container", "--builder-base", builder_base, "--no-find", cwd=tmp_path,
                   timeout=900)
    assert "zlib1g-dev" in _one_error_line(first)
    kept = files.cache_dir() / "contents" / f"{mirror.host_suite()}-arm64.v3.txt"
    assert kept.is_file() and kept.stat().st_size > 1 << 20
    assert time.time() - kept.stat().st_mtime < 30 * 86400
    before = kept.stat().st_mtime_ns
    again = invoke("build", "--project", str(proj), "--out", str(tmp_path / "dist"), "--arch", "arm64",
                   "--toolchain", "container", "--builder-base", builder_base, "--no-find", cwd=tmp_path,
                   timeout=900)
    assert "zlib1g-dev" in _one_error_line(again)
    assert "fetching Debian's" not in again.err and kept.stat().st_mtime_ns == before
