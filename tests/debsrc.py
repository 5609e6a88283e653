"""Upstream source trees of Debian bookworm source packages, fetched once with a private apt configuration and cached,
so integration tests can build real programs that nobody on the project wrote."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

# Used when the host has no deb entry to copy (not a Debian-like host): scripts/dev installs this keyring.
FALLBACK = ("deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
            "http://deb.debian.org/debian bookworm main")
# The upstream tarball: `*.orig.tar.*` (not `*.orig-COMPONENT.tar.*` such as sqlite3's www docs); for a native
# package, its only `*.tar.*` besides a `*.debian.tar.*`.
ORIG = re.compile(r"[^/]+\.orig\.tar\.(gz|bz2|xz)")
NATIVE = re.compile(r"[^/]+(?<!\.debian)\.tar\.(gz|bz2|xz)")


def cache_dir() -> Path:
    """$FROMSCRATCH_TEST_CACHE/debsrc, else ~/.cache/fromscratch-tests/debsrc: read at each call."""
    root = os.environ.get("FROMSCRATCH_TEST_CACHE")
    return Path(root) / "debsrc" if root else Path.home() / ".cache" / "fromscratch-tests" / "debsrc"


def deb_src_line(sources_text: str) -> str | None:
    """deb-src lines (one per suite) for the first enabled `deb` entry of a deb822 .sources or a one-line .list text,
    keeping its Signed-By keyring so that apt still checks signatures; None when there is no such entry."""
    if re.search(r"(?im)^types\s*:", sources_text):
        for stanza in re.split(r"\n\s*\n", sources_text):
            fields = _deb822(stanza)
            if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
                continue
            uris, suites = fields.get("uris", "").split(), fields.get("suites", "").split()
            if not uris or not suites:
                continue
            key = fields.get("signed-by", "")
            # An inline key block cannot go in a one-line entry: apt then falls back to its trusted keyrings.
            options = f"[signed-by={key}] " if key and "\n" not in key and " " not in key else ""
            components = fields.get("components", "")
            return "\n".join(f"deb-src {options}{uris[0]} {suite} {components}".rstrip() for suite in suites)
        return None
    for line in sources_text.splitlines():
        m = re.match(r"\s*deb\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)(.*)", line.split("#", 1)[0])
        if m:
            signed = re.search(r"signed-by=(\S+)", m.group(1) or "")
            options = f"[signed-by={signed.group(1)}] " if signed else ""
            return f"deb-src {options}{m.group(2)} {m.group(3)}{m.group(4).rstrip()}"
    return None


def _deb822(stanza: str) -> dict[str, str]:
    """One deb822 stanza's fields, lower-cased names, continuation lines joined with newlines, comments dropped."""
    fields: dict[str, str] = {}
    name = ""
    for line in stanza.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        if line[0] in " \t" and name:
            fields[name] += "\n" + line.strip()
        elif ":" in line:
            name, value = line.split(":", 1)
            name = name.strip().lower()
            fields[name] = value.strip()
    return fields


def host_deb_src() -> str:
    """The host's own mirror as deb-src lines: same URI, suites, components and keyring as its first deb entry."""
    etc = Path("/etc/apt")
    for path in [*sorted(etc.glob("sources.list.d/*.sources")), etc / "sources.list",
                 *sorted(etc.glob("sources.list.d/*.list"))]:
        with contextlib.suppress(OSError):
            line = deb_src_line(path.read_text())
            if line:
                return line
    return FALLBACK


def fetch(name: str) -> Path:
    """The upstream tree of Debian source package (or binary package) `name`: its top directory, extracted in the
    cache. A cached tree is returned without running apt; a failed fetch raises RuntimeError naming the package."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9.+-]+", name):
        raise ValueError(f"not a Debian package name: {name!r}")
    done = cache_dir() / "src" / name
    if not done.is_dir():
        with _locked(cache_dir()):
            if not done.is_dir():  # another process may have fetched it while this one waited for the lock
                _fetch_into(name, done)
    return _top(done / "tree")


def _fetch_into(name: str, done: Path) -> None:
    done.parent.mkdir(parents=True, exist_ok=True)
    for stale in done.parent.glob(f".{name}-*"):  # left by a fetch that was killed: the lock says none is running
        shutil.rmtree(stale, ignore_errors=True)
    # A temporary sibling renamed into place: an interrupted fetch leaves no half tree where `done` would be.
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=done.parent))
    try:
        download = tmp / "download"
        download.mkdir()
        apt = _Apt(cache_dir() / "apt")
        updated = apt.update_if_missing(name)
        try:
            _download(apt, name, download)
        except RuntimeError:
            if updated:
                raise
            # Stale lists name files that a point release has removed from the mirror (404): refresh once, retry.
            apt.run(name, "update")
            _download(apt, name, download)
        tarball = _upstream_tarball(download)
        if tarball is None:
            listing = ", ".join(sorted(p.name for p in download.iterdir()))
            raise RuntimeError(f"Debian source package {name!r}: no upstream tarball among {listing}")
        extract(tarball, tmp / "tree")
        for dsc in download.glob("*.dsc"):  # kept beside the tree: it names the version that was fetched
            shutil.copy2(dsc, tmp)
        shutil.rmtree(download)
        tmp.chmod(0o755)  # mkdtemp made it 0700
        tmp.rename(done)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _download(apt: _Apt, name: str, download: Path) -> None:
    """The source package's files; when the mirror lacks its Debian part (some .debian.tar answer 404 while the
    .dsc and .orig download: qrencode, hexedit), the upstream tarball alone, which is all the tree is made of."""
    try:
        apt.run(name, "source", "--download-only", name, cwd=download)
    except RuntimeError as exc:
        if "(diff)" not in str(exc):
            raise
        apt.run(name, "source", "--download-only", "--tar-only", name, cwd=download)


def _upstream_tarball(download: Path) -> Path | None:
    names = sorted(p.name for p in download.iterdir())
    found = [n for n in names if ORIG.fullmatch(n)] or [n for n in names if NATIVE.fullmatch(n)]
    return download / found[0] if found else None


def _top(tree: Path) -> Path:
    """The directory holding the upstream build files: a tarball's single top directory, else the tree itself."""
    entries = list(tree.iterdir())
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else tree


class _Apt:
    """apt-get with every path in a private directory, so that the host's apt configuration and state stay as
    they are; the host's dpkg status is only read."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.lists = root / "lists"
        (self.lists / "partial").mkdir(parents=True, exist_ok=True)
        (root / "apt-cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
        sources = root / "sources.list"
        sources.write_text(host_deb_src() + "\n")
        self.options = [
            f"Dir::Etc::SourceList={sources}", "Dir::Etc::SourceParts=/nonexistent",
            f"Dir::State::Lists={self.lists}", f"Dir::Cache={root / 'apt-cache'}",
            "Dir::State::status=/var/lib/dpkg/status", "Debug::NoLocking=1",
        ]
        if os.geteuid() == 0:  # apt would download as _apt, who cannot write into root's ~/.cache, and warn
            self.options.append("APT::Sandbox::User=root")

    def update_if_missing(self, name: str) -> bool:
        if any(self.lists.glob("*_Sources*")):
            return False
        self.run(name, "update")
        return True

    def run(self, name: str, *args: str, cwd: Path | None = None) -> None:
        command = ["apt-get", "-q", *[x for o in self.options for x in ("-o", o)], *args]
        try:
            proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=900,
                                  env={**os.environ, "LC_ALL": "C"})
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeError(f"Debian source package {name!r}: apt-get {args[0]} did not run: {exc}") from exc
        # apt-get update exits 0 even when a mirror is unreachable; its "W:"/"E:" lines and no index tell.
        failed = proc.returncode != 0 or (args[0] == "update" and not any(self.lists.glob("*_Sources*")))
        if failed:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-8:])
            how = f"exit {proc.returncode}" if proc.returncode else "exit 0 but no Sources index came"
            raise RuntimeError(f"Debian source package {name!r}: `apt-get {' '.join(args)}` failed ({how}):\n{tail}")


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """One fetch at a time across processes: apt's private lists and the rename into place are not shared-safe."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def extract(tarball: Path, dest: Path) -> None:
    """Extracts a tarball, refusing any member that would land outside `dest` (absolute names, `..`, links pointing
    out, writes through such links) and special files; the "data" filter adds its own checks where Python has it."""
    dest.mkdir(parents=True)
    root = os.path.realpath(dest)
    kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    with tarfile.open(tarball) as tar:
        for member in tar:
            target = os.path.realpath(os.path.join(root, member.name))  # follows links already extracted
            escapes = [target]
            if member.issym():
                escapes.append(os.path.realpath(os.path.join(os.path.dirname(target), member.linkname)))
            elif member.islnk():
                escapes.append(os.path.realpath(os.path.join(root, member.linkname)))
            elif not (member.isfile() or member.isdir()):
                raise RuntimeError(f"{tarball.name}: refusing special file {member.name!r}")
            for path in escapes:
                if os.path.commonpath([root, path]) != root:
                    raise RuntimeError(f"{tarball.name}: refusing {member.name!r}, which leads outside {dest}")
            # Owned by whoever extracts, without setuid/setgid bits or group/other write, as the data filter does.
            member.uid, member.gid, member.uname, member.gname = os.getuid(), os.getgid(), "", ""
            member.mode = (member.mode & 0o755) | (0o700 if member.isdir() else 0o600)
            tar.extract(member, root, **kwargs)  # type: ignore[arg-type]
