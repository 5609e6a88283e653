"""Full base images from a root filesystem: debootstrap, container-friendly tweaks, a deterministic tar, import."""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from . import interrupts, oci
from .errors import BuildFailed, InputError

log = logging.getLogger(__name__)

DEFAULT_MIRROR = "http://deb.debian.org/debian"
_EMPTY_DIRS = ("dev", "proc", "sys")  # recreated empty, as moby's mkimage did


def host_mirror(sources_dirs: tuple[str, ...] = ("/etc/apt/sources.list.d", "/etc/apt")) -> str:
    """The first Debian mirror the host's apt sources name, else deb.debian.org."""
    candidates: list[Path] = []
    for d in sources_dirs:
        p = Path(d)
        if p.is_dir():
            candidates += sorted(p.glob("*.sources")) + sorted(p.glob("*.list"))
    for path in candidates:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for url in re.findall(r"(?:^URIs:\s*|^deb\s+(?:\[[^\]]*\]\s+)?)(\S+)", text, flags=re.M):
            if "debian" in url and "security" not in url:
                return url.rstrip("/")
    return DEFAULT_MIRROR


def debootstrap(suite: str, target: Path, mirror: str, variant: str = "minbase",
                include: list[str] | None = None, run: Any = interrupts.run_child) -> None:
    if not shutil.which("debootstrap"):
        raise BuildFailed("debootstrap is not installed", hint="apt-get install debootstrap (needs root)")
    if os.geteuid() != 0:
        raise BuildFailed("debootstrap needs root", hint="run as root, e.g. sudo invoke rootfs ...")
    cmd = ["debootstrap", f"--variant={variant}"]
    if include:
        cmd.append("--include=" + ",".join(include))
    cmd += [suite, str(target), mirror]
    log.warning("debootstrap %s from %s (takes a minute)", suite, mirror)
    proc = run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise BuildFailed(f"debootstrap {suite} failed (exit {proc.returncode})",
                          hint="is the suite name right and the mirror reachable?", log=tail)


def make_container_friendly(root: Path) -> None:
    """What moby's mkimage and debuerreotype write: services never start, apt stays small, no stale state."""
    sbin = root / "usr/sbin"
    sbin.mkdir(parents=True, exist_ok=True)
    policy = sbin / "policy-rc.d"
    policy.write_text("#!/bin/sh\n# containers start no services at install time\nexit 101\n")
    policy.chmod(0o755)
    apt_conf = root / "etc/apt/apt.conf.d"
    apt_conf.mkdir(parents=True, exist_ok=True)
    clean = '"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true";'
    (apt_conf / "docker-clean").write_text(
        f"DPkg::Post-Invoke {{ {clean} }};\nAPT::Update::Post-Invoke {{ {clean} }};\n"
        'Dir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n')
    (apt_conf / "docker-no-languages").write_text('Acquire::Languages "none";\n')
    (apt_conf / "docker-gzip-indexes").write_text(
        'Acquire::GzipIndexes "true";\nAcquire::CompressionTypes::Order:: "gz";\n')
    (apt_conf / "docker-autoremove-suggests").write_text(
        'Apt::AutoRemove::SuggestsImportant "false";\n')
    dpkg_cfg = root / "etc/dpkg/dpkg.cfg.d"
    dpkg_cfg.mkdir(parents=True, exist_ok=True)
    (dpkg_cfg / "docker-apt-speedup").write_text("force-unsafe-io\n")
    machine_id = root / "etc/machine-id"
    machine_id.write_text("")
    for pattern in ("var/lib/apt/lists/*", "var/cache/apt/*.bin", "var/cache/apt/archives/*.deb",
                    "var/cache/ldconfig/aux-cache", "var/log/*.log", "var/log/apt/*", "debootstrap"):
        for p in root.glob(pattern):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            elif p.name != "lock":
                p.unlink()
    for name in _EMPTY_DIRS:
        d = root / name
        if d.is_dir() and not d.is_symlink():
            for child in d.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()


def _walk(root: Path) -> Iterator[str]:
    """Every path below root, relative, sorted by name at each level (so the whole listing is sorted)."""
    stack = [""]
    while stack:
        rel = stack.pop()
        full = root / rel if rel else root
        names = sorted(os.listdir(full))
        children = [f"{rel}/{n}" if rel else n for n in names]
        for child in children:
            yield child
        for child in reversed(children):
            if stat.S_ISDIR(os.lstat(root / child).st_mode):
                stack.append(child)


def write_tar(root: Path, out: BinaryIO, epoch: int) -> int:
    """A tar of root: entries sorted, numeric owners, mtimes clamped to epoch, hard links kept. Returns a count."""
    seen: dict[tuple[int, int], str] = {}
    count = 0
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        for rel in sorted(_walk(root)):
            path = root / rel
            info = tar.gettarinfo(str(path), rel)
            info.uname = info.gname = ""
            info.mtime = min(int(info.mtime), epoch)
            info.pax_headers = {}
            st = os.lstat(path)
            if info.isreg() and st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                if key in seen:
                    info.type = tarfile.LNKTYPE
                    info.linkname = seen[key]
                    info.size = 0
                    tar.addfile(info)
                    count += 1
                    continue
                seen[key] = rel
            if info.isreg():
                with open(path, "rb") as fh:
                    tar.addfile(info, fh)
            else:
                tar.addfile(info)
            count += 1
    return count


def image_config(arch: str, variant: str | None = None) -> oci.ImageConfig:
    return oci.ImageConfig(architecture=arch, variant=variant, cmd=("/bin/bash",),
                           env=("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",))


def _open_decompressed(path: Path) -> BinaryIO:
    """The file as a plain tar stream: layers are stored uncompressed so their digest is their diff_id."""
    import bz2
    import gzip
    import lzma

    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic.startswith(b"\x1f\x8b"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    if magic.startswith(b"BZh"):
        return bz2.open(path, "rb")  # type: ignore[return-value]
    if magic.startswith(b"\xfd7zXZ"):
        return lzma.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def check_tar(path: Path) -> None:
    """Refuse a rootfs tarball that is not a tar at all, before it reaches the engine."""
    try:
        with tarfile.open(path, "r:*") as tar:
            if tar.next() is None:
                raise InputError(f"{path}: an empty tar archive")
    except tarfile.TarError as exc:
        raise InputError(f"{path}: not a tar archive ({exc})") from None


def source_date_epoch(root: Path | None = None) -> int:
    """SOURCE_DATE_EPOCH when set; else the date of the suite's Release file; else the newest mtime."""
    env = os.environ.get("SOURCE_DATE_EPOCH")
    if env:
        try:
            return int(env)
        except ValueError:
            raise InputError(f"SOURCE_DATE_EPOCH={env!r} is not a whole number of seconds") from None
    if root is not None:
        import email.utils

        for release in sorted((root / "var/lib/apt/lists").glob("*_Release")):
            for line in release.read_text(errors="replace").splitlines():
                if line.startswith("Date:"):
                    parsed = email.utils.parsedate_to_datetime(line[5:].strip())
                    return int(parsed.timestamp())
    return 2**31 - 1  # no clamp


def _load_layer(client: Any, layer: Path, tag: str, config: oci.ImageConfig, epoch: int,
                scratch: Path) -> dict:
    from . import engine

    desc = oci.hash_file(layer)
    image = oci.make_image([(desc, layer)], config, epoch, created_by="fromscratch rootfs")
    archive = scratch / "image.tar"
    with open(archive, "wb") as fh:
        oci.write_archive([image], fh, repo_tags=[tag], epoch=0)
    with engine.step(f"loading {tag} into the engine"), open(archive, "rb") as fh:
        client.images.load(fh)
    archive.unlink()
    with engine.step(f"inspecting {tag}"):
        attrs = client.images.get(tag).attrs
    return {"tag": tag, "id": attrs["Id"], "size": attrs.get("Size", desc.size)}


def import_tree(client: Any, root: Path, tag: str, scratch: Path, out: Path | None = None,
                arch: str | None = None, epoch: int | None = None) -> dict:
    """Tar root deterministically (changing nothing in it) and load it as tag; optionally keep the tar at out."""
    from . import targets
    from .files import atomic_output

    if epoch is None:
        epoch = source_date_epoch()
    layer = scratch / "rootfs.tar"
    with open(layer, "wb") as fh:
        count = write_tar(root, fh, epoch)
    log.warning("rootfs: %d entries", count)
    if out is not None:
        with atomic_output(out) as tmp:
            shutil.copyfile(layer, tmp)
    target = targets.lookup(arch) if arch else targets.host()
    return _load_layer(client, layer, tag, image_config(target.architecture, target.variant), epoch, scratch)


def import_tarball(client: Any, tarball: Path, tag: str, scratch: Path, arch: str | None = None) -> dict:
    """Load an existing rootfs tarball (plain, gzip, bzip2 or xz) as tag."""
    from . import targets

    if not tarball.exists():
        raise InputError(f"{tarball}: no such file or directory")
    check_tar(tarball)
    layer = scratch / "rootfs.tar"
    with _open_decompressed(tarball) as src, open(layer, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    target = targets.lookup(arch) if arch else targets.host()
    return _load_layer(client, layer, tag, image_config(target.architecture, target.variant),
                       source_date_epoch(), scratch)
