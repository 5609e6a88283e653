"""The prepared environment of a project build, for every target, without an engine: the machine files and
variables generated from the target table, and the compiler wrappers run for real with the host's gcc."""

from __future__ import annotations

import ast
import configparser
import subprocess
from pathlib import Path

import pytest

from toolkit import targets
from toolkit.check import elf, verify
from toolkit.compile import cross, plan

AMD64 = targets.lookup("amd64")
# Meson's reference table of cpu_family names (docs/markdown/Reference-tables.md)
MESON_CPU_FAMILIES = {"aarch64", "arm", "mips", "mips64", "ppc", "ppc64", "riscv32", "riscv64", "s390", "s390x",
                      "x86", "x86_64", "sparc64", "loongarch64"}


def _meson(text: str) -> dict[str, dict[str, object]]:
    """A Meson machine file as Meson reads it: INI sections whose values are Python-like literals."""
    parser = configparser.ConfigParser()
    parser.read_string(text)
    def value(text: str) -> object:
        return {"true": True, "false": False}.get(text) if text in ("true", "false") else ast.literal_eval(text)

    return {s: {k: value(v) for k, v in parser[s].items()} for s in parser.sections()}


@pytest.mark.parametrize("target", targets.TARGETS, ids=lambda t: t.name)
def test_every_target_gets_a_cmake_toolchain_file_from_its_row(target):
    tools = cross.gcc(target, AMD64)
    text = cross.cmake_toolchain(tools, "/w/tools")
    assert 'set(CMAKE_C_COMPILER "/w/tools/cc")' in text and 'set(CMAKE_CXX_COMPILER "/w/tools/c++")' in text
    assert 'set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")' in text
    assert 'set(BUILD_SHARED_LIBS OFF CACHE BOOL' in text
    if target is AMD64:
        assert "CMAKE_SYSTEM_NAME" not in text and "EMULATOR" not in text
    else:
        assert "set(CMAKE_SYSTEM_NAME Linux)" in text
        assert f"set(CMAKE_SYSTEM_PROCESSOR {target.cpu})" in text
        assert f"set(CMAKE_LIBRARY_ARCHITECTURE {target.lib_dir_name})" in text
        assert f'set(CMAKE_CROSSCOMPILING_EMULATOR "/usr/bin/qemu-{target.qemu}-static")' in text
        assert "set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)" in text
        for kind in ("LIBRARY", "INCLUDE", "PACKAGE"):
            assert f"set(CMAKE_FIND_ROOT_PATH_MODE_{kind} ONLY)" in text


@pytest.mark.parametrize("target", targets.TARGETS, ids=lambda t: t.name)
def test_every_target_gets_a_meson_machine_file_meson_can_read(target):
    machine = _meson(cross.meson_machine(cross.gcc(target, AMD64), "/w/tools"))
    assert machine["binaries"]["c"] == "/w/tools/cc" and machine["binaries"]["cpp"] == "/w/tools/c++"
    assert machine["binaries"]["pkgconfig"] == "/w/tools/pkg-config"
    assert machine["built-in options"]["default_library"] == "static"
    assert machine["built-in options"]["prefer_static"] is True
    assert machine["built-in options"]["c_link_args"] == ["-static"]
    if target is AMD64:
        assert "host_machine" not in machine and "exe_wrapper" not in machine["binaries"]
        return
    host = machine["host_machine"]
    assert host["cpu_family"] in MESON_CPU_FAMILIES
    assert (host["system"], host["cpu"], host["endian"]) == ("linux", target.cpu, target.endianness)
    assert machine["binaries"]["exe_wrapper"] == f"/usr/bin/qemu-{target.qemu}-static"


@pytest.mark.parametrize("target", targets.TARGETS, ids=lambda t: t.name)
def test_every_target_gets_the_variables_build_systems_read(target):
    tools = cross.gcc(target, AMD64)
    env = cross.environment(tools, "/w/tools", ["-Wall"], ["-lm"])
    for var in ("CC", "CXX", "AR", "RANLIB", "STRIP", "NM", "LD", "OBJCOPY", "PKG_CONFIG"):
        assert env[var].startswith("/w/tools/"), var
    assert env["CFLAGS"] == env["CXXFLAGS"] == "-O2 -Wall"
    assert env["LDFLAGS"] == "-static -lm"
    assert env["CROSS_TRIPLE"] == target.triplet
    assert env["PKG_CONFIG_LIBDIR"] == f"/usr/lib/{target.lib_dir_name}/pkgconfig:/usr/share/pkgconfig"
    assert env.get("CROSS_COMPILE") == (None if target is AMD64 else f"{target.triplet}-")
    wrappers = cross.wrappers(tools)
    prefix = "" if target is AMD64 else f"{target.triplet}-"
    # fs_cc LINKER DRIVER STRIP N COMMAND...: the target's gcc (g++) is the command the wrapper runs
    assert f" {prefix}gcc 0 " in wrappers["cc"] and f" {prefix}g++ 0 " in wrappers["c++"]
    assert all(f in wrappers["cc"] for f in target.cflags)  # -march for the ARM variants
    assert f"exec {prefix}ar " in wrappers["ar"]


def test_zig_wrappers_target_musl_and_take_no_debian_pkg_config():
    tools = cross.zig(targets.lookup("arm-v6"), AMD64, "/py")
    assert "/py -m ziglang cc -target arm-linux-musleabi -mcpu=arm1176jzf_s" in cross.wrappers(tools)["cc"]
    assert cross.environment(tools, "/t")["PKG_CONFIG_LIBDIR"] == ""
    assert "/py -m ziglang ar" in cross.wrappers(tools)["ar"]


def _write_tools(tmp: Path, tools: cross.Toolset) -> Path:
    d = tmp / "tools"
    d.mkdir()
    for name, text in cross.files(tools, str(d)).items():
        (d / name).write_text(text)
        (d / name).chmod(0o755)
    return d


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_the_cc_wrapper_links_static_whatever_the_flags_say(tmp_path, arch):
    target = targets.lookup(arch)
    tools_dir = _write_tools(tmp_path, cross.gcc(target, AMD64))
    (tmp_path / "m.c").write_text('#include <stdio.h>\nint main(void){ puts("m"); return 0; }\n')
    # what a libtool or Makefile link looks like: no -static of its own
    subprocess.run([str(tools_dir / "cc"), "-O2", str(tmp_path / "m.c"), "-o", str(tmp_path / "m")], check=True)
    assert verify.verify(elf.read(str(tmp_path / "m")), target).ok


def test_the_cc_wrapper_leaves_shared_objects_shared(tmp_path):
    tools_dir = _write_tools(tmp_path, cross.gcc(AMD64, AMD64))
    (tmp_path / "f.c").write_text("int f(void){ return 1; }\n")
    # CMake passes LDFLAGS (-static here) to shared links too: the wrapper drops it there
    subprocess.run([str(tools_dir / "cc"), "-fPIC", "-shared", "-static", str(tmp_path / "f.c"), "-o",
                    str(tmp_path / "libf.so")], check=True)
    assert elf.read(str(tmp_path / "libf.so")).type == "ET_DYN"


@pytest.mark.parametrize("system", [*plan.SYSTEMS, "run"])
def test_every_build_script_is_valid_sh(tmp_path, system):
    proj = plan.Plan(tmp_path, "sub dir", system, "make -C src" if system == "run" else None,
                           ("--opt=1",), ("V=1",), artifacts=("src/a b",) if system == "run" else ())
    script = plan.script(proj, "/work", True, "aarch64-linux-gnu")
    (tmp_path / "build.sh").write_text(script)
    subprocess.run(["sh", "-n", str(tmp_path / "build.sh")], check=True)


@pytest.mark.parametrize(("files", "system"), [
    (["CMakeLists.txt", "Makefile"], "cmake"), (["meson.build", "configure"], "meson"),
    (["configure.ac"], "autotools"), (["autogen.sh"], "autotools"), (["configure", "Makefile"], "autotools"),
    (["GNUmakefile"], "make"), (["makefile"], "make"), (["README"], None)])
def test_build_system_detection(tmp_path, files, system):
    for f in files:
        (tmp_path / f).write_text("")
    assert plan.detect(tmp_path) == system
