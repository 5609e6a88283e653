"""A static link completed, with the host's gcc and no engine: the compiler wrappers add what each -lX needs
(its .pc file, else the symbols its archive leaves undefined), and CMake's find_library takes the archive. Small
archives made here show each rule; Debian's own (libncurses-dev, libssl-dev, libpng-dev: scripts/dev installs
them) show the links a Makefile or a CMake project writes for a dynamic build."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import invoke, missing
from tests.unit.test_cross import _write_tools as write_tools
from toolkit import targets
from toolkit.check import elf, verify
from toolkit.compile import cross

AMD64 = targets.lookup("amd64")


def _tools(tmp: Path, archives: Path, pc: Path, target: targets.Target = AMD64) -> Path:
    """A tools directory whose target archives are only those in archives (.pc files in pc)."""
    return write_tools(tmp, dataclasses.replace(cross.gcc(target, AMD64), archive_dirs=(str(archives),),
                                                pkg_config_libdir=str(pc)))


def _archive(lib: Path, name: str, source: str, prefix: str = "") -> None:
    """lib/lib<name>.a of one object compiled from source (by <prefix>gcc, <prefix>ar)."""
    obj = lib / f"{name}.o"
    (lib / f"{name}.c").write_text(source)
    subprocess.run([f"{prefix}gcc", "-c", "-O2", str(lib / f"{name}.c"), "-o", str(obj)], check=True)
    subprocess.run([f"{prefix}ar", "rcs", str(lib / f"lib{name}.a"), str(obj)], check=True)


def _archives(lib: Path, prefix: str = "") -> Path:
    """libtop.a needs libmid.a, which needs libbase.a, which needs libmid.a again: a cycle that one pass over
    the archives in any order cannot resolve. No .pc file says any of it."""
    lib.mkdir()
    _archive(lib, "top", "int mid(int);\nint top(void) { return mid(40); }\n", prefix)
    _archive(lib, "mid", "int base(int);\nint mid(int x) { return base(x + 1); }\nint one(void) { return 1; }\n",
             prefix)
    _archive(lib, "base", "int one(void);\nint base(int x) { return x + one(); }\n", prefix)
    return lib


def _link(tools: Path, tmp: Path, *libs: str) -> subprocess.CompletedProcess:
    (tmp / "main.c").write_text("int top(void);\nint main(void) { return top() == 42 ? 0 : 1; }\n")
    return subprocess.run([str(tools / "cc"), str(tmp / "main.c"), f"-L{tmp / 'lib'}", *libs, "-o",
                           str(tmp / "prog")], capture_output=True, text=True)


@pytest.fixture
def archives(tmp_path):
    if shutil.which("gcc") is None or shutil.which("nm") is None:
        missing("gcc and binutils are not installed (scripts/dev installs gcc)")
    return _archives(tmp_path / "lib")


def test_what_an_archive_leaves_undefined_is_found_in_the_others(tmp_path, archives):
    pc = tmp_path / "pc"
    pc.mkdir()
    tools = _tools(tmp_path, archives, pc)
    linked = _link(tools, tmp_path, "-ltop")  # what a Makefile written for shared libraries says
    assert linked.returncode == 0, linked.stderr
    assert subprocess.run([str(tmp_path / "prog")]).returncode == 0
    assert verify.verify(elf.read(str(tmp_path / "prog")), AMD64).ok
    # learned once for the build, kept for its later links
    assert (tools / ".static" / "needs.top").read_text() == "-lmid\n"
    assert (tools / ".static" / "needs.mid").read_text() == "-lbase\n"
    assert (tools / ".static" / "needs.base").read_text() == "-lmid\n"
    assert "one mid" in (tools / ".static" / "symbols").read_text().splitlines()


def test_a_foreign_targets_archives_are_read_by_its_own_nm(tmp_path):
    arm64 = targets.lookup("arm64")
    if shutil.which(arm64.gcc) is None:
        missing(f"{arm64.gcc} is not installed (scripts/dev installs gcc-aarch64-linux-gnu)")
    pc = tmp_path / "pc"
    pc.mkdir()
    tools = _tools(tmp_path, _archives(tmp_path / "lib", f"{arm64.triplet}-"), pc, arm64)
    linked = _link(tools, tmp_path, "-ltop")
    assert linked.returncode == 0, linked.stderr
    assert verify.verify(elf.read(str(tmp_path / "prog")), arm64).ok
    assert (tools / ".static" / "needs.top").read_text() == "-lmid\n"


def test_a_pc_file_says_what_a_library_needs(tmp_path, archives):
    if shutil.which("pkg-config") is None:
        missing("pkg-config is not installed (scripts/dev installs it)")
    pc = tmp_path / "pc"
    pc.mkdir()
    # the .pc file is believed over the symbols: base before mid, which a single pass would not resolve
    (pc / "top.pc").write_text(f"Name: top\nDescription: t\nVersion: 1\nLibs: -L{archives} -ltop\n"
                               "Libs.private: -lbase -lmid -lnosuch\n")
    tools = _tools(tmp_path, archives, pc)
    linked = _link(tools, tmp_path, "-ltop")
    assert linked.returncode == 0, linked.stderr
    # a library the target has no archive of is left out: the link needs it only if a symbol says so
    assert (tools / ".static" / "needs.top").read_text() == "# pkg-config\n-lbase\n-lmid\n"
    assert not (tools / ".static" / "symbols").exists()  # no nm over the archives when .pc files answer


def test_a_link_that_names_what_it_needs_is_left_as_it_is(tmp_path, archives):
    pc = tmp_path / "pc"
    pc.mkdir()
    tools = _tools(tmp_path, archives, pc)
    # -v: the driver shows the linker's command line
    linked = _link(tools, tmp_path, "-ltop", "-lmid", "-lbase", "-lmid", "-v")
    assert linked.returncode == 0, linked.stderr
    assert "--start-group -ltop" not in linked.stderr  # gcc's own group for -static is -lgcc -lgcc_eh -lc
    linked = _link(tools, tmp_path, "-ltop", "-v")
    assert "--start-group -ltop -lmid -lbase --end-group" in linked.stderr


def test_a_shared_library_named_by_its_path_is_linked_from_its_archive(tmp_path, archives):
    pc = tmp_path / "pc"
    pc.mkdir()
    tools = _tools(tmp_path, archives, pc)
    # what CMake writes when find_library found the .so, or a target the project also builds static (cmark)
    subprocess.run(["gcc", "-shared", "-fPIC", str(archives / "top.c"), "-o", str(archives / "libtop.so.1.0")],
                   check=True)
    linked = _link(tools, tmp_path, str(archives / "libtop.so.1.0"), "-v")
    assert linked.returncode == 0, linked.stderr
    assert f"{archives}/libtop.a " in linked.stderr and "--start-group -ltop -lmid -lbase" in linked.stderr
    assert verify.verify(elf.read(str(tmp_path / "prog")), AMD64).ok


def test_library_names_stay_data(tmp_path, archives):
    pc = tmp_path / "pc"
    pc.mkdir()
    tools = _tools(tmp_path, archives, pc)
    for hostile in ("../../escaped", "$(touch ${HOME}x)", "a b", "-", ":libtop.a"):
        linked = _link(tools, tmp_path, "-ltop", f"-l{hostile}")
        assert "--start-group -ltop" not in linked.stderr
        assert f"-l{hostile}" in linked.stderr or "cannot find" in linked.stderr or linked.returncode == 0
    assert sorted(p.name for p in (tools / ".static").iterdir()) == ["modules", "needs.base", "needs.mid",
                                                                    "needs.top", "symbols"]
    assert not (tmp_path / "escaped").exists() and not list(tmp_path.glob("*x"))


def _installed(package: str) -> bool:
    proc = subprocess.run(["dpkg-query", "-W", "-f", "${Status}", package], capture_output=True, text=True)
    return proc.returncode == 0 and proc.stdout.endswith(" installed")


def _need(*packages: str) -> None:
    absent = [p for p in packages if shutil.which("dpkg-query") is None or not _installed(p)]
    if absent:
        missing(f"{' '.join(absent)} not installed (scripts/dev installs them)")


def test_a_makefile_that_links_only_ncurses_and_only_ssl_builds_static(tmp_path):
    _need("libncurses-dev", "libssl-dev", "pkg-config", "make")
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "curses.c").write_text('#include <curses.h>\n#include <stdio.h>\n'
                                   'int main(void) { puts(curses_version()); return 0; }\n')
    (proj / "tls.c").write_text('#include <openssl/ssl.h>\n#include <stdio.h>\n'
                                'int main(void) { SSL_CTX *c = SSL_CTX_new(TLS_client_method());\n'
                                '  puts(c ? "tls" : "none"); return 0; }\n')
    # -lncurses needs -ltinfo and -lssl needs -lcrypto when linked statically; neither is said here
    (proj / "Makefile").write_text("all: curses tls\ncurses: curses.c\n\t$(CC) -o $@ curses.c -lncurses\n"
                                   "tls: tls.c\n\t$(CC) -o $@ tls.c -lssl\n")
    result = invoke("build", "--project", str(proj), "--toolchain", "native", "--out", str(tmp_path / "out"),
                    "--package", "libncurses-dev", "--package", "libssl-dev", cwd=tmp_path)
    assert result.code == 0, result
    for name, said in (("curses", "ncurses 6"), ("tls", "tls")):
        program = tmp_path / "out" / name
        assert verify.verify(elf.read(str(program)), AMD64).ok
        assert subprocess.run([str(program)], capture_output=True, text=True).stdout.startswith(said)
    assert "libssl-dev" in (tmp_path / "out" / "tls.spdx.json").read_text()


def test_cmake_find_package_and_find_library_take_the_archive(tmp_path):
    _need("libpng-dev", "zlib1g-dev", "cmake", "ninja-build")
    proj = tmp_path / "proj"
    proj.mkdir()
    # libpng.so and libpng.a, libz.so and libz.a are both there: CMake's platform files put .so first
    (proj / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.10)\nproject(pngver C)\n"
        'option(BUILD_SHARED_LIBS "the project\'s own default" ON)\n'
        "find_package(PNG REQUIRED)\nfind_library(Z_LIB z)\n"
        'message(STATUS "found: ${PNG_LIBRARIES} ${Z_LIB}")\n'
        "add_library(ver ver.c)\ntarget_link_libraries(ver PNG::PNG ${Z_LIB})\n"
        "add_executable(pngver main.c)\ntarget_link_libraries(pngver ver)\n"
        "install(TARGETS pngver DESTINATION bin)\n")
    (proj / "ver.c").write_text('#include <png.h>\n#include <zlib.h>\n#include <stdio.h>\n'
                                'void ver(void) { printf("%s %s\\n", png_get_libpng_ver(NULL), zlibVersion()); }\n')
    (proj / "main.c").write_text("void ver(void);\nint main(void) { ver(); return 0; }\n")
    result = invoke("build", "--project", str(proj), "--toolchain", "native", "--out", str(tmp_path / "out"),
                    "--package", "libpng-dev", "--package", "zlib1g-dev", cwd=tmp_path)
    assert result.code == 0, result
    program = tmp_path / "out" / "pngver"
    assert verify.verify(elf.read(str(program)), AMD64).ok
    assert subprocess.run([str(program)], capture_output=True, text=True).stdout.startswith("1.6")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["pngver", "pngver.spdx.json"]


@pytest.mark.parametrize("toolset", ["glibc", "musl", "zig"])
def test_pkg_config_answers_static_in_every_toolchain(tmp_path, toolset):
    tools = (cross.zig(AMD64, AMD64, "/py") if toolset == "zig" else cross.gcc(AMD64, AMD64, toolset))
    assert 'exec pkg-config --static "$@"' in cross.wrappers(tools)["pkg-config"]
    if toolset == "glibc":
        _need("libssl-dev", "pkg-config")
        d = write_tools(tmp_path, tools)
        libs = subprocess.run([str(d / "pkg-config"), "--libs", "libssl"], capture_output=True, text=True).stdout
        assert libs.split() == ["-lssl", "-lcrypto", "-ldl", "-pthread"]  # Requires.private, Libs.private


@pytest.mark.parametrize("target", targets.TARGETS, ids=lambda t: t.name)
def test_every_cmake_toolchain_file_sets_the_archive_suffix_after_the_platform_files(target):
    made = cross.files(cross.gcc(target, AMD64), "/w/tools")
    assert 'set(CMAKE_PROJECT_INCLUDE "/w/tools/static.cmake")' in made["toolchain.cmake"]
    assert 'set(CMAKE_FIND_LIBRARY_SUFFIXES ".a")' in made["static.cmake"]
