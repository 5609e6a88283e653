"""The compiler cache's names: one shared per target, or a set of its own (FROMSCRATCH_CCACHE_SET) that a
benchmark's cold run uses so as not to remove the shared one; a set's name is data, held to a grammar."""

from __future__ import annotations

import pytest

from toolkit.compile import kept
from toolkit.errors import InputError


def test_a_set_of_its_own_is_another_volume_and_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("FROMSCRATCH_CCACHE_SET", raising=False)
    assert kept.ccache_volume("arm64")[0] == "fromscratch-ccache-arm64"
    assert kept.ccache_volume("arm64", "bench-cold-1")[0] == "fromscratch-ccache-bench-cold-1-arm64"
    monkeypatch.setenv("FROMSCRATCH_CCACHE_SET", "mine")
    assert kept.ccache_volume("arm64")[0] == "fromscratch-ccache-mine-arm64"
    assert kept.ccache_here("arm64") == tmp_path / "fromscratch" / "ccache" / "mine-arm64"


@pytest.mark.parametrize("name", ["../x", "a b", "$(id)", "-rf", "x\ny", "UPPER", "a" * 41])
def test_a_set_name_that_is_not_one_is_refused(monkeypatch, name):
    monkeypatch.setenv("FROMSCRATCH_CCACHE_SET", name)
    with pytest.raises(InputError, match="FROMSCRATCH_CCACHE_SET"):
        kept.ccache_volume("amd64")
