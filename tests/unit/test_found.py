"""Dependencies found before a build: each declaration form read from a small project, where it was named, and the
Debian packages a small Contents index (written as Debian writes it) gives for them."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from toolkit import targets
from toolkit.compile import deps, found, found_kept, pipeline, plan
from toolkit.compile.deps import Declared
from toolkit.rootfs import contents

AMD64, ARM64 = targets.lookup("amd64"), targets.lookup("arm64")
CONTENTS = """\
usr/include/zlib.h                                      libdevel/zlib1g-dev
usr/lib/{m}/libz.a                                      libdevel/zlib1g-dev
usr/lib/{m}/libz.so                                     libdevel/zlib1g-dev
usr/lib/{m}/pkgconfig/zlib.pc                           libdevel/zlib1g-dev
usr/include/ncursesw/curses.h                           libdevel/libncurses-dev
usr/include/curses.h                                    libdevel/libncurses-dev
usr/lib/{m}/libncursesw.a                               libdevel/libncurses-dev
usr/lib/{m}/libncurses.a                                libdevel/libncurses-dev
usr/lib/{m}/pkgconfig/ncursesw.pc                       libdevel/libncurses-dev
usr/include/png.h                                       libdevel/libpng-dev
usr/lib/{m}/libpng.a                                    libdevel/libpng-dev
usr/lib/{m}/libssl.a                                    libdevel/libssl-dev
usr/lib/{m}/libcrypto.a                                 libdevel/libssl-dev
usr/lib/{m}/libbz2.a                                    libdevel/libbz2-dev
usr/include/bzlib.h                                     libdevel/libbz2-dev
usr/lib/{m}/libreadline.a                               libdevel/libeditreadline-dev,libdevel/libreadline-dev
usr/include/oniguruma.h                                 libdevel/libonig-dev
usr/lib/{m}/libonig.so                                  libdevel/libonig-dev
usr/lib/{m}/pkgconfig/oniguruma.pc                      libdevel/libonig-dev
usr/include/glm/glm.hpp                                 libdevel/libglm-dev
usr/include/stdio.h                                     libdevel/libc6-dev
usr/lib/{m}/libm.a                                      libdevel/libc6-dev
usr/include/dwarf.h                                     libdevel/libdw-dev
usr/lib/{m}/libdw.a                                     libdevel/libdw-dev
bin/true                                                utils/coreutils
"""


@pytest.fixture
def index(tmp_path):
    kept = {}
    for t in (AMD64, ARM64):
        gz = tmp_path / f"Contents-{t.debian_arch}.gz"
        with gzip.open(gz, "wt") as fh:
            fh.write(CONTENTS.replace("{m}", t.lib_dir_name))
        kept[t.debian_arch] = tmp_path / f"{t.debian_arch}.txt"
        contents.keep(gz, kept[t.debian_arch])
    asked: list[str] = []

    def lookup(arch: str) -> Path | None:
        asked.append(arch)
        return kept.get(arch)

    lookup.asked = asked  # type: ignore[attr-defined]
    return lookup


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def _names(found_: tuple[Declared, ...]) -> str:
    """One declaration a line: where, kind, name."""
    return "".join(f"{d.where} {d.kind} {d.name}\n" for d in found_)


def test_configure_ac_forms(tmp_path):
    root = _tree(tmp_path, {"configure.ac": """\
AC_INIT([x], [1])
dnl AC_CHECK_LIB(old, gone)
PKG_CHECK_MODULES([NCURSES], [ncursesw >= 6.0 zlib],
                  [have=yes])
AC_CHECK_LIB([png], [png_read_info], [], [AC_MSG_ERROR([no png])])
AC_SEARCH_LIBS([tgetent], [readline tinfo], [], [])
AC_CHECK_HEADERS([zlib.h unistd.h])
AC_CHECK_HEADER(bzlib.h)
# AC_CHECK_LIB(commented, out)
""", "src/x.c": "#include <png.h>\n"})
    assert _names(deps.declared(root, "", "autotools")) == """\
configure.ac:3 pkg-config ncursesw
configure.ac:3 pkg-config zlib
configure.ac:5 library png
configure.ac:6 library readline
configure.ac:6 library tinfo
configure.ac:7 header zlib.h
configure.ac:7 header unistd.h
configure.ac:8 header bzlib.h
"""


def test_configure_ac_shell_tries_libraries(tmp_path):
    """screen's configure.ac tries its curses libraries in shell of its own, not in a macro."""
    root = _tree(tmp_path, {"configure.ac": """\
AC_INIT([x], [1])
olibs="$LIBS"
LIBS="-lncursesw $olibs"
  LIBS='-ltinfo -lm'
dnl LIBS="-lold"
TERMLIBS="$LIBS -l$name -lcap"
"""})
    assert _names(deps.declared(root, "", "autotools")) == """\
configure.ac:3 library ncursesw
configure.ac:4 library tinfo
configure.ac:4 library m
configure.ac:6 library cap
"""


def test_meson_forms(tmp_path):
    root = _tree(tmp_path, {"meson.build": "project('x', 'c')\nz = dependency('zlib', required: false)\n"
                                           "t = dependency('threads')\ncc = meson.get_compiler('c')\n"
                                           "m = cc.find_library('m')\n# dependency('commented')\n",
                            "sub/meson.build": "n = dependency('ncursesw', version: '>=6')\n"})
    assert _names(deps.declared(root, "", "meson")) == ("meson.build:2 pkg-config zlib\nmeson.build:5 library m\n"
                                                        "sub/meson.build:1 pkg-config ncursesw\n")


def test_cmake_forms(tmp_path):
    root = _tree(tmp_path, {"CMakeLists.txt": """\
cmake_minimum_required(VERSION 3.10)
find_package(ZLIB REQUIRED)
find_package(OpenSSL)
find_package(Threads)
FIND_PACKAGE(Curses)
pkg_check_modules(PNG REQUIRED IMPORTED_TARGET libpng>=1.6)
find_library(BZ2_LIB NAMES bz2 libbz2)
find_library(M_LIB m)
check_include_file(zlib.h HAVE_ZLIB_H)
"""})
    said = [line.split(" ", 1)[1] for line in _names(deps.declared(root, "", "cmake")).splitlines()]
    assert said == ["cmake ZLIB", "cmake OpenSSL", "cmake Threads", "cmake Curses", "pkg-config libpng",
                    "library bz2", "library m", "header zlib.h"]


def test_makefile_and_includes(tmp_path):
    root = _tree(tmp_path, {
        "Makefile": "LDLIBS = -lbz2\nLIBS += -lm -lz # -lcommented\nclean:\n\tls -la\n"
                    "prog: prog.o\n\t$(CC) -o prog prog.o -lncursesw $(LDLIBS)\n",
        "prog.c": '#include <stdio.h>\n#include <bzlib.h>\n#include "own.h"\n#include <own.h>\n'
                  "#ifdef _WIN32\n#include <windows.h>\n#endif\n",
        "own.h": "#ifndef OWN_H\n#define OWN_H\n#include <glm/glm.hpp>\n#endif\n",  # a header is not read
        "contrib/other.c": "#include <png.h>\n", "tests/t.c": "#include <png.h>\n"})
    assert _names(deps.declared(root, "", "make")) == ("Makefile:1 library bz2\nMakefile:2 library m\n"
                                                       "Makefile:2 library z\nMakefile:6 library ncursesw\n"
                                                       "prog.c:1 header stdio.h\nprog.c:2 header bzlib.h\n")
    # another build system's files are not read: a CMake project's Makefile is its own output
    _tree(tmp_path, {"CMakeLists.txt": "project(x)\n"})
    assert _names(deps.declared(root, "", "cmake")) == ""


def test_another_systems_port_is_not_read(tmp_path):
    """unzip's tree: a directory per system; only the Unix one's and the top's declarations are this build's."""
    root = _tree(tmp_path, {
        "unix/Makefile": "LIBS = -lbz2\n", "unzip.c": "#include <zlib.h>\n",
        "beos/beosmain.cpp": "#include <app/Application.h>\n", "theos/_isatty.c": "#include <sc.h>\n",
        "human68k/Makefile": "LIBS = -lhmem -lttyi\n", "msdos/msdos.c": "#include <dos.h>\n",
        "vms/vms.c": "#include <descrip.h>\n", "amiga/amiga.c": "#include <exec/types.h>\n"})
    assert _names(deps.declared(root, "", "make")) == "unix/Makefile:1 library bz2\nunzip.c:1 header zlib.h\n"


def test_src_includes_and_include_guards(tmp_path):
    root = _tree(tmp_path, {"a.c": '#include "a.h"\n#include <zlib.h>\n#if HAVE_PNG\n#include <png.h>\n#endif\n',
                            "a.h": "#ifndef A_H\n#define A_H\n#include <bzlib.h>\n#endif\n"})
    assert _names(deps.included(root, ["a.c", "a.h"])) == "a.c:2 header zlib.h\na.h:3 header bzlib.h\n"


def test_bounded_reads(tmp_path):
    big = "x" * (600 << 10) + "\nLDLIBS = -lz\n"  # past the read cap: not seen
    root = _tree(tmp_path, {"Makefile": big})
    (tmp_path / "link.mk").symlink_to("/etc/passwd")  # a link out of the tree is not followed
    assert deps.declared(root, "", "make") == ()


def _d(kind: str, name: str, where: str = "configure.ac:1") -> Declared:
    return Declared(kind, name, where)


def test_packages_for_each_form(index):
    declared = [_d("pkg-config", "ncursesw", "configure.ac:212"), _d("library", "bz2", "Makefile:3"),
                _d("cmake", "ZLIB", "CMakeLists.txt:2"), _d("cmake", "OpenSSL", "CMakeLists.txt:3"),
                _d("cmake", "Threads"), _d("library", "m"), _d("header", "stdio.h"), _d("header", "glm/glm.hpp"),
                _d("library", "readline")]
    finding = found.find(declared, [AMD64, ARM64], index)
    assert finding.lines(2) == [
        "found libncurses-dev (pkg-config module ncursesw, configure.ac:212)",
        "found libbz2-dev (-lbz2, Makefile:3)",
        "found zlib1g-dev (CMake package ZLIB, CMakeLists.txt:2)",
        "found libssl-dev (CMake package OpenSSL, CMakeLists.txt:3)",
        "found libglm-dev (<glm/glm.hpp>, configure.ac:1)",  # header-only: no .a, no .so, installed
        "found libreadline-dev (-lreadline, configure.ac:1)"]  # the shortest of two that ship libreadline.a
    assert "all" not in index.asked  # every lookup answered by the architecture's index


def test_a_package_found_for_some_targets_only_says_which(index, tmp_path):
    only_amd64 = tmp_path / "amd64-only.txt"
    only_amd64.write_text(f"usr/lib/{AMD64.lib_dir_name}/libz.a\tlibdevel/zlib1g-dev\n")
    finding = found.find([_d("library", "z", "Makefile:1"), _d("header", "vector"), _d("header", "sys/x.h")],
                         [AMD64, ARM64], lambda arch: only_amd64 if arch != "all" else None)
    assert finding.lines(2) == ["found zlib1g-dev:amd64 (-lz, Makefile:1)"]


def test_a_package_without_its_static_archive_is_named_not_installed(index):
    finding = found.find([_d("library", "onig", "Makefile:2"), _d("pkg-config", "oniguruma")], [AMD64], index)
    assert finding.packages == ()
    assert finding.lines(1) == ["libonig-dev ships no static archive for -lonig (Makefile:2): not installed; a "
                                "static link cannot use it (the build may fail, or build without it)"]


def test_what_no_package_provides_is_one_line_each(index):
    finding = found.find([_d("library", "nosuch", "Makefile:4"), _d("header", "windows.h"),
                          _d("cmake", "NoSuchThing", "CMakeLists.txt:9")], [AMD64], index)
    assert finding.packages == ()
    assert finding.lines(1) == [  # a header no package has is a platform's: not said
        "no Debian package provides -lnosuch (Makefile:4), CMake package NoSuchThing (CMakeLists.txt:9): not "
        "installed (if the build needs one, its own error follows; add the package with --package)"]
    index.asked.clear()
    found.find([_d("library", "nosuch"), _d("header", "windows.h")], [AMD64], index)
    assert "all" not in index.asked  # libraries and headers are not looked for in Contents-all
    found.find([_d("pkg-config", "nosuch")], [AMD64], index)
    assert "all" in index.asked  # a .pc file may be an arch-independent package's


def test_excluded_and_headers_that_only_probe(index):
    declared = [_d("library", "bz2"), _d("pkg-config", "zlib"), _d("header", "dwarf.h"), _d("header", "zlib.h")]
    assert found.find(declared, [AMD64], index, exclude=("libbz2-dev",)).packages == ("zlib1g-dev", "libdw-dev")
    assert found.find(declared, [AMD64], index, exclude=("bz2", "zlib")).packages == ("libdw-dev", "zlib1g-dev")
    # configure's AC_CHECK_HEADERS probes: a header adds a package only with a library the project declares
    assert found.find(declared, [AMD64], index, headers_alone=False).packages == ("libbz2-dev", "zlib1g-dev")


def test_the_pipeline_adds_what_it_found_and_says_why(tmp_path, index):
    root = _tree(tmp_path / "p", {"Makefile": "LDLIBS = -lbz2\n", "m.c": "#include <zlib.h>\n"})
    job = plan.open_project(str(root), packages=("libpng-dev",))
    said: list[str] = []
    after = pipeline.with_found(job, [AMD64, ARM64], "glibc", index, (), said.append)
    assert after.packages == ("libpng-dev", "libbz2-dev", "zlib1g-dev")
    assert said == ["found libbz2-dev (-lbz2, Makefile:1)", "found zlib1g-dev (<zlib.h>, m.c:1)"]
    # musl builds take no Debian packages: said, not added, and no index read
    said.clear()
    index.asked.clear()
    assert pipeline.with_found(job, [AMD64], "musl", index, (), said.append) == job
    assert said == ["not finding packages for what the project declares (-lbz2 (Makefile:1), <zlib.h> (m.c:1)): a "
                    "musl build takes no Debian packages (--toolchain container with --libc glibc does)"]
    assert index.asked == []
    # no index to be had: said once, nothing added, nothing called unprovided
    said.clear()
    assert pipeline.with_found(job, [AMD64], "glibc", lambda arch: None, (), said.append) == job
    assert said == ["not finding packages for what the project declares: Debian's file index for amd64 cannot be "
                    "had (give them with --package)"]


def test_hello_needs_no_index(index):
    hello = plan.from_sources(__import__("toolkit.compile.recipes", fromlist=["x"]).checked_sources(
        (Path(__file__).parents[2] / "csrc" / "hello.c",)), "hello")
    said: list[str] = []
    assert pipeline.with_found(hello, [AMD64], "glibc", index, (), said.append) == hello
    assert said == [] and index.asked == []


def test_no_find_takes_names_or_nothing(tmp_path):
    from tests.conftest import assert_clean_failure, invoke
    from toolkit.cli import _no_find

    assert _no_find(None) == (True, ()) and _no_find(True) == (False, ())
    assert _no_find("libbz2-dev, ZLIB,zlib.h") == (True, ("libbz2-dev", "ZLIB", "zlib.h"))
    (tmp_path / "a.c").write_text("int main(void){return 0;}\n")
    bad = invoke("build", "--src", "a.c", "--out", "a", "--no-find=a;rm", cwd=tmp_path)
    assert_clean_failure(bad)
    assert "--no-find 'a;rm' is not a package or a declared name" in bad.err


def test_an_answer_is_kept_until_what_it_depends_on_changes(index, tmp_path, monkeypatch):
    """A rebuild asks the index nothing (found_kept); a refreshed index, another target, another exclusion or an
    unreadable kept answer asks again, and the kept answer is the one found.find gives."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    declared = [_d("pkg-config", "ncursesw", "configure.ac:212"), _d("library", "onig", "Makefile:2"),
                _d("library", "nosuch", "Makefile:9")]
    expected = found.find(declared, [AMD64], index)
    assert expected.found and expected.shared_only and expected.unprovided
    asked = []
    real = found.find
    monkeypatch.setattr(found, "find", lambda *a, **k: asked.append(a[1]) or real(*a, **k))
    assert found_kept.find(declared, [AMD64], index) == expected
    assert found_kept.find(declared, [AMD64], index) == expected
    assert len(asked) == 1
    found_kept.find(declared, [AMD64, ARM64], index)
    found_kept.find(declared, [AMD64], index, exclude=("onig",))
    assert len(asked) == 3
    os.utime(index("amd64"), ns=(1, 1))  # the index refreshed
    assert found_kept.find(declared, [AMD64], index) == expected
    assert len(asked) == 4
    for kept in (tmp_path / "cache" / "fromscratch" / "found").iterdir():
        kept.write_text("{not json")
    assert found_kept.find(declared, [AMD64], index) == expected
    assert len(asked) == 5
