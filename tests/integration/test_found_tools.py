"""Build tools found on real upstream trees, built in the build container for amd64 with no --tool or --package:
sqlite3 (its configure looks for tclsh, its Makefile runs it to make sqlite3.c) and bc (yacc and lex from
configure.ac, makeinfo for its manual, and `ed`, which a script its Makefile.am runs calls), each program run in
its scratch image; bc's --save keeps the tools it found. A native build names the found tool this host lacks."""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import assert_clean_failure, invoke
from tests.integration.test_projects import build, run_in_image, sources  # noqa: F401 (fixtures)


@pytest.mark.engine
def test_sqlite3_builds_with_no_flags_because_tcl_is_found(sources, builder_base, tmp_path,  # noqa: F811
                                                            run_in_image):  # noqa: F811
    out = tmp_path / "dist"
    # no --tool, no --package; -O0 only spares the suite gcc -O2's minutes on the 8 MB sqlite3.c (the corpus
    # builds it with no flag at all)
    result = build(sources("sqlite3"), out, "--arch", "amd64", "--cflags", "-O0", base=builder_base)
    assert result.code == 0, result
    assert "found tool tcl (program tclsh, configure.ac:123)" in result.out.splitlines()
    answer = run_in_image(out / "sqlite3", "--version")
    assert answer.returncode == 0 and answer.stdout.decode().startswith("3.40.1 "), answer


@pytest.mark.engine
def test_bc_builds_with_no_flags_and_saves_the_tools_it_found(sources, builder_base, tmp_path,  # noqa: F811
                                                                run_in_image):  # noqa: F811
    tree, out = sources("bc"), tmp_path / "dist"
    result = build(tree, out, "--arch", "amd64", "--save", base=builder_base)
    assert result.code == 0, result
    lines = result.out.splitlines()
    for said in ("found tool bison (program bison, configure.ac:42)", "found tool flex (program flex, configure.ac:40)",
                 "found tool texinfo (program makeinfo, doc/Makefile.am:3)",
                 "found tool ed (program ed, bc/fix-libmath_h:1)"):
        assert said in lines
    assert 'tools = ["flex", "bison", "texinfo", "ed"]' in (tree / "fromscratch.toml").read_text()
    answer = run_in_image(out / "bc", "-q", stdin=b"scale=3; 22/7\n")
    assert answer.returncode == 0 and answer.stdout == b"3.142\n", answer


def test_a_native_build_names_the_found_tool_this_host_lacks(tmp_path):
    if shutil.which("gperf"):
        pytest.skip("this host has gperf")
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "Makefile").write_text("all:\n\tgperf keywords.gperf > keywords.c\n")
    result = invoke("build", "--project", "proj", "--toolchain", "native", cwd=tmp_path)
    assert_clean_failure(result, 1)
    assert "found tool gperf (program gperf, Makefile:2)" in result.out.splitlines()
    assert "needs: gperf (hint: install gperf; or use --toolchain container)" in result.err, result.err
