"""The deterministic layer of a directory, and the --out files: same tree, same bytes, however it was made."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import socket
import subprocess
import tarfile
from pathlib import Path

import pytest

from toolkit import targets
from toolkit.errors import InputError
from toolkit.progress import Progress
from toolkit.rootfs.debootstrap import image_config
from toolkit.rootfs.load import deliver, out_compression
from toolkit.rootfs.tar import plan_tree

EPOCH = 1_700_000_000
FILES = {"etc/hostname": b"box\n", "usr/bin/tool": b"\x7fELF" + bytes(300), "usr/share/doc/a/copyright": b"MIT\n",
         "var/empty": b"", "usr/lib/\u00e9t\u00e9": b"utf-8 name", "opt/" + "long" * 40: b"a long path"}


def _make_tree(root: Path, reverse: bool, mtime: int, umask: int) -> Path:
    """The same tree, created in a different order, at a different time and under a different umask."""
    old = os.umask(umask)
    try:
        for name in sorted(FILES, reverse=reverse):
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(FILES[name])
        for d, _, _ in os.walk(root):
            os.chmod(d, 0o755)
        for name in FILES:
            os.chmod(root / name, 0o755 if name.startswith("usr/bin") else 0o644)
        (root / "bin").symlink_to("usr/bin")
        os.link(root / "usr/bin/tool", root / "usr/bin/tool-too")
        for d, dirs, files in os.walk(root):
            for n in dirs + files + ["."]:
                os.utime(Path(d) / n, (mtime, mtime), follow_symlinks=False)
    finally:
        os.umask(old)
    return root


def _layer(root: Path, epoch: int = EPOCH, **kw) -> bytes:
    plan = plan_tree(root, epoch, **kw)
    data = b"".join(plan.chunks())
    assert len(data) == plan.size  # the size promised before a byte was written
    return data


def test_same_tree_same_bytes(tmp_path):
    a = _make_tree(tmp_path / "a", reverse=False, mtime=EPOCH + 10_000, umask=0o022)
    b = _make_tree(tmp_path / "b", reverse=True, mtime=EPOCH + 99_999, umask=0o077)
    assert hashlib.sha256(_layer(a)).digest() == hashlib.sha256(_layer(b)).digest()


def test_the_layer_is_sorted_numeric_clamped_and_keeps_hard_links(tmp_path):
    root = _make_tree(tmp_path / "r", reverse=False, mtime=EPOCH + 5, umask=0o022)
    os.utime(root / "etc/hostname", (EPOCH - 100, EPOCH - 100))  # older than the epoch: kept as it is
    os.chown(root / "var/empty", 1234, 5678) if os.geteuid() == 0 else None
    with tarfile.open(fileobj=io.BytesIO(_layer(root))) as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        tool = tar.extractfile("usr/bin/tool")
        assert tool is not None and tool.read() == FILES["usr/bin/tool"]
    assert names[0] == "bin" and "usr/lib/\u00e9t\u00e9" in names and "opt/" + "long" * 40 in names
    by = {m.name: m for m in members}
    assert by["etc/hostname"].mtime == EPOCH - 100
    assert {m.mtime for n, m in by.items() if n != "etc/hostname"} == {EPOCH}
    assert all(m.uname == "" and m.gname == "" for m in members)
    if os.geteuid() == 0:
        assert (by["var/empty"].uid, by["var/empty"].gid) == (1234, 5678)
    assert by["usr/bin/tool-too"].islnk() and by["usr/bin/tool-too"].linkname == "usr/bin/tool"
    assert by["bin"].issym() and by["bin"].linkname == "usr/bin"
    # GNU tar reads it too, and agrees on the listing
    listing = subprocess.run(["tar", "-tf", "-"], input=_layer(root), capture_output=True, check=True).stdout
    assert [n.rstrip("/") for n in listing.decode().splitlines()] == names


def test_owner_override_and_sockets_left_out(tmp_path):
    root = tmp_path / "r"
    (root / "run").mkdir(parents=True)
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(root / "run/s"))
        plan = plan_tree(root, EPOCH, owner=(0, 0))
    finally:
        sock.close()
    assert plan.skipped == ["run/s"]
    with tarfile.open(fileobj=io.BytesIO(b"".join(plan.chunks()))) as tar:
        assert [(m.name, m.uid, m.gid) for m in tar.getmembers()] == [("run", 0, 0)]


@pytest.mark.skipif(os.geteuid() != 0, reason="setting security.capability needs CAP_SETFCAP")
def test_file_capabilities_are_kept(tmp_path):
    root = tmp_path / "r"
    root.mkdir()
    ping = root / "ping"
    ping.write_bytes(b"x")
    # VFS_CAP_REVISION_2 with cap_net_raw (13) permitted and effective
    cap = (0x02000001).to_bytes(4, "little") + (1 << 13).to_bytes(4, "little") + bytes(12)
    os.setxattr(ping, "security.capability", cap)
    with tarfile.open(fileobj=io.BytesIO(_layer(root))) as tar:
        headers = tar.getmember("ping").pax_headers
    assert headers["SCHILY.xattr.security.capability"].encode("utf-8", "surrogateescape") == cap


def test_a_file_that_changes_while_read_is_an_error(tmp_path):
    root = tmp_path / "r"
    root.mkdir()
    (root / "f").write_bytes(b"12345")
    plan = plan_tree(root, EPOCH)
    (root / "f").write_bytes(b"123")
    with pytest.raises(InputError, match="changed size"):
        b"".join(plan.chunks())


@pytest.mark.parametrize("suffix", [".tar", ".tar.gz", ".tar.xz"])
def test_out_files_are_reproducible(tmp_path, suffix):
    a = _make_tree(tmp_path / "a", reverse=False, mtime=EPOCH + 1, umask=0o022)
    b = _make_tree(tmp_path / "b", reverse=True, mtime=EPOCH + 2, umask=0o022)
    config = image_config(targets.lookup("amd64"), ("/bin/sh",))
    sums = []
    for root, name in ((a, "one" + suffix), (b, "two" + suffix)):
        done = deliver(plan_tree(root, EPOCH), config, EPOCH, out=tmp_path / name, progress=Progress.quiet())
        assert done.tag is None and done.out == tmp_path / name
        sums.append(hashlib.sha256((tmp_path / name).read_bytes()).hexdigest())
    assert sums[0] == sums[1]
    with tarfile.open(tmp_path / ("one" + suffix)) as tar:
        assert "etc/hostname" in tar.getnames()
    if suffix == ".tar.gz":
        with gzip.open(tmp_path / ("one" + suffix)) as gz:
            assert hashlib.sha256(gz.read()).hexdigest() == done.digest.split(":")[1]


def test_out_names_and_nothing_half_written(tmp_path):
    for bad in ("rootfs.zip", "rootfs.gz", ".tar"):
        with pytest.raises(InputError, match="must end in .tar"):
            out_compression(tmp_path / bad)
    assert out_compression(tmp_path / "x.TGZ") == "gzip"
    root = tmp_path / "r"
    root.mkdir()
    (root / "f").write_bytes(b"12345")
    plan = plan_tree(root, EPOCH)
    (root / "f").write_bytes(b"1")
    with pytest.raises(InputError):
        deliver(plan, image_config(targets.host(), None), EPOCH, out=tmp_path / "o.tar.gz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]  # no o.tar.gz, no partial file


def test_progress_lines_and_quiet(tmp_path):
    root = _make_tree(tmp_path / "r", reverse=False, mtime=EPOCH, umask=0o022)
    stream = io.StringIO()
    deliver(plan_tree(root, EPOCH), image_config(targets.host(), None), EPOCH, out=tmp_path / "o.tar",
            progress=Progress(stream))
    text = stream.getvalue()
    assert "==> writing o.tar" in text and "(100%)" in text and "layer sha256:" in text
    quiet = io.StringIO()
    deliver(plan_tree(root, EPOCH), image_config(targets.host(), None), EPOCH, out=tmp_path / "p.tar",
            progress=Progress(quiet, enabled=False))
    assert quiet.getvalue() == ""


# --- tar bombs: stopped at the limit, or at the free space where the layer goes ------------------------------

BOMB_MIB = 300


def _gzip_tar(path: Path, members: list[tuple[str, int]], trailing_zeros: int = 0) -> Path:
    """A gzip tar of files of zeros (name, size), optionally followed by zeros after the end-of-archive: a few
    hundred KiB that expand to what the sizes say."""
    with gzip.open(path, "wb", compresslevel=1) as gz:
        with tarfile.open(fileobj=gz, mode="w|") as tar:
            for name, size in members:
                info = tarfile.TarInfo(name)
                info.size = size
                tar.addfile(info, _Zeros(size))
        for _ in range(trailing_zeros >> 20):
            gz.write(bytes(1 << 20))
    return path


class _Zeros(io.RawIOBase):
    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        n = min(len(b), self.left)
        b[:n] = bytes(n)
        self.left -= n
        return n


def test_a_tar_bomb_is_stopped_at_the_limit_by_what_its_entries_declare(tmp_path):
    """Before: a small gzip expanding to gigabytes was imported whole. Now the sizes its entries declare are
    summed as they are read, and the import stops as soon as they pass the limit."""
    from toolkit.rootfs.tar import Budget, plan_tarball

    bomb = _gzip_tar(tmp_path / "bomb.tar.gz", [("bin/sh", 1 << 20), ("zeros", BOMB_MIB << 20)])
    assert bomb.stat().st_size < 2 << 20
    with pytest.raises(InputError, match=r"its entries declare more than 100\.0 MiB.*FROMSCRATCH_IMPORT_MAX=1g"):
        plan_tarball(bomb, budget=Budget(100 << 20))
    assert plan_tarball(bomb, budget=Budget(1 << 30)).size > BOMB_MIB << 20  # under a higher limit it goes


def test_a_tar_bomb_of_padding_is_stopped_by_what_it_expands_to(tmp_path):
    """Entries that declare little, then hundreds of MiB of zeros after the end of the archive."""
    from toolkit.rootfs.tar import Budget, plan_tarball

    bomb = _gzip_tar(tmp_path / "pad.tar.gz", [("bin/sh", 1024)], trailing_zeros=BOMB_MIB << 20)
    with pytest.raises(InputError, match=r"it expands to more than 100\.0 MiB"):
        plan_tarball(bomb, budget=Budget(100 << 20))


def test_a_layer_bigger_than_the_free_space_where_it_goes_is_refused(tmp_path):
    from toolkit.rootfs.tar import Budget, plan_tarball

    bomb = _gzip_tar(tmp_path / "bomb.tar.gz", [("zeros", 64 << 20)])
    with pytest.raises(InputError, match=r"more than the 32\.0 MiB free in /var/lib/engine, where the engine keeps"):
        plan_tarball(bomb, budget=Budget(8 << 30, ("/var/lib/engine", 32 << 20)))
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "big").write_bytes(bytes(40 << 20))
    with pytest.raises(InputError, match=r"the tree holds 41,9.* more than the 32\.0 MiB free"):
        plan_tree(tree, EPOCH, budget=Budget(8 << 30, ("/var/lib/engine", 32 << 20)))


def test_a_sparse_file_s_declared_size_counts(tmp_path):
    """GNU tar keeps a sparse file small in the archive; the engine would write it at its full size."""
    from toolkit.rootfs.tar import Budget, plan_tarball

    sparse = tmp_path / "sparse"
    with open(sparse, "wb") as fh:
        fh.truncate(20 << 30)
    archive = tmp_path / "sparse.tar.gz"
    subprocess.run(["tar", "-C", str(tmp_path), "-cSzf", str(archive), "sparse"], check=True)
    sparse.unlink()
    assert archive.stat().st_size < 1 << 20
    with pytest.raises(InputError, match="its entries declare more than 8.0 GiB"):
        plan_tarball(archive, budget=Budget(8 << 30))
