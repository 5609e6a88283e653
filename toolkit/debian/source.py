"""`build --debian NAME[=VERSION]`'s input: the source package fetched by apt (debian/archive.py) from the host's
signed archive into the user's cache, extracted with Debian's patches applied, and what its .dsc says: the binary
packages it makes (whose programs are delivered) and its version (the SBOM's source).

Extraction runs on this machine with dpkg-source, which applies the patches the way Debian's builds do; apt already
checked every file against the signed Sources index. A machine without dpkg-source gets the upstream tree and is
told so: doing it in the build container instead would need networking there, which the build step has off."""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from .. import files, grammar
from ..errors import BuildFailed, InputError
from ..sbom import spdx
from . import archive

log = logging.getLogger(__name__)

SUPPLIER = "Organization: Debian"
_LISTS_MAX_AGE = 86400  # apt's lists of source packages are fetched again after a day: new versions come
_SUITE = re.compile(r"[a-z][a-z0-9-]{0,63}")


@dataclass(frozen=True)
class Request:
    """What --debian asked for, checked: a source package's name and, optionally, its version."""

    name: str
    version: str | None = None

    @property
    def spec(self) -> str:
        """As apt-get takes it: NAME or NAME=VERSION."""
        return f"{self.name}={self.version}" if self.version else self.name


def parse(text: str) -> Request:
    """--debian NAME[=VERSION], each part checked against Debian's grammar before it reaches apt or a RUN line."""
    name, sep, version = text.partition("=")
    grammar.source_package(name, "--debian")
    return Request(name, grammar.version(version, "--debian") if sep else None)


@dataclass(frozen=True)
class Source:
    """A source package fetched and extracted: its tree, name, version and binary packages (from its .dsc)."""

    name: str
    version: str
    tree: Path
    binaries: tuple[str, ...]
    unpatched: str = ""  # why the tree is upstream's alone, without Debian's patches; "": dpkg-source -x made it

    @property
    def spec(self) -> str:
        return f"{self.name}={self.version}"

    @property
    def purl(self) -> str:
        return f"pkg:deb/debian/{quote(self.name, safe='')}@{quote(self.version, safe='')}?arch=source"

    def said(self) -> str:
        """One line on what is built, when it is not the patched tree."""
        return (f"building {self.name} {self.version} from its upstream tree without Debian's patches, with its "
                f".dsc's Build-Depends: {self.unpatched}") if self.unpatched else ""

    def sbom_package(self) -> spdx.Package:
        """The SBOM's source: the Debian source package, by name, version and package URL."""
        how = "the upstream tree, without Debian's patches" if self.unpatched else "with Debian's patches applied"
        return spdx.Package(spdx.spdx_id("Source", self.name), self.name, self.version, SUPPLIER, purl=self.purl,
                            purpose="SOURCE", comment=f"Debian source package {self.name} {self.version}, {how}")


def sources_lines(mirror: str | None, suite: str | None) -> tuple[str, str]:
    """The deb-src lines apt is given, and the suite they name in messages: the host's own archive, else --mirror
    and --suite (the host's mirror and suite for the one not given), checked with Debian's archive keyring."""
    from ..rootfs import mirror as mirrors

    if mirror is None and suite is None:
        lines = archive.host_deb_src()
        first = re.match(r"deb-src (?:\[[^\]]*\] )?\S+ (\S+)", lines)
        return lines, first[1] if first else "the host's archive"
    url = mirrors.check_mirror(mirror) if mirror else mirrors.host_mirror()
    if suite is not None and not _SUITE.fullmatch(suite):
        raise InputError(f"--suite {suite!r} is not a suite name", hint="e.g. --suite bookworm")
    chosen = suite or mirrors.host_suite()
    return f"deb-src [signed-by={archive.KEYRING}] {url} {chosen} main", chosen


def fetch(request: Request, *, mirror: str | None = None, suite: str | None = None,
          cache: Path | None = None) -> Source:
    """The source package request names, from the cache or fetched into it (a temporary directory renamed into
    place: an interrupted fetch leaves nothing half-made). A name or version the archive lacks is one InputError."""
    lines, said_suite = sources_lines(mirror, suite)
    root = cache or files.cache_dir() / "debian"
    with archive.locked(root):
        apt = archive.Apt(root / "apt" / hashlib.sha256(lines.encode()).hexdigest()[:12], lines)
        updated = apt.update_if_missing(request.name, max_age=_LISTS_MAX_AGE)
        stem = _resolve(apt, request, said_suite)
        done = root / "src" / stem
        if not done.is_dir():
            try:
                _fetch_into(apt, request, stem, done)
            except BuildFailed:
                if updated:
                    raise
                # Stale lists name files that a point release has removed from the mirror: refresh once, retry.
                apt.run(request.name, "update")
                stem = _resolve(apt, request, said_suite)
                done = root / "src" / stem
                if not done.is_dir():
                    _fetch_into(apt, request, stem, done)
    return read(done)


def read(done: Path) -> Source:
    """A fetched source package, from what _fetch_into kept: its .dsc and its extracted tree."""
    fields = archive.deb822((done / "source.dsc").read_text(errors="replace"))
    binaries = tuple(b.strip() for b in fields.get("binary", "").replace("\n", " ").split(",") if b.strip())
    unpatched = done / "unpatched"
    return Source(fields.get("source", ""), fields.get("version", ""), archive.top(done / "tree"), binaries,
                  unpatched.read_text().strip() if unpatched.is_file() else "")


def _resolve(apt: archive.Apt, request: Request, suite: str) -> str:
    """The .dsc's stem (NAME_VERSION, without an epoch) apt would fetch: a question to apt's lists, no download."""
    try:
        said = apt.run(request.name, "source", "--print-uris", request.spec)
    except BuildFailed as exc:
        if "Unable to find a source package" in exc.log or "Can not find version" in exc.log:
            raise InputError(f"no source package {request.spec} in {suite}",
                             hint="apt-cache showsrc NAME lists the versions" if request.version else None) from None
        raise
    stems = re.findall(r"^'[^']+' ([a-z0-9][a-z0-9+.-]*_[A-Za-z0-9.+~-]+)\.dsc ", said, flags=re.M)
    if not stems:
        raise BuildFailed(f"apt names no .dsc for {request.spec}", log=said)
    return stems[0]


def _fetch_into(apt: archive.Apt, request: Request, stem: str, done: Path) -> None:
    with archive.made_whole(done) as tmp:
        download = tmp / "download"
        download.mkdir()
        failed: BuildFailed | None = None
        try:
            apt.run(request.name, "source", "--download-only", request.spec, cwd=download)
        except BuildFailed as exc:  # apt keeps what it fetched and checked; what 404ed is missing
            failed = exc
        dsc = download / f"{stem}.dsc"
        if not dsc.is_file():
            raise failed or BuildFailed(f"the mirror gave no {dsc.name}")
        fields = archive.deb822(dsc.read_text(errors="replace"))
        listed = [line.split()[-1] for line in fields.get("files", "").splitlines() if len(line.split()) == 3]
        lacking = [n for n in listed if not (download / n).is_file()]
        upstream = archive.upstream_tarball(download)
        version = fields.get("version", "?")
        if upstream is None:
            raise BuildFailed(f"the mirror has no upstream tarball of {request.name} {version} "
                              f"({', '.join(lacking) or 'none listed'}: 404)", hint="try --mirror another one")
        whole = not lacking and failed is None
        if whole and shutil.which("dpkg-source"):
            _dpkg_source(dsc, tmp / "tree" / f"{request.name}-{version.split(':')[-1].split('-')[0]}")
        else:
            (tmp / "unpatched").write_text(f"the mirror answers 404 for {', '.join(lacking)}\n" if not whole
                                           else "this machine has no dpkg-source (apt-get install dpkg-dev)\n")
            archive.extract(upstream, tmp / "tree")
        shutil.copy2(dsc, tmp / "source.dsc")
        shutil.rmtree(download)


def _dpkg_source(dsc: Path, dest: Path) -> None:
    """dpkg-source -x: the upstream tarball with Debian's part and patches applied. --no-check: apt has checked
    every file against the signed Sources index (the uploader's own signature needs keyrings this machine lacks)."""
    dest.parent.mkdir(parents=True)
    try:
        proc = subprocess.run(["dpkg-source", "--no-check", "-x", "--no-copy", str(dsc), str(dest)],
                              capture_output=True, text=True, timeout=600, cwd=dsc.parent,
                              env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"})
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BuildFailed(f"dpkg-source -x {dsc.name} did not run: {exc}") from None
    if proc.returncode != 0:
        said = (proc.stdout + proc.stderr).strip()
        raise BuildFailed(f"dpkg-source -x {dsc.name} failed (exit {proc.returncode}): "
                          f"{(said.splitlines() or [''])[-1]}", log=said)


