"""Values typed by a hostile or careless user stay data, a native build cannot reach past its copy of the project,
and its work is bounded: real native builds (the host's gcc and sh), no engine."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import IN_CI, assert_clean_failure, hello_project, invoke, max_rss_mib
from toolkit import files, grammar, targets
from toolkit.compile import cross, plan, toolchain
from toolkit.errors import InputError

# Each would run a command, add a line, or pass as an option, were it pasted into a shell, a Dockerfile or argv.
HOSTILE = ["zlib1g-dev; touch pwned", "zlib1g-dev\nRUN touch pwned", "--allow-unauthenticated", "tcl && touch pwned",
           "$(touch pwned)", "`touch pwned`", "x'y", 'x"y', "zlib1g-dev\0", "-x", "a b", "Zlib"]


def _nothing_ran(*where: Path) -> None:
    for place in where:
        assert not list(place.rglob("pwned")), f"a hostile value ran as code in {place}"


@pytest.mark.parametrize("value", HOSTILE)
def test_package_names_are_checked_by_their_grammar(value):
    with pytest.raises(InputError, match="is not a Debian package name"):
        grammar.package(value, "--package")


@pytest.mark.parametrize("value", ["ubuntu:24.04\nRUN touch pwned", "-x", "a b", "$(touch pwned)", "UPPER:1",
                                   "x:y:z", "fromscratch/debian:bookworm\0"])
def test_image_references_are_checked_by_their_grammar(value):
    with pytest.raises(InputError, match="is not an image reference"):
        grammar.image(value, "--builder-base")


@pytest.mark.parametrize("value", ["fromscratch/debian:bookworm", "ubuntu:24.04", "localhost:5000/a/b:c",
                                   "fromscratch/builder:0123456789abcdef", "debian@sha256:" + "a" * 64])
def test_real_image_references_pass(value):
    assert grammar.image(value, "--builder-base") == value


@pytest.mark.parametrize("value", ["../../../../usr/bin/qemu-aarch64-static", "/usr/bin/env", "a/../../b", "..",
                                   "a\nb", "a\0b", ""])
def test_paths_that_leave_the_tree_are_refused(value):
    with pytest.raises(InputError):
        grammar.inside(value, "--artifact")


@pytest.mark.parametrize("flag", ["--package", "--tool"])
@pytest.mark.parametrize("value", HOSTILE[:4])  # the grammar's own test above takes every value
def test_hostile_packages_and_tools_are_refused_before_anything_runs(tmp_path, flag, value):
    toolchain = "container"  # the one whose build image's RUN line they reached
    proj = tmp_path / "p"
    proj.mkdir()
    (proj / "Makefile").write_text("all:\n\ttrue\n")
    result = invoke("build", "--project", str(proj), "--out", str(tmp_path / "out"), "--toolchain", toolchain,
                    flag, value, cwd=tmp_path)
    assert_clean_failure(result, 2)
    assert f"error: {flag} " in result.err and len(result.err.strip().splitlines()) == 1, result.err
    _nothing_ran(tmp_path)


@pytest.mark.parametrize("what", [("--project", "p"), ("--src", "p/a.c", "--out", "a")])
def test_a_package_with_an_architecture_is_refused_for_src_and_project_alike(tmp_path, what):
    # the build adds :ARCH for each target itself: zlib1g-dev:arm64 would become zlib1g-dev:arm64:amd64
    proj = tmp_path / "p"
    proj.mkdir()
    (proj / "Makefile").write_text("all:\n\ttrue\n")
    (proj / "a.c").write_text("int main(void){}\n")
    for flag in ("--package", "--tool"):
        result = invoke("build", *what, "--toolchain", "container", flag, "zlib1g-dev:arm64", cwd=tmp_path)
        assert_clean_failure(result, 2)
        assert f"error: {flag} zlib1g-dev:arm64: give the name without :ARCH" in result.err, result.err
        assert len(result.err.strip().splitlines()) == 1
    assert sorted(p.name for p in proj.iterdir()) == ["Makefile", "a.c"] and not (tmp_path / "a").exists()


@pytest.mark.parametrize("value", ["ubuntu:24.04\nRUN touch pwned", "--network=host", "$(touch pwned)"])
def test_a_hostile_builder_base_is_refused(tmp_path, value):
    result = invoke("build-hello", "--toolchain", "container", "--builder-base", value, cwd=tmp_path)
    assert_clean_failure(result, 2)
    assert "is not an image reference" in result.err
    _nothing_ran(tmp_path)


def _build(proj: Path, out: Path, *args: str, toolchain: str = "native", env: dict[str, str] | None = None):
    return invoke("build", "--project", str(proj), "--out", str(out), "--toolchain", toolchain, *args,
                  cwd=out.parent, env=env)


@pytest.mark.parametrize("artifact", ["x$(touch pwned)", "x`touch pwned`", 'x"; touch pwned; "'])
def test_an_artifact_name_is_never_run(tmp_path, artifact):
    proj = hello_project(tmp_path)
    result = _build(proj, tmp_path / "out", "--artifact", artifact)
    assert_clean_failure(result, 1)
    assert "not in the project, its build directory or the install prefix" in result.err
    _nothing_ran(tmp_path, Path.cwd())


def test_an_artifact_outside_the_project_is_refused(tmp_path):
    proj = hello_project(tmp_path)
    result = _build(proj, tmp_path / "out", "--artifact", "../../../../usr/bin/env")
    assert_clean_failure(result, 2)
    assert "must be a path inside the project" in result.err
    assert not (tmp_path / "out").exists()


def test_an_artifact_the_build_linked_out_of_the_tree_is_refused(tmp_path):
    proj = hello_project(tmp_path)
    result = _build(proj, tmp_path / "out", "--run", "ln -s /usr/bin/env prog", "--artifact", "prog")
    assert_clean_failure(result, 1)
    assert "--artifact prog: leads outside the build, to /usr/bin/env" in result.err
    assert not (tmp_path / "out").exists()


def test_a_project_named_like_a_command_builds_and_runs_nothing(tmp_path):
    proj = hello_project(tmp_path, "p\ntouch pwned;#")
    result = _build(proj, tmp_path / "out")
    assert result.code == 0, result
    assert (tmp_path / "out" / "hello").is_file()
    _nothing_ran(tmp_path, Path.cwd())


def _special(kind: str, path: Path) -> None:
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
        sock.close()
    else:
        os.mknod(path, 0o644 | stat.S_IFCHR, os.makedev(1, 5))  # /dev/zero's numbers


@pytest.mark.parametrize("kind", ["fifo", "socket", "char device"])
def test_special_files_in_the_tree_are_refused_naming_the_entry(tmp_path, kind):
    if kind == "char device" and os.geteuid() != 0:
        if IN_CI:
            pytest.fail("CI runs as root, which mknod needs")
        pytest.skip("mknod needs root")
    proj = hello_project(tmp_path)
    (proj / "sub").mkdir()
    _special(kind, proj / "sub" / "z")
    result = _build(proj, tmp_path / "out")
    assert_clean_failure(result, 2)
    assert f"{proj / 'sub' / 'z'}: is a" in result.err and "copies only files, directories and symlinks" in result.err
    assert not (tmp_path / "out").exists()


def test_a_symlink_into_the_tree_points_into_the_copy(tmp_path):
    proj = hello_project(tmp_path)
    (proj / "real.h").write_text("#define REAL 1\n")
    (proj / "gen.h").symlink_to(proj / "real.h")  # absolute, into the tree
    (proj / "Makefile").write_text("hello: hello.c\n\techo '#define GEN 1' > gen.h\n\t$(CC) -static -o hello hello.c\n")
    result = _build(proj, tmp_path / "out")
    assert result.code == 0, result
    assert (proj / "real.h").read_text() == "#define REAL 1\n"


def test_the_tree_walk_keeps_links_inside_and_copies_or_refuses_the_rest(tmp_path):
    top, outside = tmp_path / "p", tmp_path / "elsewhere"
    top.mkdir()
    outside.mkdir()
    (top / "a.h").write_text("a")
    (outside / "o.h").write_text("o")
    (top / "abs").symlink_to(top / "a.h")
    (top / "rel").symlink_to("a.h")
    (top / "out.h").symlink_to(outside / "o.h")
    (top / "gone").symlink_to(outside / "missing")
    entries = {e.rel: e for e in files.tree(top)}
    assert (entries["abs"].kind, entries["abs"].link) == ("link", "a.h")
    assert (entries["rel"].kind, entries["rel"].link) == ("link", "a.h")
    assert (entries["out.h"].kind, entries["out.h"].source) == ("file", str(outside / "o.h"))
    assert "gone" not in entries
    (top / "dir").symlink_to(outside)
    with pytest.raises(InputError, match="a symlink to the directory"):
        list(files.tree(top))


@pytest.mark.parametrize("where", ["project", "inside", "above", "root", "usr"])
def test_out_in_or_above_the_project_or_at_a_system_directory_is_refused(tmp_path, where):
    proj = hello_project(tmp_path)
    out = {"project": proj, "inside": proj / "dist", "above": tmp_path, "root": Path("/"), "usr": Path("/usr")}[where]
    before = sorted(p.name for p in proj.iterdir())
    result = _build(proj, out)
    assert_clean_failure(result, 2)
    assert "--out " in result.err
    assert sorted(p.name for p in proj.iterdir()) == before


def test_a_build_that_replaces_its_output_directory_cannot_send_programs_elsewhere(tmp_path):
    """The programs' directory is made after the build, never found: a symlink the build put there is gone."""
    proj = hello_project(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = _build(proj, tmp_path / "out", "--run", f'make && mkdir -p "$W" && rm -rf "$W/out" && '
                    f'ln -s {elsewhere} "$W/out"')
    assert result.code == 0, result
    assert (tmp_path / "out" / "hello").is_file() and not list(elsewhere.iterdir())
    nothing = _build(proj, tmp_path / "out2", "--run", f'rm -rf "$W/out" && ln -s {elsewhere} "$W/out"')
    assert_clean_failure(nothing, 1)
    assert "the build made no program" in nothing.err
    assert not (tmp_path / "out2").exists() and not list(elsewhere.iterdir())


def test_programs_whose_outputs_collide_are_refused(tmp_path):
    proj = hello_project(tmp_path)
    result = _build(proj, tmp_path / "out", "--run", "make && cp hello hello.spdx.json")
    assert_clean_failure(result, 1)
    assert "hello.spdx.json would overwrite the SBOM of hello" in result.err
    assert not (tmp_path / "out").exists()


def test_a_native_build_leaves_nothing_running(tmp_path):
    proj = hello_project(tmp_path)
    marker = f"{time.time_ns() % 100000 + 1000}.5"
    result = _build(proj, tmp_path / "out", "--run", f"(sleep {marker} >/dev/null 2>&1 &) ; make")
    assert result.code == 0, result
    time.sleep(0.3)
    left = subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True, text=True)
    assert left.returncode == 1, f"still running: {left.stdout}"


def test_a_native_build_stops_at_its_timeout(tmp_path):
    proj = hello_project(tmp_path)
    started = time.monotonic()
    result = _build(proj, tmp_path / "out", "--run", "sleep 60", "--timeout", "2")
    assert_clean_failure(result, 1)
    assert time.monotonic() - started < 20
    assert "ran past its time limit of 2 s" in result.err and "--timeout" in result.err


def test_a_failed_build_shows_control_characters_as_escapes(tmp_path):
    proj = hello_project(tmp_path)
    result = _build(proj, tmp_path / "out", "--run", r"printf 'a\033]0;title\007b\033[2Jc\n'; exit 3")
    assert_clean_failure(result, 1)
    assert "\x1b" not in result.err and "\x07" not in result.err
    assert r"a\x1b]0;title\x07b\x1b[2Jc" in result.err


def test_build_output_is_streamed_to_disk_not_held_in_memory(tmp_path):
    """200 MB of build output: the client's memory stays flat (it was ~1 GB when the output was captured whole);
    the failure shows the output's last lines."""
    proj = hello_project(tmp_path)
    peak, err = max_rss_mib("build", "--project", str(proj), "--out", str(tmp_path / "out"), "--toolchain",
                             "native", "--run", "yes 'a line of build output' | head -c 200000000; echo last; exit 1",
                             cwd=tmp_path)
    assert peak < 150, f"peak RSS {peak} MiB"
    assert "last" in err and "failed (exit 1)" in err


def test_generated_scripts_pass_shellcheck_with_hostile_values(tmp_path):
    if shutil.which("shellcheck") is None:
        if IN_CI:
            pytest.fail("CI installs shellcheck (scripts/dev)")
        pytest.skip("shellcheck is not installed")
    values = tuple(v for v in HOSTILE if "\0" not in v) + ("a\nb", "$W", "-rf /")
    for system in (*plan.SYSTEMS, "run", plan.RULE):
        run = "make -C src" if system == "run" else None
        rule = {"sources": values, "program": "a b$(x)", "gnu_ld_flags": values} if system == plan.RULE else {}
        proj = plan.Plan(tmp_path, subdir="s d$(x)", system=system, run=run, configure_args=values,
                         make_args=values, artifacts=("a",), cflags=values, ldflags=values, **rule)
        tools = cross.gcc(targets.lookup("arm64"), targets.host(), "glibc")
        made = tmp_path / system
        made.mkdir()
        scripts = []
        for name, text in toolchain.tools_files(proj, tools, "/work").items():
            (made / name).write_text(text)
            if text.startswith("#!/bin/sh") or name.endswith(".sh"):
                scripts.append(name)
        assert "build.sh" in scripts and "env.sh" in scripts and "cc" in scripts
        checked = subprocess.run(["shellcheck", "--shell=sh", "--severity=warning", *scripts], cwd=made,
                                 capture_output=True, text=True)
        assert checked.returncode == 0, f"{system}:\n{checked.stdout}"


def test_limits_are_read_from_the_environment_and_bad_ones_refused(tmp_path):
    proj = hello_project(tmp_path)
    for env, phrase in (({"FROMSCRATCH_BUILD_MEMORY": "lots"}, "FROMSCRATCH_BUILD_MEMORY='lots'"),
                        ({"FROMSCRATCH_BUILD_PIDS": "-1"}, "FROMSCRATCH_BUILD_PIDS='-1'")):
        result = _build(proj, tmp_path / "out", env=env)
        assert_clean_failure(result, 2)
        assert phrase in result.err
    result = _build(proj, tmp_path / "out", "--timeout", "-5")
    assert_clean_failure(result, 2)
    assert "--timeout -5" in result.err


@pytest.mark.parametrize("name", ["-o.c", "--help.c", "$(touch pwned).c", "a b.c"])
def test_a_source_named_like_an_option_or_a_command_is_a_file(tmp_path, name):
    (tmp_path / name).write_text('#include <stdio.h>\nint main(void){puts("hi");return 0;}\n')
    result = invoke("build", "--src", name, "--out", "app", "--toolchain", "native", cwd=tmp_path)
    assert result.code == 0, result
    assert subprocess.run([str(tmp_path / "app")], capture_output=True, text=True).stdout == "hi\n"
    _nothing_ran(tmp_path)
