"""The image bytes themselves: deterministic layers, archives that tar reads, digests that hold."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from toolkit.image import oci

# Computed once from the inputs in _golden(); a change here means every image ID we ever made changes.
GOLDEN = {
    "layer": "sha256:2bc5bdfebf460adb1f419270b790e744cc45a96543a2335cd52fee16465bab38",
    "id": "sha256:27d0dcbd5973772ad8fd468536a23f213e75dbce171f989416928d19b5b593d7",
    "manifest": "sha256:fbbc89a95a56a68b0e4e14fd5c34e28bed594e47c7df2f052d336f3710196035",
}


def _image(tmp: Path, entries: list[oci.Entry], epoch: int = 0, name: str = "layer.tar") -> oci.Image:
    layer = tmp / name
    with open(layer, "wb") as fh:
        desc = oci.write_layer(entries, fh, epoch)
    return oci.make_image([(desc, layer)], oci.ImageConfig("amd64", cmd=("/hello",), env=(oci.DEFAULT_PATH,)),
                          epoch, created_by="golden")


def _golden(tmp: Path, epoch: int = 0) -> oci.Image:
    return _image(tmp, [oci.Entry("hello", 0o755, data=b"fromscratch\n"), oci.Entry("tmp", 0o1777, kind="dir")],
                  epoch)


def test_same_inputs_give_the_published_digests(tmp_path):
    image = _golden(tmp_path)
    assert image.layers[0][0].digest == GOLDEN["layer"]
    assert image.image_id == GOLDEN["id"]
    assert image.manifest_desc.digest == GOLDEN["manifest"]


def test_source_date_epoch_dates_the_image_and_changes_the_digest(tmp_path):
    dated = _golden(tmp_path, epoch=1_700_000_000)
    assert dated.manifest_desc.digest != GOLDEN["manifest"]
    assert json.loads(dated.config)["created"] == "2023-11-14T22:13:20Z"
    with tarfile.open(dated.layers[0][1]) as tar:
        assert {m.mtime for m in tar} == {1_700_000_000}


def test_host_metadata_does_not_reach_the_layer(tmp_path):
    """mtime, owner, permission bits and the directory a file sits in: none of them changes the digest."""
    digests = set()
    for i, (mode, mtime, owner) in enumerate([(0o700, 1, 0), (0o755, 2_000_000_000, 1234)]):
        d = tmp_path / f"run{i}"
        d.mkdir()
        f = d / "hello"
        f.write_bytes(b"\x7fELF same bytes")
        f.chmod(mode)
        os.utime(f, (mtime, mtime))
        os.chown(f, owner, owner)
        digests.add(_image(d, [oci.entry_for(f, "hello", 0o755)]).manifest_desc.digest)
    assert len(digests) == 1


def test_layer_entries_are_sorted_numeric_and_normalised(tmp_path):
    image = _image(tmp_path, [oci.Entry("usr/share/b", 0o644, data=b"b"), oci.Entry("a", 0o4755, data=b"a"),
                              oci.Entry("tmp", 0o1777, kind="dir"), oci.Entry("usr/l", 0o777, kind="symlink",
                                                                               link="share/b")])
    with tarfile.open(image.layers[0][1]) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["a", "tmp", "usr", "usr/l", "usr/share", "usr/share/b"]
    assert {(m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, "", "")}
    modes = {m.name: m.mode for m in members}
    assert modes["tmp"] == 0o1777 and modes["usr"] == 0o755 and modes["a"] == 0o4755


@settings(max_examples=25, deadline=None)
@given(st.permutations([("bin/app", b"app"), ("etc/conf", b"x=1\n"), ("etc/ssl/cert", b"---"), ("z", b"")]))
def test_entry_order_does_not_matter(tmp_path_factory, order):
    tmp = tmp_path_factory.mktemp("order")
    image = _image(tmp, [oci.Entry(path, 0o644, data=data) for path, data in order])
    first = _image(tmp, [oci.Entry(path, 0o644, data=data) for path, data in sorted(order)], name="sorted.tar")
    assert image.manifest_desc.digest == first.manifest_desc.digest


def test_archive_is_a_layout_and_a_docker_archive_and_streams_in_bounded_chunks(tmp_path):
    image = _golden(tmp_path)
    chunks = list(oci.archive_chunks([image], ["golden:1"]))
    assert max(len(c) for c in chunks) <= 1 << 20
    data = b"".join(chunks)
    assert len(data) % tarfile.RECORDSIZE == 0
    buf = io.BytesIO()
    oci.write_archive([image], buf, ["golden:1"])
    assert buf.getvalue() == data
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = tar.getnames()
        for name in names:
            if name.startswith("blobs/sha256/") and tar.getmember(name).isfile():
                blob = tar.extractfile(name)
                assert blob is not None
                assert hashlib.sha256(blob.read()).hexdigest() == name.rsplit("/", 1)[1]
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert "oci-layout" in names
    assert index["manifests"][0]["digest"] == GOLDEN["manifest"]
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "1"
    assert manifest[0]["RepoTags"] == ["golden:1"]
    assert manifest[0]["Config"] == f"blobs/sha256/{GOLDEN['id'].split(':')[1]}"


def test_a_layer_that_changes_while_written_is_refused(tmp_path):
    image = _golden(tmp_path)
    layer = image.layers[0][1]
    with open(layer, "ab") as fh:
        fh.write(b"\0" * 512)
    try:
        oci.write_archive([image], io.BytesIO())
    except oci.ToolkitError as exc:
        assert "changed" in str(exc)
    else:
        raise AssertionError("a changed layer was written")


def test_layout_blobs_match_their_names(tmp_path):
    image = _golden(tmp_path)
    layout = tmp_path / "layout"
    oci.write_layout([image], layout, ref_name="golden:1")
    blobs = sorted((layout / "blobs" / "sha256").iterdir())
    assert len(blobs) == 3
    for blob in blobs:
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name
    assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
