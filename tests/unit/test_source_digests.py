"""The digest an SBOM names a project tree by (sbom/sources.py): the same with the file digests kept between
builds as without them; a file changed under the same size and modification time is read again (its change
time and inode say so); hostile names are data."""

from __future__ import annotations

import os

from toolkit.sbom import sources

NAMES = ["main.c", "-rf", "$(touch pwned)", "new\nline", "a'b", "\udcff-undecodable"]


def test_kept_digests_give_the_same_tree_digest_and_see_every_change(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = tmp_path / "proj"
    (root / "sub").mkdir(parents=True)
    for name in NAMES:
        (root / name).write_text(f"{name!r}\n")
        (root / "sub" / name).write_text("data\n")
    fresh = sources.tree_digest(root)
    kept = list((tmp_path / "cache" / "fromscratch" / "digests").iterdir())
    assert len(kept) == 1
    assert sources.tree_digest(root) == fresh  # from the kept digests
    target = root / "sub" / NAMES[1]
    st = target.stat()
    target.write_text("DATA\n")  # the same size, its modification time put back
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    changed = sources.tree_digest(root)
    assert changed != fresh
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "other"))
    assert sources.tree_digest(root) == changed  # as computed without any kept digest
    assert not (tmp_path / "pwned").exists()


def test_a_kept_file_that_is_not_ours_is_read_past(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = tmp_path / "proj"
    root.mkdir()
    (root / "main.c").write_text("int main(void){return 0;}\n")
    fresh = sources.tree_digest(root)
    [kept] = (tmp_path / "cache" / "fromscratch" / "digests").iterdir()
    for junk in ("{not json", "[1, 2]", '{"main.c": [1, 2, 3, 4, 5]}', '{"main.c": "x"}'):
        kept.write_text(junk)
        assert sources.tree_digest(root) == fresh
