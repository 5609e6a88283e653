"""Base images on a real engine: import-rootfs's refusals and arch detection, BusyBox (native and arm64 under
QEMU), and, marked slow, debootstrapped Debian: slim, reproducible across two runs, and a foreign architecture;
its apt sources with the suite's updates and security updates, which the build images on it install; and how
scripts/dev tells a base image made by an older recipe."""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.conftest import REPO, assert_clean_failure, invoke
from tests.image_helpers import member_tar

pytestmark = pytest.mark.engine

RELEASE_EPOCH_MAX = 2**31 - 1


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _exists(docker_client, tag: str) -> bool:
    from toolkit.engine import client as engine

    return engine.image_exists(docker_client, tag)


def _run(docker_client, tag: str, *cmd: str, platform: str | None = None) -> str:
    kwargs = {"platform": platform} if platform else {}
    return docker_client.containers.run(tag, list(cmd) or None, remove=True, **kwargs).decode()


def test_import_rootfs_refuses_escapes_and_names_the_entry(tmp_path, docker_client, image_tag):
    tag = image_tag()
    cases = {
        "dotdot.tar.gz": ([("../evil", "file", "x")], "'../evil'"),
        "abs.tar.gz": ([("/etc/evil", "file", "x")], "'/etc/evil'"),
        "link.tar.gz": ([("etc", "dir", ""), ("etc/passwd", "symlink", "../../../etc/passwd")], "'etc/passwd'"),
        "dev.tar.gz": ([("dev", "dir", ""), ("dev/kmem", "chardev", "")], "'dev/kmem'"),
    }
    for name, (members, entry) in cases.items():
        result = invoke("import-rootfs", str(member_tar(tmp_path / name, members)), "--tag", tag)
        assert_clean_failure(result, 2)
        assert entry in result.err and name in result.err, result.err
        assert not _exists(docker_client, tag)
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc/shadow").symlink_to("../../../../etc/shadow")
    result = invoke("import-rootfs", str(tree), "--tag", tag, "--quiet")
    assert_clean_failure(result, 2)
    assert "entry 'etc/shadow'" in result.err and "outside the root" in result.err
    assert not _exists(docker_client, tag)
    # a device node passes when asked for
    allowed = invoke("import-rootfs", str(tmp_path / "dev.tar.gz"), "--tag", tag, "--allow-devices", "--quiet")
    assert allowed.code == 0, allowed
    assert _exists(docker_client, tag)


def test_import_rootfs_directory_and_tarball_take_the_trees_architecture(tmp_path, docker_client, image_tag,
                                                                         binaries):
    tree = tmp_path / "tree"
    (tree / "usr/bin").mkdir(parents=True)
    shutil.copy(binaries["static"], tree / "usr/bin/env")
    os.link(tree / "usr/bin/env", tree / "usr/bin/sh")
    (tree / "bin").symlink_to("usr/bin")
    for d, dirs, files in os.walk(tree):
        for n in dirs + files:
            os.utime(Path(d) / n, (2_000_000_000, 2_000_000_000), follow_symlinks=False)
    tag = image_tag()
    made = invoke("import-rootfs", str(tree), "--tag", tag, env={"SOURCE_DATE_EPOCH": "1600000000"})
    assert made.code == 0, made
    assert "==> checking" in made.err and "layer: sha256:" in made.out
    attrs = docker_client.images.get(tag).attrs
    assert attrs["Architecture"] == "amd64" and attrs["Config"]["Cmd"] == ["/bin/sh"]
    assert attrs["Created"].startswith("2020-09-13T12:26:40")  # SOURCE_DATE_EPOCH, also the mtimes' clamp
    assert _run(docker_client, tag) == "hi\n"
    # the same tree as a tarball; --arch that contradicts its programs is refused before the engine sees it
    tarball = tmp_path / "tree.tar.xz"
    with tarfile.open(tarball, "w:xz") as tar:
        tar.add(tree, arcname=".")
    wrong = invoke("import-rootfs", str(tarball), "--tag", tag, "--arch", "arm64")
    assert_clean_failure(wrong, 2)
    assert "holds linux/amd64 programs" in wrong.err and "--arch amd64" in wrong.err
    tag2 = image_tag()
    assert invoke("import-rootfs", str(tarball), "--tag", tag2, "--quiet").code == 0
    assert docker_client.images.get(tag2).attrs["Architecture"] == "amd64"
    assert _run(docker_client, tag2, "/usr/bin/env") == "hi\n"


def test_import_rootfs_stops_a_tar_bomb_at_the_limit(tmp_path, docker_client, image_tag, binaries):
    """Before: a small gzip that expands to gigabytes was imported whole (the engine's disk fell by 8 GB for a
    47 MB file). Now the import stops at FROMSCRATCH_IMPORT_MAX (default 8g; here 100m) or the free space where
    the engine keeps images, whichever is smaller, before a byte reaches the engine."""
    from tests.unit.test_rootfs_tar import _gzip_tar

    bomb = _gzip_tar(tmp_path / "bomb.tar.gz", [("usr/bin/env", 0), ("zeros", 300 << 20)])
    tag = image_tag()
    result = invoke("import-rootfs", str(bomb), "--tag", tag, "--arch", "amd64", "--quiet",
                    env={"FROMSCRATCH_IMPORT_MAX": "100m"})
    assert_clean_failure(result, 2)
    assert "declare more than 100.0 MiB" in result.err and "FROMSCRATCH_IMPORT_MAX=" in result.err, result.err
    assert not _exists(docker_client, tag)
    bad = invoke("import-rootfs", str(bomb), "--tag", tag, env={"FROMSCRATCH_IMPORT_MAX": "lots"})
    assert_clean_failure(bad, 2)
    assert "FROMSCRATCH_IMPORT_MAX='lots'" in bad.err


def test_busybox_is_static_reproducible_and_runs(tmp_path, docker_client, image_tag):
    tag = image_tag()
    first = invoke("rootfs", "--busybox", "--tag", tag, "--out", str(tmp_path / "one.tar"), timeout=300)
    assert first.code == 0, first
    assert "verified: ELF 64-bit" in first.err and "applets" in first.err
    second = invoke("rootfs", "--busybox", "--out", str(tmp_path / "two.tar"), "--quiet", timeout=300)
    assert second.code == 0 and "==>" not in second.err, second
    assert _sha(tmp_path / "one.tar") == _sha(tmp_path / "two.tar")
    attrs = docker_client.images.get(tag).attrs
    assert attrs["Config"]["Cmd"] == ["sh"] and attrs["Architecture"] == "amd64"
    assert _run(docker_client, tag, "sh", "-c", "echo $((6 * 7)); readlink -f /bin/ls") == "42\n/bin/ls\n"
    with tarfile.open(tmp_path / "one.tar") as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["bin/sh"].islnk() or members["bin/busybox"].islnk()  # one inode, a name per applet
    links = [m for m in members.values() if m.islnk()]
    assert len(links) > 200 and all((m.uid, m.gid) == (0, 0) for m in members.values())
    assert members["tmp"].mode == 0o1777


def test_busybox_arm64_has_its_architecture_and_runs_under_qemu(docker_client, image_tag):
    tag = image_tag()
    made = invoke("rootfs", "--busybox", "--arch", "arm64", "--tag", tag, "--quiet", timeout=300)
    assert made.code == 0, made
    attrs = docker_client.images.get(tag).attrs
    assert (attrs["Architecture"], attrs.get("Variant")) == ("arm64", "v8")
    assert _run(docker_client, tag, "uname", "-m", platform="linux/arm64") == "aarch64\n"


# ---------------------------------------------------------------------------------------------- debootstrap


@pytest.fixture(scope="module")
def debian_slim(docker_client, tmp_path_factory):
    """One debootstrap for the module: bookworm, --slim, --include netbase, loaded and written as .tar.gz."""
    import uuid

    tag = f"fromscratch-test-slim-{uuid.uuid4().hex[:10]}:latest"
    out = tmp_path_factory.mktemp("slim") / "one.tar.gz"
    made = invoke("rootfs", "--suite", "bookworm", "--slim", "--include", "netbase", "--tag", tag, "--out",
                  str(out), timeout=1800)
    assert made.code == 0, made
    yield tag, out, made
    try:
        docker_client.images.remove(tag, force=True)
    except Exception:
        pass


@pytest.mark.slow
def test_debian_slim_is_container_friendly(docker_client, debian_slim):
    tag, out, made = debian_slim
    assert "==> debootstrap bookworm (amd64, minbase)" in made.err and "configuring" in made.err
    attrs = docker_client.images.get(tag).attrs
    assert attrs["Architecture"] == "amd64" and attrs["Config"]["Cmd"] == ["/bin/bash"]
    script = ("/usr/sbin/policy-rc.d; echo policy=$?; wc -c < /etc/machine-id; ls /var/lib/apt/lists | wc -l;"
              "ls /etc/apt/apt.conf.d; cat /etc/dpkg/dpkg.cfg.d/docker-slim /etc/dpkg/dpkg.cfg.d/docker-apt-speedup;"
              "find /usr/share/doc -type f ! -name copyright | wc -l; ls /usr/share/doc/bash;"
              "find /usr/share/man /usr/share/locale -type f | wc -l; dpkg -s netbase | grep Status")
    lines = _run(docker_client, tag, "sh", "-c", script).splitlines()
    assert lines[0] == "policy=101" and lines[1] == "0" and lines[2] in ("0", "1")  # lists/ keeps only its lock
    for conf in ("docker-clean", "docker-no-languages", "docker-gzip-indexes", "docker-autoremove-suggests"):
        assert conf in lines
    assert "path-exclude /usr/share/doc/*" in lines and "path-include /usr/share/doc/*/copyright" in lines
    assert "force-unsafe-io" in lines
    assert lines[-4:] == ["0", "copyright", "0", "Status: install ok installed"]


def _sources(mirror: str | None = None) -> str:
    """debian.sources as rootfs writes it for bookworm from the host's mirror (or mirror)."""
    from toolkit.rootfs import debootstrap as rootfs
    from toolkit.rootfs.mirror import host_mirror, host_security

    return rootfs.AptSources(mirror or host_mirror(), ("bookworm", "bookworm-updates"), host_security(),
                             ("bookworm-security",)).text


@pytest.mark.slow
def test_debian_apt_sources_name_the_updates_and_security_suites(docker_client, debian_slim):
    from toolkit.rootfs import debootstrap as rootfs

    tag, _, made = debian_slim
    assert "apt sources: bookworm bookworm-updates at " in made.err and ", bookworm-security at " in made.err
    assert docker_client.images.get(tag).attrs["Config"]["Labels"] == {rootfs.RECIPE_LABEL: rootfs.RECIPE}
    script = ("cat /etc/apt/sources.list.d/debian.sources; ls /etc/apt/sources.list 2>/dev/null; echo ---; "
              "stat -c %a /etc/apt/sources.list.d/debian.sources; apt-get update --print-uris")
    sources, rest = _run(docker_client, tag, "sh", "-c", script).split("---\n")
    assert sources == _sources()  # and no sources.list beside it
    mode, *uris = rest.splitlines()
    assert mode == "644"
    # apt reads all three suites from it (their InRelease is what `apt-get update` would fetch first)
    fetched = {u.split()[0].strip("'").rsplit("/dists/", 1)[1] for u in uris if "InRelease" in u}
    assert fetched == {"bookworm/InRelease", "bookworm-updates/InRelease", "bookworm-security/InRelease"}


@pytest.mark.slow
def test_debian_two_runs_give_the_same_tarball(debian_slim, tmp_path):
    tag, first, _ = debian_slim
    second = tmp_path / "two.tar.gz"
    again = invoke("rootfs", "--suite", "bookworm", "--slim", "--include", "netbase", "--out", str(second),
                   "--quiet", timeout=1800)
    assert again.code == 0, again
    assert _sha(first) == _sha(second)
    with tarfile.open(first) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert all(m.uname == "" and m.gname == "" for m in members)
    epoch = max(m.mtime for m in members)
    assert epoch < RELEASE_EPOCH_MAX and sum(m.mtime == epoch for m in members) > 100  # clamped to the Release date
    assert "etc/machine-id" in names and not any(n.startswith("var/lib/apt/lists/") and n.endswith("Packages")
                                                 for n in names)


@pytest.mark.slow
def test_debian_arm64_is_debootstrapped_under_qemu(docker_client, image_tag):
    tag = image_tag("fromscratch-test-arm64")
    made = invoke("rootfs", "--suite", "bookworm", "--arch", "arm64", "--tag", tag, "--quiet", timeout=3600)
    assert made.code == 0, made
    assert "==>" not in made.err
    attrs = docker_client.images.get(tag).attrs
    assert (attrs["Architecture"], attrs.get("Variant")) == ("arm64", "v8")
    out = _run(docker_client, tag, "sh", "-c", "uname -m; dpkg --print-architecture; echo ---; "
               "cat /etc/apt/sources.list.d/debian.sources", platform="linux/arm64")
    assert out == "aarch64\narm64\n---\n" + _sources()


def test_a_failure_mid_stream_leaves_no_image_and_no_file(tmp_path, docker_client, image_tag):
    from toolkit import targets
    from toolkit.errors import InputError
    from toolkit.rootfs import debootstrap as rootfs
    from toolkit.rootfs.load import deliver
    from toolkit.rootfs.tar import plan_tree

    root = tmp_path / "r"
    root.mkdir()
    (root / "big").write_bytes(os.urandom(3 << 20))
    plan = plan_tree(root, 0)
    good = plan.chunks

    def failing():
        for i, chunk in enumerate(good()):
            if i == 2:
                raise InputError("the tree changed under us")
            yield chunk

    plan.chunks = failing
    tag = image_tag()
    with pytest.raises(InputError, match="changed under us"):
        deliver(plan, rootfs.image_config(targets.host(), None), 0, client=docker_client, tag=tag,
                out=tmp_path / "o.tar.gz")
    assert not _exists(docker_client, tag)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


@pytest.mark.slow
def test_an_interrupted_debootstrap_leaves_nothing_and_nothing_mounted(sandbox):
    """Ctrl-C while debootstrap installs (its /proc is mounted in the tree then): the process group stops, its
    own cleanup unmounts, and the scratch tree goes; nothing is mounted under TMPDIR afterwards."""
    import signal

    run = sandbox.start("rootfs", "--out", "bookworm.tar")
    run.wait_for("debootstrap to install packages", lambda: "    installing" in run.err, timeout=900)
    run.interrupt(signal.SIGINT)
    result = run.finish(timeout=120)
    assert_clean_failure(result, 130)
    assert "interrupted" in result.err
    mounts = Path("/proc/self/mounts").read_text()
    assert str(sandbox.tmp) not in mounts
    sandbox.assert_clean()
    assert list(sandbox.work.iterdir()) == []


def test_scripts_base_image_tells_a_base_made_by_an_older_recipe(tmp_path, docker_client, image_tag):
    """scripts/dev makes the build container's base again when `invoke rootfs` made it by an older recipe, and
    leaves an image something else made alone: scripts/base-image tells which, on small images made as rootfs
    makes them (the config's label and history)."""
    from toolkit import targets
    from toolkit.rootfs import debootstrap as rootfs
    from toolkit.rootfs.load import deliver
    from toolkit.rootfs.tar import plan_tree

    root = tmp_path / "r"
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_text("ID=debian\n")
    made_by_rootfs = "fromscratch rootfs --suite bookworm"
    cases = {
        "current": ({rootfs.RECIPE_LABEL: rootfs.RECIPE}, made_by_rootfs),
        "stale": ({}, made_by_rootfs),  # before the label: what this machine's old base is
        "older": ({rootfs.RECIPE_LABEL: str(int(rootfs.RECIPE) - 1)}, made_by_rootfs),
        "other": ({}, "fromscratch import-rootfs r"),
    }
    tags = {}
    for name, (labels, created_by) in cases.items():
        tags[name] = image_tag()
        deliver(plan_tree(root, 0), rootfs.image_config(targets.host(), None, labels), 0, client=docker_client,
                tag=tags[name], created_by=created_by)
    tags["missing"] = image_tag()
    want = f"{rootfs.RECIPE_LABEL}={rootfs.RECIPE}"
    said = {name: subprocess.run([str(REPO / "scripts/base-image"), tag, want], capture_output=True, text=True,
                                 check=True).stdout.strip() for name, tag in tags.items()}
    assert said == {"current": "current", "stale": "stale", "older": "stale", "other": "other", "missing": "missing"}


def test_a_build_image_on_the_base_installs_the_security_updates(builder_base, docker_client):
    """zlib1g-dev in the build image of a --package zlib1g-dev project (the one test_projects' pngcheck builds for
    the engine's own architecture) is the newest of bookworm, bookworm-updates and bookworm-security:
    1:1.2.13.dfsg-1+deb12u1 from bookworm-security, not bookworm's 1:1.2.13.dfsg-1."""
    from toolkit import targets
    from toolkit.compile import buildimage
    from toolkit.errors import InputError
    from toolkit.rootfs import mirror

    arch = targets.lookup(docker_client.version()["Arch"])
    layers = buildimage.chain(builder_base, arch, arch.architecture, (), ("zlib1g-dev",), project=True,
                              base_id=buildimage.base_image_id(docker_client, builder_base))
    image = buildimage.ensure_chain(docker_client, layers)
    # a newline: the engine's log stream has dropped a short output that lacks one
    installed = _run(docker_client, image, "dpkg-query", "-W", "-f", "${Version}\n", "zlib1g-dev").strip()
    # the archive's own word, from its signed indexes (read on the host, not through the image's apt sources)
    versions = []
    for archive, suite in ((mirror.host_mirror(), "bookworm"), (mirror.host_mirror(), "bookworm-updates"),
                           (mirror.host_security(), "bookworm-security")):
        release = mirror.release(archive, suite)
        try:
            versions.append(mirror.find_package(archive, release, arch.debian_arch, "zlib1g-dev")["Version"])
        except InputError:  # not updated there
            pass
    newest = max(versions, key=functools.cmp_to_key(_dpkg_compare))
    assert installed == newest, (installed, versions)


def _dpkg_compare(a: str, b: str) -> int:
    if a == b:
        return 0
    return -1 if subprocess.run(["dpkg", "--compare-versions", a, "lt", b]).returncode == 0 else 1
