"""A Debian package's files, for an image to hold (image/runtime.py): the package of the host's suite fetched from
its mirror (checked against the signed Release, mirror.py), unpacked without running anything of it, and kept in
the user's cache by architecture, name and version."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import stat
import tarfile
import time
from collections.abc import Sequence
from pathlib import Path

from .. import files
from ..errors import BuildFailed, InputError, ToolkitError
from ..image.runtime import Unpacked
from . import mirror

log = logging.getLogger(__name__)

_MAX_AGE = 30 * 86400  # a kept lookup older than this is asked again (the suite's point releases move on)
_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")  # Debian Policy's package names
_ARCH = re.compile(r"^[a-z0-9]+$")
_MAX_MEMBER = 64 << 20  # no file of these packages comes near it


def unpacked(arch: str, name: str, prefixes: Sequence[str]) -> Unpacked:
    """name's files for the Debian architecture arch (arch-all packages are listed for every one) under
    prefixes (paths in the package, e.g. "usr/lib/locale/"), from the cache, else fetched and unpacked there."""
    if not _NAME.match(name) or not _ARCH.match(arch):
        raise InputError(f"{name}:{arch} is not a Debian package name and architecture")
    suite = mirror.host_suite()
    where = files.cache_dir() / "debs" / suite / arch
    try:
        where.mkdir(parents=True, exist_ok=True)
        with files.exclusive(f"debs-{suite}-{arch}-{name}",
                             waiting=f"waiting for another fromscratch process that is fetching {name}"):
            stanza = _stanza(where / f"{name}.json", suite, arch, name)
            tree = where / f"{name}_{stanza['Version'].replace(':', '%3a')}"
            if not (tree / ".complete").is_file():
                _fetch(stanza, tree, prefixes)
    except OSError as exc:
        raise BuildFailed(f"cannot keep Debian's {name} in {where} ({exc.strerror or exc})") from None
    source = stanza.get("Source", name).split(" ", 1)[0]
    return Unpacked(name, stanza["Version"], stanza.get("Architecture", arch), source, stanza.get("Maintainer", ""),
                    _os_version(), tree)


def _stanza(kept: Path, suite: str, arch: str, name: str) -> dict[str, str]:
    """The package's Packages stanza, as kept; asked of the mirror when there is none or it is old. With no
    mirror answering, an old one still serves."""
    fresh = kept.is_file() and time.time() - kept.stat().st_mtime < _MAX_AGE
    if not fresh:
        try:
            archive = mirror.host_mirror()
            found = mirror.find_package(archive, mirror.release(archive, suite), arch, name)
            with files.atomic_output(kept) as tmp:
                tmp.write_text(json.dumps({**found, "mirror": archive}, sort_keys=True))
        except ToolkitError as exc:
            if not kept.is_file():
                raise BuildFailed(f"Debian's {name} for {arch} cannot be had from the mirror: {exc.message}",
                                  hint="check the host's apt sources and network, or leave the files out "
                                       "(--no-runtime-files)") from None
            log.info("using the kept %s: the mirror did not answer (%s)", kept, exc)
    stanza = json.loads(kept.read_text())
    return {str(k): str(v) for k, v in stanza.items()}


def _fetch(stanza: dict[str, str], tree: Path, prefixes: Sequence[str]) -> None:
    """The .deb downloaded (its sha256 held to the signed index) and the files under prefixes unpacked into
    tree, made whole under a temporary name and then renamed."""
    log.warning("fetching Debian's %s %s (%s bytes, once; kept in %s)", stanza.get("Package"),
                stanza.get("Version"), stanza.get("Size"), tree.parent)
    shutil.rmtree(tree, ignore_errors=True)
    with files.temp_dir("fromscratch-deb-", str(tree.parent)) as tmp:
        deb = mirror.download_deb(stanza.get("mirror", mirror.host_mirror()), stanza, tmp)
        root = tmp / "root"
        root.mkdir()
        with mirror.deb_data(deb) as data:
            unpack(data, root, prefixes)
        (root / ".complete").write_text(stanza.get("Version", ""))
        os.replace(root, tree)


def unpack(data: tarfile.TarFile, root: Path, prefixes: Sequence[str]) -> None:
    """The regular files and symlinks of a package's data.tar under prefixes, written into root. A path that
    climbs out, goes through a symlink or is not a file, directory, link or symlink is refused: nothing of the
    package is trusted, though the mirror's signature vouches for it."""
    for member in data:
        path = member.name.removeprefix("./").strip("/")
        if not path or not path.startswith(tuple(prefixes)) or member.isdir():
            continue
        parts = path.split("/")
        if any(p in ("", ".", "..") for p in parts) or len(path) > 4096:
            raise BuildFailed(f"a Debian package holds the path {member.name!r}, which leaves its root")
        target = root.joinpath(*parts)
        parent = root
        for part in parts[:-1]:
            parent = parent / part
            if parent.is_symlink():
                raise BuildFailed(f"a Debian package's {member.name!r} lies beyond one of its symlinks")
            parent.mkdir(exist_ok=True)
        if member.issym():
            os.symlink(member.linkname, target)
        elif member.isfile() or member.islnk():
            if member.size > _MAX_MEMBER:
                raise BuildFailed(f"a Debian package's {member.name!r} is {member.size:,} bytes")
            src = data.extractfile(member)
            if src is None:
                continue
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0),
                         0o755 if member.mode & stat.S_IXUSR else 0o644)
            with os.fdopen(fd, "wb") as out, src:
                shutil.copyfileobj(src, out)
        else:
            raise BuildFailed(f"a Debian package holds {member.name!r}, a device or FIFO")


def _os_version(os_release: str = "/etc/os-release") -> str:
    """VERSION_ID of the host's Debian (12), what the package URL's distro names."""
    try:
        text = Path(os_release).read_text(errors="replace")
    except OSError:
        return ""
    found = re.search(r'^VERSION_ID="?([0-9.]+)"?$', text, flags=re.M)
    return found.group(1) if found else ""
