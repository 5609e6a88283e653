"""build-hello and build with the host's gcc: real compiles, no engine."""

from __future__ import annotations

import subprocess

from tests.conftest import assert_clean_failure, invoke
from toolkit import targets
from toolkit.check import elf, verify


def test_build_hello_native_gives_a_binary_that_verify_passes(tmp_path):
    result = invoke("build-hello", "--toolchain", "native", cwd=tmp_path)
    assert result.code == 0, result
    hello = tmp_path / "hello"
    assert verify.verify(elf.read(str(hello)), targets.lookup("amd64")).ok
    run = subprocess.run([str(hello)], capture_output=True, text=True)
    assert "Hello from fromscratch" in run.stdout and "linux/amd64" in run.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hello", "hello.spdx.json"]


def test_compile_error_shows_gcc_and_leaves_nothing(tmp_path):
    (tmp_path / "bad.c").write_text("int main(void) { return undeclared_thing; }\n")
    result = invoke("build", "--src", "bad.c", "--out", "out/app", "--toolchain", "native", cwd=tmp_path)
    assert_clean_failure(result, 1)
    assert "undeclared_thing" in result.err and "error" in result.err
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["bad.c"]


def test_build_own_program_with_cflags(tmp_path):
    (tmp_path / "app.c").write_text('#include <stdio.h>\nint main(void){ printf("%d\\n", VALUE); }\n')
    result = invoke("build", "--src", "app.c", "--out", "app", "--cflags", "-DVALUE=42 -O1",
                    "--toolchain", "native", cwd=tmp_path)
    assert result.code == 0, result
    assert subprocess.run([str(tmp_path / "app")], capture_output=True, text=True).stdout == "42\n"
    assert verify.verify(elf.read(str(tmp_path / "app"))).ok


def test_bad_arguments_are_one_line_errors(tmp_path):
    for args, word in [(("build", "--src", "missing.c", "--out", "x"), "missing.c"),
                       (("build-hello", "--arch", "sparc"), "sparc"),
                       (("build-hello", "--toolchain", "clang"), "clang")]:
        result = invoke(*args, cwd=tmp_path)
        assert_clean_failure(result)
        assert word in result.err, result


def test_a_native_project_build_names_the_packages_the_host_lacks(tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "Makefile").write_text("all:\n\ttrue\n")
    # no host here has a development package of this name for arm64: the exact apt-get line is the answer
    result = invoke("build", "--project", str(proj), "--toolchain", "native", "--arch", "arm64",
                    "--package", "fromscratch-no-such-dev", cwd=tmp_path)
    assert_clean_failure(result, 1)
    assert ("dpkg --add-architecture arm64 && apt-get update && apt-get install fromscratch-no-such-dev:arm64"
            in result.err), result.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["proj"]


def test_cpp_sources_link_with_gxx_natively(tmp_path):
    (tmp_path / "hi.cpp").write_text('#include <iostream>\nint main(){ std::cout << "hi from c++" << std::endl; }\n')
    result = invoke("build", "--src", "hi.cpp", "--out", "hi", "--toolchain", "native", cwd=tmp_path)
    assert result.code == 0, result
    assert verify.verify(elf.read(str(tmp_path / "hi")), targets.lookup("amd64")).ok
    assert subprocess.run([str(tmp_path / "hi")], capture_output=True, text=True).stdout == "hi from c++\n"


def test_ldflags_come_after_the_sources(tmp_path):
    (tmp_path / "m.c").write_text('#include <math.h>\n#include <stdio.h>\n'
                                  'int main(int c, char **v){ printf("%.1f\\n", fmod(c + 6.5, 2)); }\n')
    result = invoke("build", "--src", "m.c", "--out", "m", "--ldflags", "-lm", "--toolchain", "native", cwd=tmp_path)
    assert result.code == 0, result
    assert subprocess.run([str(tmp_path / "m")], capture_output=True, text=True).stdout == "1.5\n"
