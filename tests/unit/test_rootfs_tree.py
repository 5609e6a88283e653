"""What rootfs does to a tree before tarring it, and the checks on its options, on small real trees."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import assert_clean_failure, invoke
from toolkit import targets
from toolkit.errors import BuildFailed, InputError
from toolkit.rootfs import debootstrap as rootfs
from toolkit.rootfs.mirror import check_mirror, has_suite, host_mirror, host_security, parse_release
from toolkit.rootfs.tar import plan_tree

RELEASE = """Origin: Debian
Suite: stable
Codename: bookworm
Date: Sat, 10 May 2025 09:48:28 UTC
Architectures: all amd64 arm64 armel armhf i386
SHA256:
 0123abcd 1234 main/binary-amd64/Packages.xz
 4567ef01 99 main/binary-arm64/Packages.xz
"""


def _debian_like(root: Path) -> Path:
    files = {
        "var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_Release": RELEASE,
        "var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages": "Package: x\n",
        "var/lib/apt/lists/lock": "", "var/log/dpkg.log": "log", "var/log/apt/history.log": "log",
        "var/cache/ldconfig/aux-cache": "cache", "var/cache/apt/pkgcache.bin": "bin",
        "var/cache/debconf/config.dat-old": "old", "var/lib/dpkg/status-old": "old", "var/lib/dpkg/status": "new",
        "etc/resolv.conf": "nameserver 10.0.0.1\n", "etc/hostname": "buildhost\n", "etc/machine-id": "abc\n",
        "etc/shadow": "root:*:20779:0:99999:7:::\nnobody:*::0:99999:7:::\n",
        "dev/null": "", "debootstrap/debootstrap.log": "x",
        "usr/share/doc/bash/copyright": "GPL", "usr/share/doc/bash/README": "r", "usr/share/doc/bash/NEWS.gz": "n",
        "usr/share/man/man1/ls.1.gz": "m", "usr/share/locale/de/LC_MESSAGES/x.mo": "mo", "usr/share/info/x.info": "i",
        "usr/share/lintian/overrides/bash": "l", "usr/share/zoneinfo/UTC": "tz", "usr/bin/ls": "ls",
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "usr/share/doc/libfoo").symlink_to("bash")  # a package whose docs are another's
    os.chmod(root / "etc/shadow", 0o640)
    return root


def test_container_friendly(tmp_path):
    root = _debian_like(tmp_path / "r")
    epoch = rootfs.source_date_epoch(root)
    assert epoch == 1746870508  # Sat, 10 May 2025 09:48:28 UTC
    rootfs.make_container_friendly(root, epoch)
    policy = root / "usr/sbin/policy-rc.d"
    assert subprocess.run([str(policy)]).returncode == 101
    conf = {p.name: p.read_text() for p in (root / "etc/apt/apt.conf.d").iterdir()}
    assert 'Acquire::Languages "none"' in conf["docker-no-languages"]
    assert 'Acquire::GzipIndexes "true"' in conf["docker-gzip-indexes"]
    assert "SuggestsImportant \"false\"" in conf["docker-autoremove-suggests"]
    assert "/var/cache/apt/archives/*.deb" in conf["docker-clean"]
    assert (root / "etc/dpkg/dpkg.cfg.d/docker-apt-speedup").read_text() == "force-unsafe-io\n"
    assert (root / "etc/machine-id").read_text() == ""
    assert [p.name for p in (root / "var/lib/apt/lists").iterdir()] == ["lock"]
    for gone in ("var/log/dpkg.log", "var/log/apt/history.log", "var/cache/ldconfig/aux-cache",
                 "var/cache/apt/pkgcache.bin", "var/cache/debconf/config.dat-old", "var/lib/dpkg/status-old",
                 "etc/resolv.conf", "etc/hostname", "dev/null", "debootstrap"):
        assert not (root / gone).exists(), gone
    assert (root / "var/lib/dpkg/status").exists()
    # the password-change day is the epoch's, not the build day's
    assert (root / "etc/shadow").read_text() == f"root:*:{epoch // 86400}:0:99999:7:::\nnobody:*::0:99999:7:::\n"
    assert (root / "etc/shadow").stat().st_mode & 0o777 == 0o640


def test_slim_rules_and_deletions(tmp_path):
    root = _debian_like(tmp_path / "r")
    removed = rootfs.slim(root)
    rules = (root / "etc/dpkg/dpkg.cfg.d/docker-slim").read_text().splitlines()
    assert "path-exclude /usr/share/doc/*" in rules and "path-include /usr/share/doc/*/copyright" in rules
    assert "path-exclude /usr/share/man/*" in rules and "path-exclude /usr/share/locale/*" in rules
    left = sorted(str(p.relative_to(root)) for p in (root / "usr/share").rglob("*"))
    assert left == ["usr/share/doc", "usr/share/doc/bash", "usr/share/doc/bash/copyright", "usr/share/info",
                    "usr/share/lintian", "usr/share/locale", "usr/share/man", "usr/share/zoneinfo",
                    "usr/share/zoneinfo/UTC"]
    assert removed == 7  # README, NEWS.gz, the libfoo link, ls.1.gz, x.mo, x.info, the lintian override


def test_epoch_from_environment_wins_and_must_be_a_number(tmp_path, monkeypatch):
    root = _debian_like(tmp_path / "r")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "12345")
    assert rootfs.source_date_epoch(root) == 12345
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(InputError, match="SOURCE_DATE_EPOCH"):
        rootfs.source_date_epoch(root)
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    assert rootfs.source_date_epoch(tmp_path) is None


def _elf_header(bits: int, machine: int, flags: int = 0) -> bytes:
    head = bytearray(64)
    head[:4] = b"\x7fELF"
    head[4], head[5] = (1 if bits == 32 else 2), 1
    head[18:20] = machine.to_bytes(2, "little")
    head[36:40] = flags.to_bytes(4, "little")
    return bytes(head)


def test_probe_target_reads_the_trees_own_programs(binaries):
    assert rootfs.probe_target({"usr/bin/env": binaries["static"].read_bytes()[:64]}) == \
        (targets.lookup("amd64"), "usr/bin/env")
    assert rootfs.probe_target({"bin/busybox": _elf_header(64, 183)})[0].name == "arm64"
    assert rootfs.probe_target({"bin/busybox": _elf_header(32, 40, 0x05000400)})[0].name == "arm-v7"  # hard float
    assert rootfs.probe_target({"bin/busybox": _elf_header(32, 40, 0x05000200)})[0].name == "arm-v5"  # soft float
    assert rootfs.probe_target({"usr/bin/env": b"#!/bin/sh\n"}) is None


def test_choose_target_refuses_a_wrong_arch(tmp_path, binaries):
    root = tmp_path / "r"
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/env").write_bytes(binaries["static"].read_bytes())
    plan = plan_tree(root, 0)
    assert rootfs.choose_target(plan, None).name == "amd64"
    with pytest.raises(InputError, match=r"holds linux/amd64 programs \(usr/bin/env\), not linux/arm64"):
        rootfs.choose_target(plan, targets.lookup("arm64"))


def test_default_cmd(tmp_path):
    root = tmp_path / "r"
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/sh").write_text("")
    (root / "bin").symlink_to("usr/bin")
    assert rootfs.default_cmd(plan_tree(root, 0).checker) == ("/bin/sh",)
    (root / "usr/bin/bash").write_text("")
    assert rootfs.default_cmd(plan_tree(root, 0).checker) == ("/bin/bash",)
    (root / "usr/bin/bash").unlink()
    (root / "usr/bin/sh").unlink()
    assert rootfs.default_cmd(plan_tree(root, 0).checker) is None


def test_request_checks_its_options():
    req = rootfs.Request.make("bookworm", None, "minbase", "aarch64", " curl, ca-certificates ", True)
    assert req.target.name == "arm64" and req.include == ("curl", "ca-certificates") and req.foreign
    assert not rootfs.Request.make("bookworm", None, "minbase", None).foreign
    assert not rootfs.Request.make("bookworm", None, "minbase", "i386").foreign  # amd64 runs i386 itself
    for bad, words in ((dict(variant="tiny"), "--variant"), (dict(include="curl;rm"), "--include"),
                       (dict(suite="Bookworm!"), "--suite"), (dict(mirror="ftp.debian.org"), "--mirror"),
                       (dict(mirror='http://x/deb"ian'), "--mirror"),
                       (dict(arch="sparc"), "unknown architecture")):
        args = dict(suite="bookworm", mirror=None, variant="minbase", arch=None) | bad
        with pytest.raises(InputError, match=words):
            rootfs.Request.make(**args)


def test_mirror_facts(tmp_path):
    rel = parse_release(RELEASE, "bookworm")
    assert rel.date == 1746870508 and "arm64" in rel.architectures
    assert rel.sha256["main/binary-arm64/Packages.xz"] == ("4567ef01", 99)
    (tmp_path / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm\n\n"
        "Types: deb\nURIs: http://security.example/debian-security\n")
    assert host_mirror((str(tmp_path),)) == "http://mirror.example/debian"
    assert host_mirror((str(tmp_path / "none"),)) == "http://deb.debian.org/debian"
    assert check_mirror("file:///srv/mirror/") == "file:///srv/mirror"


def test_the_security_archive_is_the_hosts(tmp_path):
    (tmp_path / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\n\n"
        "Types: deb\nURIs: http://security.example/debian-security/\nSuites: bookworm-security\n")
    (tmp_path / "bad.list").write_text('deb http://bad.example/debian-security";x bookworm-security main\n')
    assert host_security((str(tmp_path),)) == "http://security.example/debian-security"
    (tmp_path / "debian.sources").unlink()
    # a URL check_mirror refuses is never taken from the host either, for the mirror or the security archive
    assert host_security((str(tmp_path),)) == "http://deb.debian.org/debian-security"
    (tmp_path / "bad.list").write_text("deb [arch=amd64] ftp.example/debian bookworm main\n")
    assert host_mirror((str(tmp_path),)) == "http://deb.debian.org/debian"
    assert rootfs.Request.make("bookworm", "file:///srv/debian", "minbase", None).security == host_security()


def _archive(root: Path, *suites: str) -> str:
    """A file:// archive that carries suites (an InRelease each: all that has_suite asks)."""
    for suite in suites:
        (root / "dists" / suite).mkdir(parents=True)
        (root / "dists" / suite / "InRelease").write_text("signed\n")
    return root.as_uri()


def test_apt_sources_name_the_updates_and_security_suites_the_archives_carry(tmp_path):
    mirror = _archive(tmp_path / "debian", "bookworm", "bookworm-updates", "sid", "testing", "testing-updates")
    security = _archive(tmp_path / "debian-security", "bookworm-security", "testing-security")
    bookworm = rootfs.apt_sources(rootfs.Request("bookworm", mirror, "minbase", targets.host(), security=security))
    # what Docker's debian:bookworm has in /etc/apt/sources.list.d/debian.sources, at these archives
    assert bookworm.text == (f"Types: deb\nURIs: {mirror}\nSuites: bookworm bookworm-updates\nComponents: main\n"
                             "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
                             f"Types: deb\nURIs: {security}\nSuites: bookworm-security\nComponents: main\n"
                             "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")
    assert str(bookworm) == f"bookworm bookworm-updates at {mirror}, bookworm-security at {security}"
    testing = rootfs.apt_sources(rootfs.Request("testing", mirror, "minbase", targets.host(), security=security))
    assert (testing.suites, testing.security_suites) == (("testing", "testing-updates"), ("testing-security",))
    sid = rootfs.apt_sources(rootfs.Request("sid", mirror, "minbase", targets.host(), security=security))
    assert (sid.suites, sid.security_suites, sid.added) == (("sid",), (), ())
    assert "bookworm-security" not in sid.text

    tree = tmp_path / "root"
    (tree / "etc/apt").mkdir(parents=True)
    debootstrap_line = f"deb {mirror} bookworm main\n"
    (tree / "etc/apt/sources.list").write_text(debootstrap_line)
    assert not rootfs.write_apt_sources(tree, bookworm)  # no Debian keyring: an Ubuntu tree keeps its line
    keyring = tree / "usr/share/keyrings/debian-archive-keyring.gpg"
    keyring.parent.mkdir(parents=True)
    keyring.write_bytes(b"keys")
    assert not rootfs.write_apt_sources(tree, sid)  # nothing to add: sid keeps debootstrap's line
    assert (tree / "etc/apt/sources.list").read_text() == debootstrap_line
    old = os.umask(0o077)  # the file's mode is its own, not the umask's
    try:
        assert rootfs.write_apt_sources(tree, bookworm)
    finally:
        os.umask(old)
    written = tree / "etc/apt/sources.list.d/debian.sources"
    assert written.read_text() == bookworm.text and written.stat().st_mode & 0o777 == 0o644
    assert not (tree / "etc/apt/sources.list").exists()  # one entry per suite, not two


def test_has_suite_tells_missing_from_unreachable(tmp_path):
    import http.server
    import threading

    class Archive(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self) -> None:
            self.send_response({"/debian/dists/bookworm-updates/InRelease": 200,
                                "/debian/dists/broken-updates/InRelease": 500}.get(self.path, 404))
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Archive)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/debian"
        assert has_suite(url, "bookworm-updates") and not has_suite(url, "sid-updates")
        with pytest.raises(BuildFailed, match="answered 500"):
            has_suite(url, "broken-updates")
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(BuildFailed, match="cannot reach http://127.0.0.1:9/debian-security/dists/x-security"):
        has_suite("http://127.0.0.1:9/debian-security", "x-security")


@pytest.mark.parametrize(("args", "words"), [
    (("rootfs", "--suite", "bookworm"), "nothing to do"),
    (("rootfs", "--out", "x.zip"), "must end in .tar"),
    (("rootfs", "--tag", "Bad Tag"), "not a valid image name"),
    (("rootfs", "--variant", "tiny", "--out", "x.tar"), "--variant"),
    (("rootfs", "--busybox", "--slim", "--out", "x.tar"), "not --busybox"),
    (("rootfs", "--arch", "sparc", "--out", "x.tar"), "unknown architecture"),
    (("import-rootfs", "x", "--tag", "x", "--arch", "sparc"), "unknown architecture"),
])
def test_cli_refuses_bad_options_in_one_line(tmp_path, args, words):
    result = invoke(*args, cwd=tmp_path)
    assert_clean_failure(result, 2)
    assert words in result.err and len(result.err.strip().splitlines()) == 1, result.err
    assert list(tmp_path.iterdir()) == []


def test_emulator_reads_the_binfmt_handler(tmp_path):
    arm64 = targets.lookup("arm64")
    (tmp_path / "qemu-aarch64").write_text("enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\n"
                                           "flags: PF\noffset 0\nmagic 7f454c46\n")
    assert rootfs.emulator(arm64, tmp_path) == ("/usr/libexec/qemu-binfmt/aarch64-binfmt-P", True)
    (tmp_path / "qemu-aarch64").write_text("disabled\ninterpreter /x\nflags: P\n")
    with pytest.raises(Exception, match="qemu-aarch64 is disabled"):
        rootfs.emulator(arm64, tmp_path)
    with pytest.raises(Exception, match="qemu-riscv64 is not registered.*fromscratch binfmt --arch riscv64"):
        rootfs.emulator(targets.lookup("riscv64"), tmp_path)


def test_without_the_f_flag_the_emulator_is_copied_in_for_the_second_stage_only(tmp_path, binaries):
    root = tmp_path / "root"
    (root / "usr").mkdir(parents=True)
    interpreter = str(binaries["static"])  # stands in for qemu-aarch64-static: any file the host has
    inside = root / interpreter.lstrip("/")
    with rootfs.emulator_inside(root, interpreter, fix_binary=False):
        assert inside.read_bytes() == binaries["static"].read_bytes()
    assert not inside.exists()
    assert sorted(p.name for p in root.iterdir()) == ["usr"]  # the directories made for it are gone too
    with rootfs.emulator_inside(root, interpreter, fix_binary=True):
        assert not inside.exists()  # with F the kernel already holds the emulator open


def test_cli_unknown_suite(tmp_path):
    result = invoke("rootfs", "--suite", "nosuchsuite", "--out", "x.tar", cwd=tmp_path)
    assert_clean_failure(result, 2)
    assert "no suite 'nosuchsuite'" in result.err


@pytest.mark.skipif(os.geteuid() != 0, reason="debootstrap runs as root only")
def test_cli_debootstrap_failure_shows_its_log_and_leaves_nothing(tmp_path):
    before = set(Path("/var/tmp").glob("fromscratch-rootfs-*"))
    result = invoke("rootfs", "--mirror", "http://127.0.0.1:9/debian", "--out", "x.tar", "--quiet", cwd=tmp_path)
    assert_clean_failure(result, 1)
    assert "error: debootstrap bookworm failed" in result.err and "Release" in result.err
    assert list(tmp_path.iterdir()) == [] and set(Path("/var/tmp").glob("fromscratch-rootfs-*")) == before
