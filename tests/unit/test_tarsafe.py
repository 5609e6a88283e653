"""import-rootfs's safety rules on real tarballs and directories: every escape is refused, naming its entry."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from toolkit.rootfs.tar import plan_tarball, plan_tree
from toolkit.rootfs.tarsafe import Checker, UnsafeEntry


def _tarball(path: Path, *members: tuple[str, str, str], mode: str = "w") -> Path:
    """members: (name, kind, link or data) with kind file, dir, symlink, hardlink, chardev, blockdev, fifo."""
    types = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
             "hardlink": tarfile.LNKTYPE, "chardev": tarfile.CHRTYPE, "blockdev": tarfile.BLKTYPE,
             "fifo": tarfile.FIFOTYPE}
    with tarfile.open(path, mode) as tar:
        for name, kind, extra in members:
            info = tarfile.TarInfo(name)
            info.type = types[kind]
            info.mode = 0o755 if kind == "dir" else 0o644
            if kind in ("symlink", "hardlink"):
                info.linkname = extra
            if kind in ("chardev", "blockdev"):
                info.devmajor, info.devminor = 8, 0
            if kind == "file":
                data = extra.encode()
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return path


GOOD = [("etc", "dir", ""), ("etc/hostname", "file", "box\n"), ("usr", "dir", ""), ("usr/bin", "dir", ""),
        ("usr/bin/tool", "file", "x"), ("bin", "symlink", "usr/bin"), ("usr/bin/alias", "hardlink", "usr/bin/tool"),
        ("etc/localtime", "symlink", "/usr/share/zoneinfo/UTC"), ("etc/os-release", "symlink", "../usr/os-release")]


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:xz", "w:bz2"])
def test_a_sound_tarball_passes_in_every_compression(tmp_path, mode):
    path = _tarball(tmp_path / "ok.tar", *GOOD, mode=mode)
    plan = plan_tarball(path)
    data = b"".join(plan.chunks())
    assert len(data) == plan.size and plan.entries == len(GOOD)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:  # the layer is the uncompressed archive itself
        assert tar.getnames() == [name for name, _, _ in GOOD]


@pytest.mark.parametrize(("members", "entry", "words"), [
    ([("../etc/passwd", "file", "x")], "../etc/passwd", "climbs out of the root"),
    ([("etc/../../x", "file", "x")], "etc/../../x", "climbs out of the root"),
    ([("/etc/passwd", "file", "x")], "/etc/passwd", "absolute path"),
    ([("etc", "symlink", "../../../etc")], "etc", "points outside the root"),
    ([("a", "dir", ""), ("a/up", "symlink", ".."), ("a/out", "symlink", "up/../..")], "a/out",
     "points outside the root"),  # only a walk that follows a/up sees this one leave
    ([("x", "file", "1"), ("y", "hardlink", "../x")], "y", "climbs out of the root"),
    ([("y", "hardlink", "/etc/shadow")], "y", "absolute path"),
    ([("y", "hardlink", "etc/shadow")], "y", "not an earlier file"),
    ([("etc", "symlink", "/tmp"), ("etc/cron.d", "file", "x")], "etc/cron.d", "through the symbolic link 'etc'"),
    ([("dev", "dir", ""), ("dev/sda", "blockdev", "")], "dev/sda", "block device (8, 0)"),
    ([("dev", "dir", ""), ("dev/mem", "chardev", "")], "dev/mem", "character device"),
])
def test_escaping_entries_are_refused_by_name(tmp_path, members, entry, words):
    path = _tarball(tmp_path / "bad.tar.gz", *members, mode="w:gz")
    with pytest.raises(UnsafeEntry) as caught:
        plan_tarball(path)
    message = str(caught.value)
    assert f"entry {entry!r}" in message and words in message and str(path) in message


def test_devices_pass_when_asked(tmp_path):
    path = _tarball(tmp_path / "dev.tar", ("dev", "dir", ""), ("dev/null", "chardev", ""), ("dev/p", "fifo", ""))
    assert plan_tarball(path, allow_devices=True).entries == 3


def test_absolute_symlinks_are_the_images_own_root(tmp_path):
    # /usr/share/zoneinfo/UTC and even /../x mean the image's root, as the container sees them
    path = _tarball(tmp_path / "abs.tar", ("a", "symlink", "/usr/x"), ("b", "symlink", "/../../x"),
                    ("c", "symlink", "a/../../y"))  # c -> /usr/x/../../y = /y: anchored by a's absolute target
    assert plan_tarball(path).entries == 3


def test_not_a_tar_is_one_clear_error(tmp_path):
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"\x1f\x8b" + os.urandom(200))
    with pytest.raises(Exception) as caught:
        plan_tarball(junk)
    assert "not a readable tar archive" in str(caught.value)
    empty = _tarball(tmp_path / "empty.tar")
    with pytest.raises(Exception, match="empty tar archive"):
        plan_tarball(empty)


def test_a_directory_with_an_escaping_symlink_is_refused(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/ok").symlink_to("../etc")
    (root / "etc/passwd").symlink_to("../../../../etc/passwd")
    with pytest.raises(UnsafeEntry, match="entry 'etc/passwd' is a symbolic link to '../../../../etc/passwd'"):
        plan_tree(root, epoch=0)


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod of a device node needs root")
def test_a_directory_with_a_device_node_is_refused_unless_asked(tmp_path):
    root = tmp_path / "root"
    (root / "dev").mkdir(parents=True)
    os.mknod(root / "dev/null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    with pytest.raises(UnsafeEntry, match=r"entry 'dev/null' is a character device \(1, 3\)"):
        plan_tree(root, epoch=0)
    plan = plan_tree(root, epoch=0, allow_devices=True)
    with tarfile.open(fileobj=io.BytesIO(b"".join(plan.chunks()))) as tar:
        node = tar.getmember("dev/null")
    assert node.ischr() and (node.devmajor, node.devminor) == (1, 3)


_names = st.lists(st.sampled_from(["a", "b", "..", ".", "c"]), min_size=1, max_size=6).map("/".join)


@given(_names)
def test_a_name_is_refused_exactly_when_it_climbs_out(name):
    depth, escapes = 0, False
    for part in name.split("/"):
        if part == "..":
            depth -= 1
            escapes = escapes or depth < 0
        elif part != ".":
            depth += 1
    checker = Checker("t")
    if escapes:
        with pytest.raises(UnsafeEntry):
            checker.add(name, "file")
    else:
        checker.add(name, "file")


def test_resolve_follows_links_inside_the_tree():
    checker = Checker("t")
    for name, kind, link in [("usr", "dir", ""), ("usr/bin", "dir", ""), ("usr/bin/bash", "file", ""),
                             ("bin", "symlink", "usr/bin"), ("loop", "symlink", "loop")]:
        checker.add(name, kind, link)
    assert checker.resolve("/bin/bash") == "usr/bin/bash"
    assert checker.resolve("/loop/x") is None
