"""tests/debsrc.py without the network: the host's apt sources turned into deb-src lines, the choice of the upstream
tarball, safe extraction, the cache that answers without apt, and apt's failures turned into a readable error."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests import debsrc
from toolkit.debian import archive
from toolkit.errors import BuildFailed

KEY = "/usr/share/keyrings/debian-archive-keyring.gpg"
# This machine's /etc/apt/sources.list.d/debian.sources, as Debian's images ship it.
DEB822 = f"""Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: {KEY}

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: {KEY}
"""


def test_deb822_first_deb_entry_one_line_per_suite() -> None:
    assert archive.deb_src_line(DEB822) == (
        f"deb-src [signed-by={KEY}] http://deb.debian.org/debian bookworm main\n"
        f"deb-src [signed-by={KEY}] http://deb.debian.org/debian bookworm-updates main")


def test_deb822_skips_disabled_and_source_only_entries() -> None:
    text = ("Types: deb-src\nURIs: http://a.example/debian\nSuites: bookworm\nComponents: main\n\n"
            "Types: deb\nEnabled: no\nURIs: http://b.example/debian\nSuites: bookworm\nComponents: main\n\n"
            "types: deb deb-src\nuris: http://c.example/debian\nsuites: bookworm\ncomponents: main contrib\n")
    assert archive.deb_src_line(text) == "deb-src http://c.example/debian bookworm main contrib"


def test_deb822_inline_key_is_dropped_not_mangled() -> None:
    text = ("Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\n"
            "Signed-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n mQINBF...\n -----END PGP PUBLIC KEY BLOCK-----\n")
    assert archive.deb_src_line(text) == "deb-src http://deb.debian.org/debian bookworm main"


def test_one_line_format() -> None:
    text = ("# deb http://old.example/debian buster main\n"
            "deb-src http://deb.debian.org/debian bookworm main\n"
            f"deb [arch=amd64 signed-by={KEY}] http://deb.debian.org/debian bookworm main contrib  # mirror\n"
            "deb http://deb.debian.org/debian-security bookworm-security main\n")
    assert archive.deb_src_line(text) == f"deb-src [signed-by={KEY}] http://deb.debian.org/debian bookworm main contrib"
    assert archive.deb_src_line("deb http://deb.debian.org/debian bookworm main") == (
        "deb-src http://deb.debian.org/debian bookworm main")


def test_no_deb_entry() -> None:
    assert archive.deb_src_line("") is None
    assert archive.deb_src_line("# nothing\ndeb-src http://deb.debian.org/debian bookworm main\n") is None
    assert archive.deb_src_line("Types: deb-src\nURIs: http://x/debian\nSuites: bookworm\n") is None


@pytest.mark.parametrize(("names", "chosen"), [
    (["lua5.4_5.4.4-3.dsc", "lua5.4_5.4.4-3.debian.tar.xz", "lua5.4_5.4.4.orig.tar.gz"], "lua5.4_5.4.4.orig.tar.gz"),
    (["sqlite3_3.40.1.orig-www.tar.xz", "sqlite3_3.40.1.orig.tar.xz", "sqlite3_3.40.1-2.debian.tar.xz"],
     "sqlite3_3.40.1.orig.tar.xz"),
    (["libzstd_1.5.4.orig.tar.xz.asc", "libzstd_1.5.4.orig.tar.xz"], "libzstd_1.5.4.orig.tar.xz"),
    (["tzdata-native_1.0.dsc", "tzdata-native_1.0.tar.xz"], "tzdata-native_1.0.tar.xz"),
    (["x_1.0-1.dsc", "x_1.0-1.debian.tar.xz"], None),
])
def test_upstream_tarball(tmp_path: Path, names: list[str], chosen: str | None) -> None:
    for name in names:
        (tmp_path / name).touch()
    found = archive.upstream_tarball(tmp_path)
    assert (found.name if found else None) == chosen


def _tarball(path: Path, *members: tarfile.TarInfo) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info in members:
            data = b"data\n" if info.isfile() else b""
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "", mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, mode
    return info


def test_extract_keeps_the_tree_and_drops_dangerous_modes(tmp_path: Path) -> None:
    tarball = _tarball(tmp_path / "x.orig.tar.gz", _member("x-1.0", tarfile.DIRTYPE, mode=0o777),
                       _member("x-1.0/configure", mode=0o4777), _member("x-1.0/link", tarfile.SYMTYPE, "configure"))
    archive.extract(tarball, tmp_path / "tree")
    top = archive.top(tmp_path / "tree")
    assert top == tmp_path / "tree" / "x-1.0"
    assert (top / "configure").read_text() == "data\n"
    assert os.stat(top / "configure").st_mode & 0o7777 == 0o755
    assert os.readlink(top / "link") == "configure"


def test_top_is_the_tree_when_the_tarball_has_no_single_directory(tmp_path: Path) -> None:
    archive.extract(_tarball(tmp_path / "flat.tar.gz", _member("Makefile"), _member("main.c")), tmp_path / "tree")
    assert archive.top(tmp_path / "tree") == tmp_path / "tree"


@pytest.mark.parametrize("members", [
    [_member("../evil")],
    [_member("/tmp/evil")],
    [_member("x/../../evil")],
    [_member("out", tarfile.SYMTYPE, "/etc")],
    [_member("out", tarfile.SYMTYPE, "../..")],
    [_member("hard", tarfile.LNKTYPE, "../../etc/passwd")],
    [_member("dir", tarfile.SYMTYPE, "."), _member("dir/../../evil")],
    [_member("dev", tarfile.CHRTYPE)],
    [_member("fifo", tarfile.FIFOTYPE)],
], ids=["dotdot", "absolute", "inner-dotdot", "symlink-absolute", "symlink-up", "hardlink-up", "through-symlink",
        "device", "fifo"])
def test_extract_refuses_escapes(tmp_path: Path, members: list[tarfile.TarInfo]) -> None:
    tarball = _tarball(tmp_path / "bad.tar.gz", *members)
    with pytest.raises(BuildFailed, match="refusing"):
        archive.extract(tarball, tmp_path / "a" / "tree")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "bad.tar.gz"]


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FROMSCRATCH_TEST_CACHE", str(tmp_path / "cache"))
    assert debsrc.cache_dir() == tmp_path / "cache" / "debsrc"
    return debsrc.cache_dir()


def test_a_cached_tree_is_returned_without_apt(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (cache / "src" / "lua5.4" / "tree" / "lua-5.4.4").mkdir(parents=True)

    def no_apt(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"ran {args}")

    monkeypatch.setattr(subprocess, "run", no_apt)
    assert debsrc.fetch("lua5.4") == cache / "src" / "lua5.4" / "tree" / "lua-5.4.4"


def test_apt_failure_names_the_package_and_apt_last_lines(cache: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # A stand-in apt-get that fails as the mirror's 404 does: the real one would need the network.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "apt-get"
    fake.write_text("#!/bin/sh\necho 'E: Failed to fetch http://deb.example/pigz_2.6.orig.tar.xz  404  Not Found' >&2\n"
                    "exit 100\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    with pytest.raises(RuntimeError, match=r"(?s)'pigz'.*apt-get update.*exit 100.*404  Not Found"):
        debsrc.fetch("pigz")
    assert list((cache / "src").iterdir()) == []  # no half tree, no leftover temporary directory


def test_not_a_package_name() -> None:
    with pytest.raises(ValueError):
        debsrc.fetch("../etc")
