"""A Debian mirror, read the way apt reads it: which mirror and security archive the host uses, whether a suite is
there, a signed Release, Packages, one .deb.

Every file is checked against the chain apt trusts: InRelease's signature (gpgv, Debian's archive keyring), the
Packages index's sha256 in it, the .deb's sha256 in the index.
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
import lzma
import re
import shutil
import subprocess
import tarfile
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BuildFailed, InputError
from ..progress import Progress

log = logging.getLogger(__name__)

DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY = "http://deb.debian.org/debian-security"
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
# RFC 3986's characters only: a URL that reaches debootstrap's argv and the image's apt sources as one token
_URL = re.compile(r"^(https?|file)://[A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=%-]+$")


def host_mirror(sources_dirs: tuple[str, ...] = ("/etc/apt/sources.list.d", "/etc/apt")) -> str:
    """The first Debian mirror the host's apt sources name, else deb.debian.org."""
    found = (url for url in _host_uris(sources_dirs) if "debian" in url and "security" not in url)
    return next(found, DEFAULT_MIRROR)


def host_security(sources_dirs: tuple[str, ...] = ("/etc/apt/sources.list.d", "/etc/apt")) -> str:
    """The Debian security archive the host's apt sources name, else deb.debian.org's. Never derived from a
    --mirror: most mirrors do not carry it (security updates are not mirrored like the rest)."""
    found = (url for url in _host_uris(sources_dirs) if "debian" in url and "security" in url)
    return next(found, DEFAULT_SECURITY)


def _host_uris(sources_dirs: tuple[str, ...]) -> Iterator[str]:
    """The archive URL of each entry of the host's apt sources, in file order; one that check_mirror would refuse
    is skipped (it would reach debootstrap's argv and the image's own sources)."""
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
            if _URL.match(url):
                yield url.rstrip("/")


def check_mirror(url: str) -> str:
    if not _URL.match(url):
        raise InputError(f"--mirror {url!r} is not an http://, https:// or file:// URL",
                         hint="e.g. --mirror http://deb.debian.org/debian")
    return url.rstrip("/")


# A signed Release file lists a suite's indexes: Debian's biggest (sid's InRelease) is under 1 MiB.
MAX_RELEASE = 16 << 20


def _session(url: str) -> Any:
    """A net.Session for url's server; a login in the URL (http://user:password@host/) goes to that host only."""
    from .. import net

    parts = urllib.parse.urlsplit(url)
    name = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname or ""
    host = f"{name}:{parts.port}" if parts.port else name
    return net.Session(net.timeout(), [host] if parts.username else [])


def has_suite(archive: str, suite: str) -> bool:
    """Whether archive carries suite: its dists/SUITE/InRelease is there. A 404 is no; an archive that cannot be
    asked is an error, never a no: an image must not lose its security updates to a network hiccup."""
    import requests

    from .. import net

    url = f"{archive}/dists/{suite}/InRelease"
    if url.startswith("file://"):
        return Path(urllib.request.url2pathname(url[len("file://"):])).is_file()
    try:
        with _session(url) as session:
            answer = session.head(url, allow_redirects=True)
            answer.close()
    except requests.RequestException as exc:
        said = net.describe(exc, _host(url), net.timeout(), "archive")
        if net.unanswered(exc):
            raise BuildFailed(f"cannot reach {url} ({said})", hint="is the archive reachable from here?") from None
        raise BuildFailed(f"asking for {url}: {said}") from None
    if answer.status_code == 404:
        return False
    if answer.status_code >= 400:
        raise BuildFailed(f"{url}: the archive answered {answer.status_code} {answer.reason}")
    return True


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc or url


def fetch(url: str, progress: Progress | None = None, what: str = "", limit: int = MAX_RELEASE) -> bytes:
    """The body at url, at most limit bytes (a larger file is refused, as early as its Content-Length says so);
    a missing file is an InputError, an unreachable or misbehaving mirror a BuildFailed."""
    parts: list[bytes] = []
    for chunk in _chunks(url, limit, progress, what):
        parts.append(chunk)
    return b"".join(parts)


def _chunks(url: str, limit: int, progress: Progress | None, what: str) -> Iterator[bytes]:
    """The body at url in chunks as it arrives: at most limit bytes, within the network limits (net.py; a big
    file gets FROMSCRATCH_NET_TIMEOUT seconds more for every 4 MiB)."""
    import requests

    from .. import net

    if url.startswith("file://"):
        yield _local(Path(urllib.request.url2pathname(url[len("file://"):])), url, limit)
        return
    seconds = net.timeout()
    try:
        with _session(url) as session, session.allowing(limit):
            answer = session.get(url, stream=True, timeout=(seconds, seconds * max(1, -(-limit // net.MAX_ANSWER))))
            with answer:
                if answer.status_code == 404:
                    raise InputError(f"{url}: not on the mirror (404)")
                if answer.status_code >= 400:
                    raise BuildFailed(f"{url}: the mirror answered {answer.status_code} {answer.reason}")
                total = int(answer.headers.get("Content-Length") or 0) if answer.headers.get(
                    "Content-Length", "").isdigit() else 0
                done = 0
                for chunk in net.read_body(answer, 1 << 20):
                    done += len(chunk)
                    if progress is not None:
                        progress.amount(what or url, done, total)
                    yield chunk
    except requests.RequestException as exc:
        said = net.describe(exc, _host(url), seconds, "mirror")
        if net.unanswered(exc):
            raise BuildFailed(f"cannot fetch {url} ({said})", hint="is the mirror reachable from here?") from None
        raise BuildFailed(f"fetching {url}: {said}") from None


def _local(path: Path, url: str, limit: int) -> bytes:
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except FileNotFoundError:
        raise InputError(f"{url}: not on the mirror") from None
    except OSError as exc:
        raise BuildFailed(f"cannot read {url} ({exc.strerror or exc})") from None
    if len(data) > limit:
        raise BuildFailed(f"{url} is over the {limit:,} bytes it may be")
    return data


@dataclass(frozen=True)
class Release:
    """The signed facts of one suite: its date and the sha256 of each index."""

    suite: str
    date: int  # seconds since the epoch: the default SOURCE_DATE_EPOCH
    architectures: tuple[str, ...]
    sha256: dict[str, tuple[str, int]]  # index path -> (hex digest, size)


def parse_release(text: str, suite: str) -> Release:
    date = 0
    archs: tuple[str, ...] = ()
    sums: dict[str, tuple[str, int]] = {}
    in_sha = False
    for line in text.splitlines():
        if line.startswith(" ") and in_sha:
            parts = line.split()
            if len(parts) == 3:
                sums[parts[2]] = (parts[0], int(parts[1]))
            continue
        in_sha = line.startswith("SHA256:")
        if line.startswith("Date:"):
            date = int(email.utils.parsedate_to_datetime(line[5:].strip()).timestamp())
        elif line.startswith("Architectures:"):
            archs = tuple(line.split(":", 1)[1].split())
    return Release(suite, date, archs, sums)


def release(mirror: str, suite: str, progress: Progress | None = None) -> Release:
    """The suite's InRelease, its signature checked with gpgv against Debian's archive keyring."""
    if not shutil.which("gpgv"):
        raise BuildFailed("gpgv is not installed: the mirror's signature cannot be checked",
                          hint="apt-get install gpgv")
    if not KEYRING.is_file():
        raise BuildFailed(f"{KEYRING} is missing: the mirror's signature cannot be checked",
                          hint="apt-get install debian-archive-keyring")
    try:
        signed = fetch(f"{mirror}/dists/{suite}/InRelease")
    except InputError:
        raise InputError(f"{mirror} has no suite {suite!r}", hint="e.g. --suite bookworm") from None
    proc = subprocess.run(["gpgv", "--keyring", str(KEYRING), "--output", "-", "-"], input=signed,
                          capture_output=True)
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-1:]
        raise BuildFailed(f"{mirror}/dists/{suite}/InRelease: bad signature ({' '.join(tail)})")
    return parse_release(proc.stdout.decode(errors="replace"), suite)


def find_package(mirror: str, rel: Release, arch: str, name: str, progress: Progress | None = None) -> dict[str, str]:
    """The Packages stanza of name for arch (main component), from the index the Release vouches for."""
    if rel.architectures and arch not in rel.architectures:
        raise InputError(f"suite {rel.suite} has no {arch} packages", hint="known: " + ", ".join(rel.architectures))
    index = f"main/binary-{arch}/Packages.xz"
    if index not in rel.sha256:
        raise BuildFailed(f"the {rel.suite} Release lists no {index}")
    want, size = rel.sha256[index]
    data = fetch(f"{mirror}/dists/{rel.suite}/{index}", progress, f"{rel.suite} {arch} Packages.xz", limit=size)
    if hashlib.sha256(data).hexdigest() != want or len(data) != size:
        raise BuildFailed(f"{index}: its sha256 does not match the signed Release", hint="try again; a mirror in sync?")
    text = "\n" + lzma.decompress(data).decode(errors="replace")
    start = text.find(f"\nPackage: {name}\n")
    if start == -1:
        raise InputError(f"no package {name} for {arch} in {rel.suite}")
    stanza_text = text[start + 1:].split("\n\n", 1)[0]
    stanza: dict[str, str] = {}
    for line in stanza_text.splitlines():
        if line and not line.startswith(" ") and ":" in line:
            key, value = line.split(":", 1)
            stanza[key] = value.strip()
    return stanza


def host_suite(os_release: str = "/etc/os-release") -> str:
    """The Debian suite this host runs (bookworm, trixie...), else stable: what the host's mirror is asked for."""
    try:
        text = Path(os_release).read_text(errors="replace")
    except OSError:
        return "stable"
    fields = dict(re.findall(r'^([A-Z_]+)="?([^"\n]*)"?$', text, flags=re.M))
    if fields.get("ID") == "debian" and re.fullmatch(r"[a-z]+", fields.get("VERSION_CODENAME", "")):
        return fields["VERSION_CODENAME"]
    return "stable"


def download_index(mirror: str, rel: Release, index: str, dest: Path) -> None:
    """An index the signed Release names (main/Contents-arm64.gz), streamed to dest and checked against the
    Release's size and sha256 as it comes: never more read than the Release says it holds."""
    if index not in rel.sha256:
        raise BuildFailed(f"the {rel.suite} Release lists no {index}")
    want, size = rel.sha256[index]
    url = f"{mirror}/dists/{rel.suite}/{index}"
    sha = hashlib.sha256()
    done = 0
    with open(dest, "wb") as fh:  # within the network limits, at most the Release's size (_chunks)
        for chunk in _chunks(url, size, None, index):
            done += len(chunk)
            sha.update(chunk)
            fh.write(chunk)
    if done != size or sha.hexdigest() != want:
        raise BuildFailed(f"{index}: not the file the signed Release names ({done:,} bytes, sha256 "
                          f"{sha.hexdigest()[:16]}...)", hint="try again; a mirror in sync?")


def download_deb(mirror: str, stanza: dict[str, str], dest: Path, progress: Progress | None = None) -> Path:
    """The .deb a stanza names, streamed to disk and hashed as it arrives: no more than the Size the signed index
    gives is read, and a file whose sha256 is not the index's is removed and refused."""
    name = stanza.get("Filename", "")
    size = stanza.get("Size", "")
    if not name or ".." in name.split("/") or not size.isdigit():
        raise BuildFailed(f"the Packages index has no usable Filename and Size for {stanza.get('Package', '?')}")
    out = dest / Path(name).name
    hasher = hashlib.sha256()
    try:
        with open(out, "wb") as fh:
            for chunk in _chunks(f"{mirror}/{name}", int(size), progress, Path(name).name):
                hasher.update(chunk)
                fh.write(chunk)
        if hasher.hexdigest() != stanza.get("SHA256"):
            raise BuildFailed(f"{name}: its sha256 does not match the Packages index")
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    return out


def deb_data(deb: Path) -> tarfile.TarFile:
    """The data.tar.* member of a .deb (an ar archive), opened as a tar."""
    import io

    blob = deb.read_bytes()
    if not blob.startswith(b"!<arch>\n"):
        raise BuildFailed(f"{deb}: not a .deb (no ar header)")
    pos = 8
    while pos + 60 <= len(blob):
        header = blob[pos:pos + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        body = blob[pos + 60:pos + 60 + size]
        if name.startswith("data.tar"):
            if name.endswith(".zst"):
                raise BuildFailed(f"{deb}: zstd-compressed data is not supported")
            return tarfile.open(fileobj=io.BytesIO(body), mode="r:*")
        pos += 60 + size + (size & 1)
    raise BuildFailed(f"{deb}: no data.tar member")
