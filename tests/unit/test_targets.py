from __future__ import annotations

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
