"""Which package a failed build lacked, without a mirror: the compilers' and linkers' words read from real outputs,
and lookups in a small Contents index written as Debian writes them."""

from __future__ import annotations

import gzip
import subprocess
from pathlib import Path

import pytest

from toolkit import targets
from toolkit.compile import provides
from toolkit.errors import BuildFailed
from toolkit.rootfs import contents

ARM64 = targets.lookup("arm64")
CONTENTS = """\
bin/true                                                utils/coreutils
usr/include/zlib.h                                      libdevel/zlib1g-dev
usr/include/aarch64-linux-gnu/openssl/opensslconf.h     libdevel/libssl-dev
usr/include/libxml2/libxml/parser.h                     libdevel/libxml2-dev
usr/lib/aarch64-linux-gnu/libz.a                        libdevel/zlib1g-dev
usr/lib/aarch64-linux-gnu/libz.so                       libdevel/zlib1g-dev
usr/lib/aarch64-linux-gnu/pkgconfig/zlib.pc             libdevel/zlib1g-dev
usr/lib/ncbi-igblast/lib/libz.a                         science/igblast
usr/include/shared.h                                    libs/libshared1,libdevel/libshared-dev
usr/include/somelib/config.h                            libdevel/somelib-dev
usr/share/doc/a file with spaces.h                      doc/somedoc
usr/share/tcltk/tcl8.6/init.tcl                         interpreters/tcl8.6
usr/bin/tclsh                                           interpreters/tcl
"""


@pytest.fixture
def index(tmp_path) -> Path:
    gz = tmp_path / "Contents-arm64.gz"
    with gzip.open(gz, "wt") as fh:
        fh.write(CONTENTS)
    kept = tmp_path / "kept.txt"
    contents.keep(gz, kept)
    return kept


def test_only_headers_archives_so_links_pc_files_and_programs_are_kept(index):
    kept = index.read_text().splitlines()
    assert "bin/true\tutils/coreutils" in kept  # a program: what build --debian delivers
    assert "usr/bin/tclsh\tinterpreters/tcl" in kept  # and the build tools a project runs
    assert not [line for line in kept if line.startswith("usr/share/doc/")]
    assert "usr/lib/aarch64-linux-gnu/libz.so\tlibdevel/zlib1g-dev" in kept  # what shows a missing libz.a
    assert "usr/include/zlib.h\tlibdevel/zlib1g-dev" in kept
    assert "usr/lib/aarch64-linux-gnu/pkgconfig/zlib.pc\tlibdevel/zlib1g-dev" in kept


def test_what_the_compilers_say_is_lacking(tmp_path):
    # real gcc output for a missing header, and the linker's for a missing library
    src = tmp_path / "a.c"
    src.write_text("#include <no_such_header_here.h>\nint main(void){ return 0; }\n")
    out = tmp_path / "gcc.out"
    with open(out, "w") as fh:
        subprocess.run(["gcc", "-c", str(src), "-o", str(tmp_path / "a.o")], stderr=fh, check=False)
    assert provides.lacking(out) == (("header", "no_such_header_here.h"),)
    src.write_text("int main(void){ return 0; }\n")
    with open(out, "w") as fh:
        subprocess.run(["gcc", str(src), "-o", str(tmp_path / "a"), "-lnosuchlib_here"], stderr=fh, check=False)
    assert provides.lacking(out) == (("library", "nosuchlib_here"),)
    # clang's (zig cc), lld's, pkg-config's and Meson's words
    out.write_text("a.c:1:10: fatal error: 'zlib.h' file not found\n"
                   "ld.lld: error: unable to find library -lpng\n"
                   "Package libfoo was not found in the pkg-config search path.\n"
                   "Package 'bar', required by 'baz', not found\n"
                   'meson.build:3:0: ERROR: Dependency "zlib" not found, tried pkgconfig and cmake\n'
                   "a.c:1:10: fatal error: zlib.h: No such file or directory\n")
    assert provides.lacking(out) == (("header", "zlib.h"), ("library", "png"), ("pkg-config", "libfoo"),
                                     ("pkg-config", "bar"), ("pkg-config", "zlib"))
    # make's, dash's and bash's words for a command that is not there (dos2unix, sqlite3, bc before tools were found)
    # ... when a step failed for it (make's Error 127): jq's version script goes on without git
    out.write_text("./scripts/version: 1: git: not found\n" + "x\n" * 40 +
                   "make: msgfmt: No such file or directory\n/bin/sh: 1: tclsh: not found\n"
                   "./fix-libmath_h: line 1: ed: command not found\nmake[2]: *** [Makefile:632: libmath.h] Error 127\n"
                   "sh: 1: ./configure: not found\nsh: 1: git: not found\nmake: *** [Makefile:779: all] Error 2\n")
    assert provides.lacking(out) == (("program", "msgfmt"), ("program", "tclsh"), ("program", "ed"))


def test_packages_for_the_target(index):
    wanted = [("header", "zlib.h"), ("library", "z"), ("pkg-config", "zlib"), ("header", "openssl/opensslconf.h"),
              ("header", "libxml/parser.h"), ("header", "shared.h"), ("header", "nowhere.h"),
              ("header", "config.h")]  # a bare name found only deeper is some package's own: no guess
    found = provides.find(wanted, ARM64, index=lambda arch: index if arch == "arm64" else None)
    assert found == [("zlib.h", "zlib1g-dev"), ("-lz (libz.a)", "zlib1g-dev"), ("zlib.pc", "zlib1g-dev"),
                     ("openssl/opensslconf.h", "libssl-dev"), ("libxml/parser.h", "libxml2-dev"),
                     ("shared.h", "libshared-dev")]


def test_the_hint_by_kind_of_build(index):
    said = {}
    for name, phrase in (("project", provides.for_project("container")), ("src-native", provides.for_sources("native")),
                         ("src-container", provides.for_sources("container")), ("zig", provides.for_project("zig"))):
        failed = [BuildFailed("the build failed", lacking=(("header", "zlib.h"),)), BuildFailed("other failure")]
        provides.explain(failed, [ARM64, ARM64], phrase, lambda arch: index if arch == "arm64" else None)
        assert failed[1].hint is None  # nothing lacking: no hint
        said[name] = failed[0].hint
    assert said["project"] == "zlib.h is in Debian's zlib1g-dev: add --package zlib1g-dev"
    assert said["src-native"].endswith("apt-get install zlib1g-dev:arm64")
    assert said["src-container"] == said["project"]  # --src takes --package like a project
    assert "--toolchain container with --package zlib1g-dev" in said["zig"]
    # a program it could not run: the --tool, whatever the toolchain
    failed = [BuildFailed("the build failed", lacking=(("program", "tclsh"), ("header", "zlib.h")), hint="see log")]
    provides.explain(failed, [ARM64], provides.for_sources("native"), lambda arch: index if arch == "arm64" else None)
    assert failed[0].hint is not None and failed[0].hint.endswith(
        "apt-get install zlib1g-dev:arm64; the program tclsh is in Debian's tcl: add --tool tcl; see log")
    failed = [BuildFailed("the build failed", lacking=(("header", "zlib.h"),))]
    provides.explain(failed, [ARM64], provides.for_project("native"), None)  # no index: no hint
    assert failed[0].hint is None


def test_the_programs_packages_ship(index):
    from toolkit.rootfs.contents import PROGRAM_DIRS

    assert provides.programs(index, ["coreutils"], PROGRAM_DIRS) == {"true": "coreutils"}
    assert provides.programs(index, ["zlib1g-dev"], PROGRAM_DIRS) == {}
