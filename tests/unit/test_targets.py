from __future__ import annotations

from pathlib import Path

import pytest

from toolkit import targets
from toolkit.errors import InputError


@pytest.mark.parametrize("name, expected", [
    ("amd64", "linux/amd64"), ("x86_64", "linux/amd64"), ("arm64v8", "linux/arm64/v8"),
    ("aarch64", "linux/arm64/v8"), ("linux/arm64", "linux/arm64/v8"), ("arm32v7", "linux/arm/v7"),
    ("linux/arm", "linux/arm/v7"), ("arm32v5", "linux/arm/v5"), ("i386", "linux/386"),
    ("linux/386", "linux/386"), ("ppc64el", "linux/ppc64le"), ("S390X", "linux/s390x"),
])
def test_lookup_accepts_the_names_users_type(name, expected):
    assert targets.lookup(name).platform == expected


def test_unknown_arch_lists_the_known_ones():
    with pytest.raises(InputError) as err:
        targets.lookup("sparc")
    assert "sparc" in err.value.message
    assert "riscv64" in (err.value.hint or "") and "mips64le" in (err.value.hint or "")


@pytest.mark.parametrize("text", ["linux", "linux//v7", "windows/amd64", "/amd64", "linux/arm/v7/x"])
def test_platform_that_does_not_parse_says_so(text):
    with pytest.raises(InputError):
        targets.parse_platform(text)


def test_every_target_is_one_row_with_distinct_name_and_platform():
    assert len({t.name for t in targets.TARGETS}) == len(targets.TARGETS) == 10
    assert len({t.platform for t in targets.TARGETS}) == 10
    assert [t.name for t in targets.parse_archs("all")] == [t.name for t in targets.TARGETS]


@pytest.mark.parametrize("name, expected", [
    ("armel", "arm-v5"), ("armv6l", "arm-v6"), ("armhf", "arm-v7"), ("mips64el", "mips64le"),
    ("powerpc64le", "ppc64le"), ("i686", "386"), ("linux/arm/v6", "arm-v6"), ("linux/arm64/v8", "arm64"),
])
def test_debian_and_uname_names_find_their_target(name, expected):
    assert targets.lookup(name).name == expected


def test_parse_archs_takes_lists_and_drops_repeats():
    assert [t.name for t in targets.parse_archs("arm64, linux/arm/v7,aarch64")] == ["arm64", "arm-v7"]
    with pytest.raises(InputError) as err:
        targets.parse_archs(" , ")
    assert "all" in (err.value.hint or "")


def test_debian_package_names_never_hold_an_underscore():
    # Debian names x86_64's cross gcc gcc-x86-64-linux-gnu: an arm64 host installs exactly that
    assert targets.lookup("amd64").packages == ("gcc-x86-64-linux-gnu", "libc6-dev-amd64-cross")
    assert targets.lookup("386").packages == ("gcc-i686-linux-gnu", "libc6-dev-i386-cross")
    assert targets.lookup("arm-v6").packages == ("gcc-arm-linux-gnueabi", "libc6-dev-armel-cross")
    assert targets.lookup("mips64le").packages == ("gcc-mips64el-linux-gnuabi64", "libc6-dev-mips64el-cross")
    for t in targets.TARGETS:
        assert all("_" not in p for p in t.packages), t


def test_every_qemu_name_is_a_binary_debians_qemu_user_static_ships():
    for t in targets.TARGETS:
        assert Path(f"/usr/bin/qemu-{t.qemu}-static").exists(), t.name


def test_which_targets_an_amd64_host_runs_without_qemu():
    amd64 = targets.lookup("amd64")
    assert [t.name for t in targets.TARGETS if t.runs_natively_on(amd64)] == ["amd64", "386"]
    assert not targets.lookup("amd64").runs_natively_on(targets.lookup("arm64"))


def test_arm_code_runs_on_its_own_and_newer_variants():
    assert [t.variant for t in targets.arm_targets_running(5)] == ["v5", "v6", "v7"]
    assert [t.variant for t in targets.arm_targets_running(7)] == ["v7"]
    assert targets.arm_targets_running(8) == []
