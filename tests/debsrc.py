"""Upstream source trees of Debian bookworm source packages, fetched once with a private apt configuration
(toolkit/debian/archive.py) and cached, so integration tests can build real programs that nobody on the project
wrote."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from toolkit.debian.archive import Apt, extract, locked, made_whole, top, upstream_tarball
from toolkit.errors import ToolkitError


def cache_dir() -> Path:
    """$FROMSCRATCH_TEST_CACHE/debsrc, else ~/.cache/fromscratch-tests/debsrc: read at each call."""
    root = os.environ.get("FROMSCRATCH_TEST_CACHE")
    return Path(root) / "debsrc" if root else Path.home() / ".cache" / "fromscratch-tests" / "debsrc"


def fetch(name: str) -> Path:
    """The upstream tree of Debian source package (or binary package) `name`: its top directory, extracted in the
    cache. A cached tree is returned without running apt; a failed fetch raises RuntimeError naming the package."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9.+-]+", name):
        raise ValueError(f"not a Debian package name: {name!r}")
    done = cache_dir() / "src" / name
    if not done.is_dir():
        with locked(cache_dir()):
            if not done.is_dir():  # another process may have fetched it while this one waited for the lock
                try:
                    _fetch_into(name, done)
                except ToolkitError as exc:
                    raise RuntimeError(str(exc)) from exc
    return top(done / "tree")


def _fetch_into(name: str, done: Path) -> None:
    with made_whole(done) as tmp:
        download = tmp / "download"
        download.mkdir()
        apt = Apt(cache_dir() / "apt")
        updated = apt.update_if_missing(name)
        try:
            _download(apt, name, download)
        except ToolkitError:
            if updated:
                raise
            # Stale lists name files that a point release has removed from the mirror (404): refresh once, retry.
            apt.run(name, "update")
            _download(apt, name, download)
        tarball = upstream_tarball(download)
        if tarball is None:
            listing = ", ".join(sorted(p.name for p in download.iterdir()))
            raise RuntimeError(f"Debian source package {name!r}: no upstream tarball among {listing}")
        extract(tarball, tmp / "tree")
        for dsc in download.glob("*.dsc"):  # kept beside the tree: it names the version that was fetched
            shutil.copy2(dsc, tmp)
        shutil.rmtree(download)


def _download(apt: Apt, name: str, download: Path) -> None:
    """The source package's files; when the mirror lacks its Debian part (some .debian.tar answer 404 while the
    .dsc and .orig download: qrencode, hexedit), the upstream tarball alone, which is all the tree is made of."""
    try:
        apt.run(name, "source", "--download-only", name, cwd=download)
    except ToolkitError as exc:
        if "(diff)" not in str(exc):
            raise
        apt.run(name, "source", "--download-only", "--tar-only", name, cwd=download)
