"""Every flag a build or image task takes either changes what it does or is refused in one line (issue 28, point 3):
--strip strips a project's programs, --builder-base asks for the build container, and flags of one kind of build
given to another are named, never dropped."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import assert_clean_failure, invoke
from toolkit.check import elf

pytestmark = pytest.mark.engine

HELLO = '#include <stdio.h>\nint main(void){ puts("hello"); return 0; }\n'


def _project(tmp: Path) -> Path:
    proj = tmp / "proj"
    proj.mkdir()
    (proj / "hello.c").write_text(HELLO)
    # -g: symbols and debug information a strip takes away; the Makefile links through $(CC) as projects do
    (proj / "Makefile").write_text("hello: hello.c\n\t$(CC) -g -O2 hello.c -o hello\n")
    return proj


@pytest.mark.parametrize("toolchain", ["native", "zig"])
def test_strip_strips_a_projects_programs(tmp_path, toolchain):
    proj = _project(tmp_path)
    kept = invoke("build", "--project", str(proj), "--out", str(tmp_path / "kept"), "--toolchain", toolchain,
                  cwd=tmp_path, timeout=1800)
    assert kept.code == 0, kept
    stripped = invoke("build", "--project", str(proj), "--out", str(tmp_path / "stripped"), "--toolchain", toolchain,
                      "--strip", cwd=tmp_path, timeout=1800)
    assert stripped.code == 0, stripped
    assert elf.read(str(tmp_path / "kept" / "hello")).stripped is False
    facts = elf.read(str(tmp_path / "stripped" / "hello"))
    assert facts.stripped is True and facts.is_static
    assert (tmp_path / "stripped" / "hello").stat().st_size < (tmp_path / "kept" / "hello").stat().st_size
    # the SBOM describes the stripped program, the one delivered
    assert (tmp_path / "stripped" / "hello.spdx.json").is_file()


def test_builder_base_under_auto_builds_in_that_container(tmp_path, builder_base):
    (tmp_path / "hello.c").write_text(HELLO)
    result = invoke("build", "--src", "hello.c", "--out", "hello", "--builder-base", builder_base, cwd=tmp_path,
                    timeout=1800)
    assert result.code == 0, result
    assert "with the container toolchain" in result.out, result.out


@pytest.mark.parametrize("toolchain", ["native", "zig"])
def test_builder_base_with_a_toolchain_that_runs_no_container_is_refused(tmp_path, toolchain):
    (tmp_path / "hello.c").write_text(HELLO)
    for task in (("build", "--src", "hello.c", "--out", "hello"), ("build-hello",)):
        result = invoke(*task, "--toolchain", toolchain, "--builder-base", "fromscratch/debian:bookworm",
                        cwd=tmp_path)
        assert_clean_failure(result, 2)
        assert "--builder-base" in result.err and toolchain in result.err, result.err
        assert len(result.err.strip().splitlines()) == 1, result.err
    assert not (tmp_path / "hello").exists()


@pytest.mark.parametrize("flags", [("--artifact", "bin/x"), ("--subdir", "src"), ("--system", "cmake"),
                                   ("--run", "make"), ("--configure-args", "--enable-x"), ("--make-args", "all")])
def test_project_flags_with_src_are_refused(tmp_path, flags):
    (tmp_path / "hello.c").write_text(HELLO)
    result = invoke("build", "--src", "hello.c", "--out", "hello", *flags, cwd=tmp_path)
    assert_clean_failure(result, 2)
    assert flags[0] in result.err and "--project" in result.err, result.err
    assert len(result.err.strip().splitlines()) == 1, result.err
    assert not (tmp_path / "hello").exists()


def test_src_takes_packages_and_tools_as_a_project_does(tmp_path):
    # --src is a one-rule project: its --package and --tool count, natively too (the host must have them)
    (tmp_path / "hello.c").write_text(HELLO)
    lacking = invoke("build", "--src", "hello.c", "--out", "hello", "--toolchain", "native", "--arch", "arm64",
                     "--package", "fromscratch-no-such-dev", "--tool", "fromscratch-no-such-tool", cwd=tmp_path)
    assert_clean_failure(lacking, 1)
    assert "fromscratch-no-such-tool fromscratch-no-such-dev:arm64" in lacking.err, lacking.err
    assert not (tmp_path / "hello-arm64").exists() and not (tmp_path / "hello").exists()
    built = invoke("build", "--src", "hello.c", "--out", "hello", "--toolchain", "native", "--tool", "gcc",
                   cwd=tmp_path)
    assert built.code == 0, built
    assert "built hello for linux/amd64 with the native toolchain" in built.out


@pytest.mark.parametrize("flags", [("--cflags", "-O2"), ("--tiny",), ("--src", "hello.c"), ("--toolchain", "zig"),
                                   ("--builder-base", "fromscratch/debian:bookworm"), ("--timeout", "60")])
def test_compile_flags_of_image_without_platform_are_refused(tmp_path, binaries, image_tag, flags):
    (tmp_path / "hello.c").write_text(HELLO)
    tag = image_tag()
    result = invoke("image", "--tag", tag, "--binary", str(binaries["static"]), *flags, cwd=tmp_path)
    assert_clean_failure(result, 2)
    assert flags[0] in result.err and "--platform" in result.err, result.err
    assert len(result.err.strip().splitlines()) == 1, result.err
