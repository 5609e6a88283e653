"""Build tools found before a build: each declaration form of a program (configure.ac's macros, Makefile.am,
meson.build, CMakeLists.txt, a Makefile's recipes and the scripts they run) read from a small project, and the
packages a small Contents index (written as Debian writes it) gives for them on the build machine."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toolkit import targets
from toolkit.compile import found, pipeline, plan, programs
from toolkit.compile.deps import Declared
from toolkit.rootfs import contents

AMD64 = targets.lookup("amd64")
CONTENTS = """\
usr/bin/tclsh                                           interpreters/tcl
usr/bin/tclsh8.6                                        interpreters/tcl8.6
usr/bin/lex                                             devel/flex,devel/flex-old
usr/bin/flex                                            devel/flex,devel/flex-old
usr/bin/bison                                           devel/bison,devel/bison++
usr/bin/byacc                                           devel/byacc
usr/bin/msgfmt                                          devel/gettext
usr/bin/xgettext                                        devel/gettext
usr/bin/makeinfo                                        text/texinfo
usr/bin/help2man                                        devel/help2man
usr/bin/perl                                            perl/perl-base
usr/bin/python3                                         python/python3-minimal
usr/bin/gcc                                             devel/gcc
usr/bin/clang                                           devel/clang
usr/bin/ed                                              editors/ed
usr/bin/gperf                                           devel/gperf
usr/bin/xxd                                             editors/xxd
usr/bin/ncursesw6-config                                libdevel/libncurses-dev
usr/bin/Evil                                            devel/Bad;Name
usr/include/zlib.h                                      libdevel/zlib1g-dev
usr/lib/{m}/libz.a                                      libdevel/zlib1g-dev
"""
ALL = "usr/bin/po4a                                            text/po4a\n"


@pytest.fixture
def index(tmp_path):
    kept = {}
    for arch, text in (("amd64", CONTENTS.replace("{m}", AMD64.lib_dir_name)), ("all", ALL)):
        gz = tmp_path / f"Contents-{arch}.gz"
        with gzip.open(gz, "wt") as fh:
            fh.write(text)
        kept[arch] = tmp_path / f"{arch}.txt"
        contents.keep(gz, kept[arch])
    return lambda arch: kept.get(arch)


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def _said(root: Path, system: str) -> list[str]:
    return [f"{d.where} {d.name}" for d in programs.declared(root, "", system)]


def test_configure_ac_forms(tmp_path):
    root = _tree(tmp_path, {"configure.ac": """\
AC_INIT([x], [1])
AC_CHECK_PROGS(TCLSH_CMD, [tclsh8.7 tclsh8.6 tclsh], none)
AC_PROG_YACC
AM_PROG_LEX
AC_PATH_PROG([HELP2MAN], [help2man])
AC_CHECK_PROG(HAVE_GPERF, gperf, yes, no)
AC_PATH_PROGS([PERL], [perl5 perl])
AM_GNU_GETTEXT([external])
AC_CHECK_TOOL([AR], [ar])
AC_PATH_PROG([DOXYGEN], [doxygen])
AM_MISSING_PROG([MAKEINFO], [makeinfo])
dnl AC_PATH_PROG([OLD], [gone])
AM_PATH_PYTHON([3.5])
""", "doc/Makefile.am": "info_TEXINFOS = x.texi\n", "po/de.po": "", "po/fr.po": "",
    "man/Makefile.am": "dist_man_MANS = x.1\nx.1: ../src/x\n\t$(HELP2MAN) --output=$@ ../src/x\n\t$(CC) x\n"})
    assert _said(root, "autotools") == [  # in the file's order; doxygen is never installed; each once
        "configure.ac:2 tclsh8.7|tclsh8.6|tclsh", "configure.ac:3 bison|byacc|yacc", "configure.ac:4 flex|lex",
        "configure.ac:5 help2man", "configure.ac:6 gperf", "configure.ac:7 perl5|perl", "configure.ac:8 msgfmt",
        "configure.ac:9 ar", "configure.ac:11 makeinfo", "configure.ac:13 python3"]
    (root / "configure.ac").write_text("AC_INIT([x], [1])\n")
    # a manual, a man page made by help2man (configure sets $(HELP2MAN)), translations
    assert _said(root, "autotools") == ["doc/Makefile.am:1 makeinfo", "man/Makefile.am:3 help2man",
                                        "po/de.po msgfmt"]


def test_makefile_recipes_and_the_scripts_they_run(tmp_path):
    root = _tree(tmp_path, {
        "Makefile": "MSGFMT ?= msgfmt\nX = $(SHELL) ./missing help2man\nall: x\n"
                    "\t@PERL_UNICODE=SDA pod2html --x a > b\n\t-$(MSGFMT) -c a.po -o a.mo\n"
                    "\tcat parse.h | tclsh mk.tcl && ./fix.sh\n\t$(X) --output=x.1 ./x\n\trm -f x # bison\n"
                    "\t$(srcdir)/gone.sh\n\techo yacc\n",
        "fix.sh": "# ed is here\ned x.h <<EOF\n1,1s/^/x/\nEOF\n",
        "man/Makefile": "x.1: x.pod\n\tpo4a-translate -f pod\n"})
    assert _said(root, "make") == ["Makefile:4 pod2html", "Makefile:5 msgfmt", "Makefile:6 tclsh",
                                   "Makefile:7 help2man", "man/Makefile:2 po4a-translate", "fix.sh:2 ed"]


def test_meson_and_cmake_forms(tmp_path):
    root = _tree(tmp_path / "m", {"meson.build": "project('x', 'c')\nbison = find_program('bison', 'byacc', "
                                                 "required: false)\ni18n = import('i18n')\n"
                                                 "# find_program('commented')\nfind_program('gperf')\n"})
    assert _said(root, "meson") == ["meson.build:2 bison|byacc", "meson.build:5 gperf", "meson.build:3 msgfmt"]
    root = _tree(tmp_path / "c", {"CMakeLists.txt": "find_package(BISON 3.0 REQUIRED)\nfind_package(FLEX)\n"
                                                    "find_package(ZLIB)\nfind_package(Doxygen)\n"
                                                    "find_program(XXD_EXE NAMES xxd vim.xxd REQUIRED)\n"
                                                    "FIND_PROGRAM(TCL tclsh)\nfind_package(Gettext)\n"})
    assert _said(root, "cmake") == ["CMakeLists.txt:1 bison", "CMakeLists.txt:2 flex", "CMakeLists.txt:5 xxd|vim.xxd",
                                    "CMakeLists.txt:6 tclsh", "CMakeLists.txt:7 msgfmt"]


def test_hostile_declarations_name_no_program(tmp_path):
    root = _tree(tmp_path, {"configure.ac": """\
AC_PATH_PROG([A], [$(rm -rf /)])
AC_PATH_PROG([B], ["tclsh; rm -rf /"])
AC_CHECK_PROGS([C], [-rf --help ../bin/x /usr/bin/flex `id`])
AC_PATH_PROG([D], [bi
son])
AC_PATH_PROG([E], [Evil])
AC_CHECK_PROGS([F], [-rf --help ../bin/x /usr/bin/flex])
AC_PATH_PROG([G], [tclsh
rm])
""", "Makefile.am": "all:\n\t'tclsh' x\n\t$(shell tclsh)\n\t\"msgfmt\"\n"})
    # a list that holds shell names nothing; a quoted word or $(...) is no recipe's command; names are only
    # compared with the index's paths (Evil's package there, "Bad;Name", is refused: see below)
    assert _said(root, "autotools") == ["configure.ac:4 bi|son", "configure.ac:6 Evil", "configure.ac:8 tclsh|rm"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=60))
def test_whatever_a_list_holds_only_plain_names_come_out(tmp_path, text):
    root = _tree(tmp_path, {"configure.ac": f"AC_CHECK_PROGS([X], [{text}])\nAC_PATH_PROG(Y, {text})\n",
                            "Makefile.am": f"all:\n\t{text}\n"})
    for d in programs.declared(root, "", "autotools"):
        assert all(programs._PROGRAM.fullmatch(n) for n in d.name.split("|")), d


def _d(name: str, where: str = "configure.ac:1") -> Declared:
    return Declared("program", name, where)


def test_the_package_debian_picks_for_each(index):
    declared = [_d("tclsh8.7|tclsh8.6|tclsh", "configure.ac:123"), _d("bison|byacc|yacc"), _d("flex|lex"),
                _d("msgfmt"), _d("xgettext"), _d("help2man"), _d("perl5|perl"), _d("python3"), _d("gcc|clang"),
                _d("ar"), _d("nosuch"), _d("ncursesw6-config"), _d("yacc", "Makefile:9"), _d("po4a")]
    assert [t.line() for t in found.tools(declared, AMD64, index)] == [
        "found tool tcl (program tclsh, configure.ac:123)",  # not tcl8.6: the one Debian's tclsh follows
        "found tool bison (program bison, configure.ac:1)",
        "found tool flex (program flex, configure.ac:1)",
        "found tool gettext (program msgfmt, configure.ac:1)",  # once, for msgfmt and xgettext
        "found tool help2man (program help2man, configure.ac:1)",
        # perl, python3, gcc: the build image has them; ar: no package; ncursesw6-config: a library's
        "found tool po4a (program po4a, configure.ac:1)"]  # from the architecture-independent packages


def test_excluded_tools_and_a_bad_package_name_from_the_index(index):
    declared = [_d("tclsh"), _d("bison|byacc|yacc"), _d("Evil"), _d("ed")]
    assert [t.package for t in found.tools(declared, AMD64, index, exclude=("tcl", "byacc"))] == ["ed"]
    assert [t.package for t in found.tools(declared, AMD64, index, exclude=("ed", "tclsh"))] == ["bison"]


def test_the_pipeline_adds_tools_and_says_why(tmp_path, index):
    root = _tree(tmp_path / "p", {"configure.ac": "AC_INIT([x],[1])\nAC_PROG_YACC\nAC_PATH_PROG(T, tclsh)\n",
                                  "Makefile.am": "bin_PROGRAMS = x\n"})
    job = plan.open_project(str(root), tools=("gperf",))
    said: list[str] = []
    after = pipeline.with_found(job, [AMD64], "glibc", index, (), said.append)
    assert after.tools == ("gperf", "bison", "tcl") and after.packages == ()
    assert said == ["found tool bison (program bison, configure.ac:2)", "found tool tcl (program tclsh, "
                                                                         "configure.ac:3)"]
    # a musl build takes no Debian packages, but its tools run on the build machine all the same
    said.clear()
    assert pipeline.with_found(job, [AMD64], "musl", index, (), said.append).tools == ("gperf", "bison", "tcl")
    # --tool given: not said again; --no-find=NAME leaves one out
    said.clear()
    assert pipeline.with_found(plan.open_project(str(root), tools=("tcl",)), [AMD64], "glibc", index, ("bison",),
                               said.append).tools == ("tcl",)
    assert said == []
