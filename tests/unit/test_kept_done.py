"""What a kept build delivered, kept on this machine (compile/kept.py's unchanged/keep_done): delivered again
only for the same key, the same build image and a tree unchanged by the manifest's rule; hostile names are
data; `invoke clean` of a state forgets its record."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from toolkit import files
from toolkit.compile import kept

HOSTILE = ["-rf", "$(touch pwned)", "a'b\"c", "new\nline", "--help", " lead", "\udcff-undecodable"]


@pytest.fixture(autouse=True)
def cache(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _unchanged(k: kept.Key, image_id: str, tree) -> Path | None:
    """What the container toolchain does: the record of k's last build, then the tree against its manifest."""
    last = kept.last_done(k, image_id)
    return None if last is None else kept.unchanged(last, kept.changes(tree, last.manifest))


def _key(name: str = "fromscratch-state-aaa", place: str = "p1") -> kept.Key:
    return kept.Key(name, place, ())


def _project(tmp_path: Path) -> Path:
    proj = tmp_path / "proj"
    (proj / "-d").mkdir(parents=True)
    for name in ["Makefile", *HOSTILE]:
        (proj / name).write_text(f"{name!r}\n")
        (proj / "-d" / name).write_text("data\n")
    return proj


def _made(tmp_path: Path) -> Path:
    made = tmp_path / "made"
    (made / "out" / ".records").mkdir(parents=True)
    (made / "out" / "app").write_bytes(b"\x7fELF program")
    (made / "out" / ".records" / "app").write_text("record\n")
    return made


def _kept(tmp_path: Path, k: kept.Key, image: str = "sha256:1") -> Path:
    proj = _project(tmp_path)
    change = kept.changes(files.tree(proj), None)
    kept.keep_done(k, image, change, _made(tmp_path), "ab" * 16)
    return proj


def test_nothing_changed_delivers_what_the_last_build_did(tmp_path):
    k = _key()
    proj = _kept(tmp_path, k)
    done = _unchanged(k, "sha256:1", files.tree(proj))
    assert done is not None
    assert (done / "out" / "app").read_bytes() == b"\x7fELF program"
    assert (done / "out" / ".records" / "app").read_text() == "record\n"
    assert not list(done.parent.glob(".*"))  # no temporary left beside it
    last = kept.last_done(k, "sha256:1")
    assert last is not None and last.generation == "ab" * 16


@pytest.mark.parametrize("name", ["Makefile", *HOSTILE])
def test_a_changed_file_is_built(tmp_path, name):
    k = _key()
    proj = _kept(tmp_path, k)
    (proj / name).write_text("changed!\n")
    assert _unchanged(k, "sha256:1", files.tree(proj)) is None


def test_a_file_added_or_deleted_is_built(tmp_path):
    k = _key()
    proj = _kept(tmp_path, k)
    (proj / "-d" / HOSTILE[0]).unlink()
    assert _unchanged(k, "sha256:1", files.tree(proj)) is None
    (proj / "-d" / HOSTILE[0]).write_text("data\n")
    assert _unchanged(k, "sha256:1", files.tree(proj)) is not None
    (proj / "new.c").write_text("")
    assert _unchanged(k, "sha256:1", files.tree(proj)) is None


def test_new_times_with_the_same_content_deliver_and_are_noted(tmp_path):
    k = _key()
    proj = _kept(tmp_path, k)
    os.utime(proj / "Makefile", (1_000_000_000, 1_000_000_000))
    assert _unchanged(k, "sha256:1", files.tree(proj)) is not None
    noted = kept.read_manifest({kept.MANIFEST: (kept.done_dir(k) / kept.MANIFEST).read_bytes()})[0]
    assert noted is not None and noted["Makefile"][3] == 1_000_000_000 * 10**9


def test_another_key_or_build_image_is_built(tmp_path):
    k = _key()
    proj = _kept(tmp_path, k)
    assert _unchanged(_key("fromscratch-state-bbb"), "sha256:1", files.tree(proj)) is None  # other flags
    assert _unchanged(k, "sha256:2", files.tree(proj)) is None  # the build image remade under its tag
    assert _unchanged(k, "", files.tree(proj)) is None
    assert _unchanged(_key(place="p2"), "sha256:1", files.tree(proj)) is None


def test_a_record_forgotten_or_broken_is_built(tmp_path):
    k = _key()
    proj = _kept(tmp_path, k)
    (kept.done_dir(k) / kept.MANIFEST).write_text("{not json")
    assert _unchanged(k, "sha256:1", files.tree(proj)) is None
    _kept(tmp_path / "again", k)
    kept.forget_done(k)
    assert not kept.done_dir(k).exists()
    assert _unchanged(k, "sha256:1", files.tree(proj)) is None


def test_clean_of_a_state_forgets_only_its_records(tmp_path):
    a, b = _key("fromscratch-state-aaa", "p1"), _key("fromscratch-state-bbb", "p2")
    _kept(tmp_path / "a", a)
    _kept(tmp_path / "b", b)
    kept.forget_done(None, a.name)
    assert not kept.done_dir(a).exists() and kept.done_dir(b).is_dir()


def test_a_record_that_cannot_be_written_is_not_kept(tmp_path):
    k = _key()
    kept.state_root().mkdir(parents=True)
    (kept.state_root() / kept.DONE).write_text("a file where the directory goes")
    kept.keep_done(k, "sha256:1", kept.changes(files.tree(_project(tmp_path)), None), _made(tmp_path))
    assert _unchanged(k, "sha256:1", files.tree(tmp_path / "proj")) is None


def test_clean_forgets_the_records_of_states_that_are_no_more(tmp_path):
    a, b = _key("fromscratch-state-aaa", "p1"), _key("fromscratch-state-bbb", "p2")
    _kept(tmp_path / "a", a)
    _kept(tmp_path / "b", b)
    kept.forget_done_except({b.name})
    assert not kept.done_dir(a).exists() and kept.done_dir(b).is_dir()
