"""apt-get with a private configuration, pointed at the deb-src twin of the host's own signed Debian archive: what
fetches source packages (debian/source.py, and the tests' tree cache) without touching the host's apt state. apt
checks the signed Release and every file's hash against it; the tarballs are extracted refusing escapes."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from ..errors import BuildFailed

KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
# The upstream tarball: `*.orig.tar.*` (not `*.orig-COMPONENT.tar.*` such as sqlite3's www docs); for a native
# package, its only `*.tar.*` besides a `*.debian.tar.*`.
ORIG = re.compile(r"[^/]+\.orig\.tar\.(gz|bz2|xz)")
NATIVE = re.compile(r"[^/]+(?<!\.debian)\.tar\.(gz|bz2|xz)")
# Used when the host has no deb entry to copy (not a Debian-like host).
FALLBACK = f"deb-src [signed-by={KEYRING}] http://deb.debian.org/debian bookworm main"


def deb_src_line(sources_text: str) -> str | None:
    """deb-src lines (one per suite) for the first enabled `deb` entry of a deb822 .sources or a one-line .list text,
    keeping its Signed-By keyring so that apt still checks signatures; None when there is no such entry."""
    if re.search(r"(?im)^types\s*:", sources_text):
        for stanza in re.split(r"\n\s*\n", sources_text):
            fields = deb822(stanza)
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


def deb822(stanza: str) -> dict[str, str]:
    """One deb822 stanza's fields (a .sources entry, a .dsc): lower-cased names, continuation lines joined with
    newlines, comments and PGP armour lines dropped."""
    fields: dict[str, str] = {}
    name = ""
    for line in stanza.splitlines():
        if line.startswith(("#", "-----")) or not line.strip():
            continue
        if line[0] in " \t" and name:
            fields[name] += "\n" + line.strip()
        elif ":" in line:
            name, value = line.split(":", 1)
            name = name.strip().lower()
            fields[name] = value.strip()
    return fields


def host_deb_src(etc: Path = Path("/etc/apt")) -> str:
    """The host's own mirror as deb-src lines: same URI, suites, components and keyring as its first deb entry."""
    for path in [*sorted(etc.glob("sources.list.d/*.sources")), etc / "sources.list",
                 *sorted(etc.glob("sources.list.d/*.list"))]:
        with contextlib.suppress(OSError):
            line = deb_src_line(path.read_text())
            if line:
                return line
    return FALLBACK


class Apt:
    """apt-get with every path in a private directory, so that the host's apt configuration and state stay as
    they are; the host's dpkg status is only read. Its failures are BuildFailed naming the package and apt's last
    lines."""

    def __init__(self, root: Path, sources: str | None = None) -> None:
        self.root = root
        self.lists = root / "lists"
        (self.lists / "partial").mkdir(parents=True, exist_ok=True)
        (root / "apt-cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
        listing = root / "sources.list"
        text = (sources or host_deb_src()) + "\n"
        if not listing.is_file() or listing.read_text() != text:
            listing.write_text(text)
            for old in self.lists.glob("*_Sources*"):  # another archive's index: fetched anew
                old.unlink()
        self.options = [
            f"Dir::Etc::SourceList={listing}", "Dir::Etc::SourceParts=/nonexistent",
            f"Dir::State::Lists={self.lists}", f"Dir::Cache={root / 'apt-cache'}",
            "Dir::State::status=/var/lib/dpkg/status", "Debug::NoLocking=1",
        ]
        if os.geteuid() == 0:  # apt would download as _apt, who cannot write into root's ~/.cache, and warn
            self.options.append("APT::Sandbox::User=root")

    def update_if_missing(self, name: str, max_age: float | None = None) -> bool:
        """apt-get update when there is no Sources index yet (or, with max_age, the last update is older than
        max_age seconds: the suite's point releases move on); whether it ran."""
        stamp = self.root / "updated"
        fresh = max_age is None or (stamp.is_file() and time.time() - stamp.stat().st_mtime < max_age)
        if fresh and any(self.lists.glob("*_Sources*")):
            return False
        self.run(name, "update")
        return True

    def run(self, name: str, *args: str, cwd: Path | None = None) -> str:
        """apt-get's output; args are argv words (never a shell's), name the package said in a failure."""
        command = ["apt-get", "-q", *[x for o in self.options for x in ("-o", o)], *args]
        try:
            proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=900,
                                  env={**os.environ, "LC_ALL": "C"})
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BuildFailed(f"Debian source package {name!r}: apt-get {args[0]} did not run: {exc}",
                              hint="fetching Debian's sources needs apt-get on this machine") from None
        # apt-get update exits 0 even when a mirror is unreachable; its "W:"/"E:" lines and no index tell.
        failed = proc.returncode != 0 or (args[0] == "update" and not any(self.lists.glob("*_Sources*")))
        if failed:
            said = (proc.stdout + proc.stderr).strip()
            tail = "\n".join(said.splitlines()[-8:])
            how = f"exit {proc.returncode}" if proc.returncode else "exit 0 but no Sources index came"
            raise BuildFailed(f"Debian source package {name!r}: `apt-get {' '.join(args)}` failed ({how}):\n{tail}",
                              log=said)
        if args[0] == "update":
            (self.root / "updated").touch()
        return proc.stdout


@contextlib.contextmanager
def made_whole(done: Path) -> Iterator[Path]:
    """A temporary sibling of done to fill, renamed to done when the block ends well and removed when it does not:
    an interrupted fetch leaves no half tree where done would be (nor one left by a killed fetch, once locked)."""
    done.parent.mkdir(parents=True, exist_ok=True)
    for stale in done.parent.glob(f".{done.name}-*"):  # left by a fetch that was killed: the lock says none runs
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{done.name}-", dir=done.parent))
    try:
        yield tmp
        tmp.chmod(0o755)  # mkdtemp made it 0700
        tmp.rename(done)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
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
                raise BuildFailed(f"{tarball.name}: refusing special file {member.name!r}")
            for path in escapes:
                if os.path.commonpath([root, path]) != root:
                    raise BuildFailed(f"{tarball.name}: refusing {member.name!r}, which leads outside {dest}")
            # Owned by whoever extracts, without setuid/setgid bits or group/other write, as the data filter does.
            member.uid, member.gid, member.uname, member.gname = os.getuid(), os.getgid(), "", ""
            member.mode = (member.mode & 0o755) | (0o700 if member.isdir() else 0o600)
            tar.extract(member, root, **kwargs)  # type: ignore[arg-type]


def top(tree: Path) -> Path:
    """The directory holding the upstream build files: a tarball's single top directory, else the tree itself."""
    entries = list(tree.iterdir())
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else tree


def upstream_tarball(download: Path) -> Path | None:
    """Of a source package's downloaded files, its upstream tarball."""
    names = sorted(p.name for p in download.iterdir())
    found = [n for n in names if ORIG.fullmatch(n)] or [n for n in names if NATIVE.fullmatch(n)]
    return download / found[0] if found else None
