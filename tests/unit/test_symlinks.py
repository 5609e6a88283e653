"""The symlinks a build installed beside its programs, delivered beside them by name: never a link that leads
anywhere else, never over a program or an SBOM, only once the programs are written."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from toolkit.compile import symlinks


def _deliver(tmp_path: Path, text: str, programs: set[str], fail: bool = False) -> dict[str, list[str]]:
    listed = tmp_path / "list"
    listed.write_text(text)
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    with contextlib.ExitStack() as outputs:
        also = symlinks.deliver(listed, lambda name: out / name, programs, outputs)
        assert not [p for p in out.iterdir() if p.is_symlink()]  # nothing yet: the programs are not written
        if fail:
            raise RuntimeError("a later program failed")
    return also


def test_links_to_programs_are_made_beside_them_by_name(tmp_path):
    also = _deliver(tmp_path, "screen/screen-4.9.0\nvi/vim\nex/vim\n", {"screen-4.9.0", "vim"})
    assert also == {"screen-4.9.0": ["screen"], "vim": ["vi", "ex"]}
    assert os.readlink(tmp_path / "out" / "screen") == "screen-4.9.0"
    assert os.readlink(tmp_path / "out" / "ex") == "vim"


@pytest.mark.parametrize("line", ["x/../../etc/passwd", "../x/prog", "x/elsewhere", "prog/prog", ".hidden/prog",
                                  "prog.spdx.json/prog", "a\x1bb/prog", "/prog", "x"])
def test_anything_else_is_left_out(tmp_path, line):
    assert _deliver(tmp_path, line + "\n", {"prog"}) == {}
    assert not list((tmp_path / "out").iterdir())


def test_nothing_is_linked_when_the_delivery_fails(tmp_path):
    with pytest.raises(RuntimeError):
        _deliver(tmp_path, "screen/screen-4.9.0\n", {"screen-4.9.0"}, fail=True)
    assert not list((tmp_path / "out").iterdir())


def test_a_link_replaces_an_earlier_copy(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "screen").write_text("an earlier build's program")
    _deliver(tmp_path, "screen/screen-4.9.0\n", {"screen-4.9.0"})
    assert os.readlink(tmp_path / "out" / "screen") == "screen-4.9.0"
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["screen"]  # no temporary name left
