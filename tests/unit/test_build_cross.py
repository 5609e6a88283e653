"""Several targets at once with the host's gcc and cross gcc: real compiles, no engine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import assert_clean_failure, invoke
from toolkit import targets
from toolkit.check import elf, verify
from toolkit.compile import pipeline, plan, zig
from toolkit.errors import BuildFailed, InputError


def _files(tmp: Path) -> list[str]:
    return sorted(p.name for p in tmp.iterdir())


def test_native_cross_gcc_builds_hello_arm64_that_runs_under_qemu(tmp_path):
    result = invoke("build-hello", "--arch", "arm64", "--toolchain", "native", cwd=tmp_path)
    assert result.code == 0, result
    assert "built hello-arm64 for linux/arm64/v8 with the native toolchain" in result.out
    hello = tmp_path / "hello-arm64"
    assert verify.verify(elf.read(str(hello)), targets.lookup("arm64")).ok
    ran = subprocess.run([f"/usr/bin/qemu-{targets.lookup('arm64').qemu}-static", str(hello)],
                         capture_output=True, text=True)
    assert "built for linux/arm64 " in ran.stdout, ran
    assert _files(tmp_path) == ["hello-arm64", "hello-arm64.spdx.json"]  # every binary with its SBOM


def test_several_targets_in_parallel_get_one_file_each(tmp_path):
    (tmp_path / "app.c").write_text('#include <stdio.h>\nint main(void){ puts("app"); }\n')
    result = invoke("build", "--src", "app.c", "--out", "bin/app", "--arch", "amd64,aarch64", "--jobs", "2",
                    "--toolchain", "native", cwd=tmp_path)
    assert result.code == 0, result
    assert _files(tmp_path / "bin") == ["app-amd64", "app-amd64.spdx.json", "app-arm64", "app-arm64.spdx.json"]
    for name in ("amd64", "arm64"):
        assert verify.verify(elf.read(str(tmp_path / "bin" / f"app-{name}")), targets.lookup(name)).ok


def test_one_failing_target_does_not_stop_the_others(tmp_path):
    (tmp_path / "app.c").write_text("#ifdef __aarch64__\n#error no arm64 today\n#endif\nint main(void){}\n")
    result = invoke("build", "--src", "app.c", "--out", "app", "--arch", "arm64,amd64", "--jobs", "2",
                    "--toolchain", "native", cwd=tmp_path)
    assert_clean_failure(result, 1)
    assert "1 of 2 targets failed: arm64" in result.err and "no arm64 today" in result.err
    assert "built app-amd64 for linux/amd64" in result.out
    assert _files(tmp_path) == ["app-amd64", "app-amd64.spdx.json", "app.c"]


def test_a_missing_cross_compiler_names_its_packages(tmp_path):
    # an empty PATH hides every gcc: what a host without the cross packages sees
    empty = tmp_path / "empty-path"
    empty.mkdir()
    one = invoke("build-hello", "--arch", "s390x", "--toolchain", "native", cwd=tmp_path,
                 env={"PATH": str(empty)})
    assert_clean_failure(one, 1)
    assert "linux/s390x" in one.err and "install gcc-s390x-linux-gnu libc6-dev-s390x-cross" in one.err
    every = invoke("build-hello", "--arch", "all", "--toolchain", "native", cwd=tmp_path,
                   env={"PATH": str(empty)})
    assert_clean_failure(every, 1)
    for t in targets.TARGETS:
        if t.architecture != targets.host().architecture:
            assert all(p in every.err for p in t.packages), t
    assert "gcc libc6-dev" in every.err and "--toolchain zig" in every.err
    assert _files(tmp_path) == ["empty-path"]


def test_output_that_fails_verify_is_refused_and_not_written(tmp_path):
    (tmp_path / "lib.c").write_text("int f(void){ return 1; }\n")
    result = invoke("build", "--src", "lib.c", "--out", "lib", "--cflags", "-O1 -c",
                    "--toolchain", "native", cwd=tmp_path)
    assert_clean_failure(result, 1)
    assert "fails verify" in result.err and "relocatable object" in result.err
    assert _files(tmp_path) == ["lib.c"]


@pytest.mark.parametrize("args, phrase", [
    (("--arch", "sparc"), "known: amd64, arm-v5, arm-v6, arm-v7, arm64, 386, mips64le, ppc64le, riscv64, s390x"),
    (("--arch", "linux/arm/v9/x"), "does not parse"),
    (("--arch", "amd64", "--jobs", "0"), "--jobs 0"),
    (("--toolchain", "tcc"), "auto, native, container, zig"),
])
def test_bad_input_is_one_line(tmp_path, args, phrase):
    result = invoke("build-hello", *args, cwd=tmp_path)
    assert_clean_failure(result, 2)
    assert phrase in result.err and len(result.err.strip().splitlines()) == 1, result
    assert _files(tmp_path) == []


def test_output_names():
    amd64, arm7 = targets.lookup("amd64"), targets.lookup("arm32v7")
    assert pipeline.output_paths(Path("hello"), [amd64], per_target=False) == {"amd64": Path("hello")}
    assert pipeline.output_paths(Path("out/hello"), [amd64, arm7], per_target=True) == {
        "amd64": Path("out/hello-amd64"), "arm-v7": Path("out/hello-arm-v7")}
    with pytest.raises(InputError):
        pipeline.output_paths(Path("hello"), [amd64, arm7], per_target=False)


def test_zig_without_the_ziglang_package_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ziglang", None)  # what find_spec sees when it is not installed
    with pytest.raises(BuildFailed) as err:
        zig.Zig().prepare(plan.Plan(Path(".")), [targets.lookup("arm64")])
    assert "pip install 'fromscratch[zig]'" in str(err.value)


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_musl_with_the_native_gcc_gives_a_small_static_musl_hello(tmp_path, arch):
    result = invoke("build-hello", "--libc", "musl", "--toolchain", "native", "--arch", arch, "--out", "hello",
                    cwd=tmp_path)
    assert result.code == 0, result
    facts = elf.read(str(tmp_path / "hello"))
    assert verify.verify(facts, targets.lookup(arch)).ok and facts.libc == "musl"
    target = targets.lookup(arch)
    ran = subprocess.run([f"/usr/bin/qemu-{target.qemu}-static", str(tmp_path / "hello")], capture_output=True,
                         text=True)
    assert "runs in a FROM scratch image" in ran.stdout, ran


@pytest.mark.parametrize(("args", "phrase"), [
    (("build", "--src", "hi.cc", "--out", "hi", "--libc", "musl", "--toolchain", "native"),
     "C++ with --libc musl and gcc: Debian has no libstdc++"),
    (("build", "--project", ".", "--package", "zlib1g-dev", "--libc", "musl", "--toolchain", "native"),
     "--package with --libc musl: Debian's static archives are built against glibc"),
    (("build", "--project", ".", "--package", "zlib1g-dev", "--toolchain", "zig"),
     "--package with the zig toolchain"),
    (("build-hello", "--libc", "glibc", "--toolchain", "zig"), "--libc glibc with the zig toolchain"),
    (("build-hello", "--libc", "uclibc"), "--libc 'uclibc': choose glibc or musl"),
])
def test_libc_combinations_that_cannot_work_are_refused_with_the_alternative(tmp_path, args, phrase):
    (tmp_path / "hi.cc").write_text("int main(){}\n")
    (tmp_path / "Makefile").write_text("all:\n\ttrue\n")
    result = invoke(*args, cwd=tmp_path)
    assert_clean_failure(result, 2)
    assert phrase in result.err, result.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Makefile", "hi.cc"]
