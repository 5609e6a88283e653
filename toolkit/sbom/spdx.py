"""SPDX 2.3 documents of what is inside a static program (the program, each package its link took files from,
the compiler, the sources), written deterministically beside the binary and read back checked."""

# Our own small writer, sorted keys and stable SPDX IDs, `created` from SOURCE_DATE_EPOCH and a namespace derived
# from the content: the same inputs give the same bytes. spdx-tools, which the tests validate with, costs a
# second of imports that no build should pay.

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .. import __version__
from ..check import elf
from ..dates import rfc3339
from ..errors import InputError
from ..files import atomic_output, exclusive, regular_input, sha256
from . import links

NOASSERTION = "NOASSERTION"
MEDIA_TYPE = "application/spdx+json"
SUFFIX = ".spdx.json"
SUPPLIER_ENV = "FROMSCRATCH_SBOM_SUPPLIER"
# An SPDX document needs a namespace URI of its own; nothing is served there (.invalid is reserved for that).
NAMESPACE = "https://fromscratch.invalid/spdx"
ZIG_SUPPLIER = "Organization: Zig Software Foundation"
# What zig links from its own cache, by archive name: musl's and LLVM's runtimes built from the sources zig
# ships, and zig's own runtime (compiler-rt, its libc additions), which belongs to zig itself.
_ZIG_PARTS = {"libc.a": "musl", "crt1.o": "musl", "rcrt1.o": "musl", "Scrt1.o": "musl", "crti.o": "musl",
              "crtn.o": "musl", "libc++.a": "libc++", "libc++abi.a": "libc++abi", "libunwind.a": "libunwind",
              "libcompiler_rt.a": "zig", "libzigc.a": "zig", "libubsan_rt.a": "zig"}
# Maintainer fields naming a team rather than a person.
_TEAM = re.compile(r"\b(maintainers|team|developers|project|group|debian|ubuntu)\b", re.IGNORECASE)
_SAFE_ID = re.compile(r"[^A-Za-z0-9.-]+")
_SCAN_CHUNK = 1 << 20
# An SBOM read back (--sbom, <binary>.spdx.json, a kept or pushed one): a static program's is kilobytes (hello's is
# 5 KiB, each --src file adds half a KiB: 4 MiB is some 7,000 sources). Reading one and writing it again into the
# image's holds up to ~35 bytes of memory per byte (a file of empty objects), so the cap bounds that too.
MAX_BYTES = 4 << 20
# An SPDX 2 document nests five levels (document, packages, a package, its externalRefs, one of them); copying
# one and printing it indented spend Python frames per level, so a deep one is refused when read.
_MAX_DEPTH = 32
# A JSON escape of a UTF-16 surrogate (\ud800-\udfff): alone, it decodes to a str that cannot be written as UTF-8.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
# What a binary says of its making, where it says anything: glibc's banner (only when version.o is linked in)
# and the compilers' .comment entries.
_GLIBC_BANNER = re.compile(rb"GNU C Library \(([^)\n]{1,80})\) [a-z ]{0,30}release version ([0-9][0-9.]{0,15})")
_GCC_COMMENT = re.compile(rb"GCC: \(([^)\n]{1,80})\) ([0-9][0-9.]{0,15})")
_CLANG_COMMENT = re.compile(rb"clang version ([0-9][0-9.]{0,15})")


def supplier() -> str:
    """Who supplies the programs built here: FROMSCRATCH_SBOM_SUPPLIER ("Organization: ACME (sec@acme.example)"
    or "Person: ..."), else NOASSERTION: fromscratch cannot know it."""
    value = os.environ.get(SUPPLIER_ENV, "").strip()
    if not value:
        return NOASSERTION
    if not re.fullmatch(r"(Person|Organization): [^()\n]+( \([^()\n]*\))?", value):
        raise InputError(f"{SUPPLIER_ENV}={value!r} is not an SPDX supplier",
                         hint='e.g. "Organization: ACME (security@acme.example)" or "Person: Jane Doe"')
    return value


def spdx_id(kind: str, *words: str) -> str:
    """SPDXRef-<kind>-<words>, readable, with a short hash where the words needed changing to fit the ID's
    alphabet (libc++ and libc-- stay apart)."""
    text = "-".join(words)
    safe = _SAFE_ID.sub("-", text).strip("-")
    if safe != text:
        safe += "-" + hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"SPDXRef-{kind}-{safe}"


@dataclass(frozen=True)
class Package:
    """An SPDX package: the program, a component linked into it, a build tool, the sources, the image."""

    spdx_id: str
    name: str
    version: str
    supplier: str = NOASSERTION
    purl: str | None = None
    purpose: str | None = None  # APPLICATION, LIBRARY, SOURCE, CONTAINER, FILE...
    sha256: str | None = None
    summary: str | None = None
    comment: str | None = None
    gitoid: str | None = None  # gitoid:commit:sha1:<hex> of a repository's commit

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"SPDXID": self.spdx_id, "name": self.name, "versionInfo": self.version,
                               "supplier": self.supplier, "downloadLocation": NOASSERTION, "filesAnalyzed": False}
        refs = []
        if self.purl:
            refs.append({"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                         "referenceLocator": self.purl})
        if self.gitoid:
            refs.append({"referenceCategory": "PERSISTENT-ID", "referenceType": "gitoid",
                         "referenceLocator": self.gitoid})
        if refs:
            out["externalRefs"] = refs
        if self.purpose:
            out["primaryPackagePurpose"] = self.purpose
        if self.sha256:
            out["checksums"] = [{"algorithm": "SHA256", "checksumValue": self.sha256}]
        if self.summary:
            out["summary"] = self.summary
        if self.comment:
            out["comment"] = self.comment
        return out


@dataclass(frozen=True)
class File:
    """An SPDX file: a --src source, by the name the compiler saw."""

    spdx_id: str
    name: str
    sha1: str
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"SPDXID": self.spdx_id, "fileName": self.name, "fileTypes": ["SOURCE"],
                "checksums": [{"algorithm": "SHA1", "checksumValue": self.sha1},
                              {"algorithm": "SHA256", "checksumValue": self.sha256}]}


@dataclass(frozen=True)
class Relationship:
    element: str
    kind: str  # DESCRIBES, STATIC_LINK, GENERATED_FROM, BUILD_TOOL_OF, CONTAINS
    related: str
    comment: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = {"spdxElementId": self.element, "relationshipType": self.kind, "relatedSpdxElement": self.related}
        if self.comment:
            out["comment"] = self.comment
        return out


@dataclass
class Document:
    """What goes into one document, gathered in any order; to_bytes() sorts it."""

    name: str
    describes: list[str] = field(default_factory=list)
    packages: dict[str, Package] = field(default_factory=dict)
    files: dict[str, File] = field(default_factory=dict)
    relationships: set[Relationship] = field(default_factory=set)

    def add(self, element: Package | File) -> str:
        if isinstance(element, Package):
            self.packages[element.spdx_id] = element
        else:
            self.files[element.spdx_id] = element
        return element.spdx_id

    def relate(self, element: str, kind: str, related: str, comment: str | None = None) -> None:
        self.relationships.add(Relationship(element, kind, related, comment))

    def to_json(self, epoch: int) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT", "name": self.name,
            "creationInfo": creation_info(epoch),
            "packages": [self.packages[k].to_json() for k in sorted(self.packages)],
            "relationships": [Relationship("SPDXRef-DOCUMENT", "DESCRIBES", d).to_json() for d in self.describes]
            + [r.to_json() for r in sorted(self.relationships, key=_relationship_key)],
        }
        if self.files:
            doc["files"] = [self.files[k].to_json() for k in sorted(self.files)]
        return doc

    def to_bytes(self, epoch: int) -> bytes:
        return dumps(self.to_json(epoch))


def creation_info(epoch: int) -> dict[str, Any]:
    return {"created": rfc3339(epoch), "creators": [f"Tool: fromscratch-{__version__}"]}


def _relationship_key(r: Relationship) -> tuple[str, str, str, str]:
    return (r.element, r.kind, r.related, r.comment or "")


def dumps(doc: dict[str, Any]) -> bytes:
    """The document's bytes, its namespace named by a hash of everything else in it: the same content, the same
    namespace and bytes; other content, another namespace."""
    doc = {k: v for k, v in doc.items() if k != "documentNamespace"}
    digest = hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    doc["documentNamespace"] = f"{NAMESPACE}/{_SAFE_ID.sub('-', doc['name']).strip('-')}-{digest}"
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False).encode() + b"\n"


# --- who made what: suppliers and package URLs -----------------------------------------------------------------

def maintainer_supplier(maintainer: str) -> str:
    """A Debian Maintainer field as an SPDX supplier: a team as an Organization, anyone else as a Person."""
    name, _, rest = maintainer.partition("<")
    name, email = name.strip().replace("(", "").replace(")", ""), rest.rstrip(">").strip()
    if not name:
        return NOASSERTION
    kind = "Organization" if _TEAM.search(name) else "Person"
    return f"{kind}: {name} ({email})" if email else f"{kind}: {name}"


def deb_purl(pkg: links.DebPackage, os_id: str, os_version: str) -> str:
    """pkg:deb/<distribution>/<name>@<version>?arch=...&distro=<id>-<version>&upstream=<source>, as scanners
    match Debian and Ubuntu packages."""
    vendor = os_id or "debian"
    qualifiers = [("arch", pkg.arch)]
    if os_version:
        qualifiers.append(("distro", f"{vendor}-{os_version}"))
    if pkg.source and pkg.source != pkg.name:
        qualifiers.append(("upstream", pkg.source))
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in qualifiers)
    return f"pkg:deb/{vendor}/{quote(pkg.name, safe='')}@{quote(pkg.version, safe=':')}?{query}"


def deb_package(pkg: links.DebPackage, record: links.Record, purpose: str | None = None) -> Package:
    return Package(spdx_id("Package", "deb", pkg.name, pkg.arch), pkg.name, pkg.version,
                   maintainer_supplier(pkg.maintainer), deb_purl(pkg, record.os_id, record.os_version), purpose)


@dataclass(frozen=True)
class ZigBundle:
    """The zig that links zig builds (the ziglang package beside this Python), and the versions of the C
    libraries it ships as sources and compiles into its cache."""

    zig: str
    pypi: str  # the ziglang distribution's own version
    musl: str
    llvm: str  # libc++, libc++abi and libunwind come from one LLVM release

    def package(self, part: str) -> Package:
        if part == "zig":
            return Package(spdx_id("Package", "pypi", "ziglang"), "zig", self.zig, ZIG_SUPPLIER,
                           f"pkg:pypi/ziglang@{quote(self.pypi, safe='')}", "APPLICATION",
                           summary=f"zig {self.zig} (PyPI ziglang {self.pypi})")
        version = self.musl if part == "musl" else self.llvm
        return Package(spdx_id("Package", "zig", part), part, version, ZIG_SUPPLIER,
                       f"pkg:generic/{quote(part, safe='')}@{quote(version, safe='')}", "LIBRARY",
                       comment=f"{part} {version} as zig {self.zig} ships it (compiled from source into zig's "
                               "cache)")


@functools.cache
def zig_bundle() -> ZigBundle:
    """Read from the ziglang package: zig's version, musl's version.h, libc++'s _LIBCPP_VERSION (MMmmpp)."""
    from importlib import metadata

    spec = importlib.util.find_spec("ziglang")
    if spec is None or spec.origin is None:
        raise InputError("the ziglang package is not installed", hint="pip install 'fromscratch[zig]'")
    lib = Path(spec.origin).parent / "lib"
    proc = subprocess.run([sys.executable, "-m", "ziglang", "version"], capture_output=True, text=True)
    zig = proc.stdout.strip() or NOASSERTION
    musl = _define(lib / "libc/musl/src/internal/version.h", "VERSION").strip('"') or NOASSERTION
    code = _define(lib / "libcxx/include/__config", "_LIBCPP_VERSION")
    llvm = f"{int(code) // 10000}.{int(code) // 100 % 100}.{int(code) % 100}" if code.isdigit() else NOASSERTION
    return ZigBundle(zig, metadata.version("ziglang"), musl, llvm)


def _define(path: Path, name: str) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    found = re.search(rf"#\s*define\s+{re.escape(name)}\s+(\S+)", text)
    return found.group(1) if found else ""


# --- the program's document ----------------------------------------------------------------------------------

def sha256_file(path: Path) -> str:
    return sha256(path)[0]


def _digests(path: Path) -> tuple[str, str]:
    """SHA1 and SHA256 in one read: an SPDX file needs both."""
    sha1, sha2 = hashlib.sha1(usedforsecurity=False), hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_SCAN_CHUNK):
            sha1.update(chunk)
            sha2.update(chunk)
    return sha1.hexdigest(), sha2.hexdigest()


def source_files(base: Path, names: Sequence[str]) -> list[File]:
    """--src files by the names the compiler saw (relative to base), with their SHA1 and SHA256."""
    out = []
    for name in names:
        sha1, sha2 = _digests(base / name)
        out.append(File(spdx_id("File", name, sha2[:8]), f"./{name}", sha1, sha2))
    return out


def source_tree(root: Path, skip: Path | None = None) -> Package:
    """A project directory: its git commit when it is a repository (noting uncommitted changes), and always a
    sha256 over its files (path, execute bit, content; .git and skip left out)."""
    digest = tree_digest(root, skip)
    commit, dirty = _git_commit(root)
    note = (f"the files of {root.name}: sha256 {digest} over each file's path, execute bit and content "
            "(.git and the output directory left out)")
    if commit and dirty:
        note += f"; git commit {commit} with uncommitted changes"
    return Package(spdx_id("Source", root.name), root.name, commit or f"sha256:{digest[:16]}", purpose="SOURCE",
                   comment=note, gitoid=f"gitoid:commit:sha1:{commit}" if commit and len(commit) == 40 else None)


def tree_digest(root: Path, skip: Path | None = None) -> str:
    sha = hashlib.sha256()
    skip_real = os.path.realpath(skip) if skip else None
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != ".git"
                             and os.path.realpath(os.path.join(dirpath, d)) != skip_real)
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            if os.path.islink(path):
                sha.update(f"{rel}\0link\0{os.readlink(path)}\n".encode())
            elif os.path.isfile(path):
                mode = "x" if os.access(path, os.X_OK) else "-"
                sha.update(f"{rel}\0{mode}\0{sha256_file(Path(path))}\n".encode())
    return sha.hexdigest()


def _git_commit(root: Path) -> tuple[str | None, bool]:
    if not (root / ".git").exists():
        return None, False
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True)
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain"], capture_output=True, text=True)
    except OSError:  # no git on this machine
        return None, False
    if head.returncode != 0 or not re.fullmatch(r"[0-9a-f]{40,64}", head.stdout.strip()):
        return None, False
    return head.stdout.strip(), bool(status.stdout.strip())


def program(binary: Path, name: str, platform: str, libc: str | None, how: str = "") -> Package:
    """The program itself: its name, sha256 (a version derived from it) and platform."""
    digest = sha256_file(binary)
    libc_words = {"glibc": ", glibc", "musl": ", musl", "none": ", no libc"}.get(libc or "", "")
    return Package(spdx_id("Program", name), name, f"sha256:{digest[:16]}", supplier(),
                   purpose="APPLICATION", sha256=digest,
                   summary=f"a static Linux executable for {platform}{libc_words}{how}")


def program_document(binary: Path, name: str, platform: str, facts: elf.ElfFacts, record: links.Record | None,
                     sources: Sequence[Package | File], epoch: int) -> bytes:
    """The document of a program built here (binary, to be called name): what its link took, by package, the
    compiler, the sources."""
    doc = Document(f"{name} {platform}")
    prog = doc.add(program(binary, name, platform, facts.libc))
    doc.describes.append(prog)
    for source in sources:
        doc.relate(prog, "GENERATED_FROM", doc.add(source))
    if record is None or not record.seen:  # linked behind the wrappers' back: say what the binary shows
        _from_binary(doc, prog, binary, facts)
        return doc.to_bytes(epoch)
    zig = zig_bundle() if record.linker == links.ZIG else None
    for package, inputs in _linked(record, zig):
        doc.add(package)
        taken = ", ".join(f"{i.path}{f' (sha256 {i.sha256})' if i.sha256 else ''}" for i in inputs)
        doc.relate(prog, "STATIC_LINK", package.spdx_id, f"linked from {taken}")
    tool = _compiler(record, zig)
    if tool is not None:
        doc.relate(doc.add(tool), "BUILD_TOOL_OF", prog)
    return doc.to_bytes(epoch)


def _linked(record: links.Record, zig: ZigBundle | None) -> list[tuple[Package, list[links.Input]]]:
    """Each package the link took files from, with those files: dpkg's owner; for zig, the part of zig's
    bundle; an archive nobody owns as itself. Objects nobody owns are the program's own."""
    groups: dict[str, tuple[Package, list[links.Input]]] = {}
    for item in record.inputs:
        if item.owner is not None:
            package = deb_package(item.owner, record, "LIBRARY")
        elif zig is not None and os.path.basename(item.path) in _ZIG_PARTS:
            package = zig.package(_ZIG_PARTS[os.path.basename(item.path)])
        elif item.kind == "archive":
            name = os.path.basename(item.path)
            package = Package(spdx_id("Archive", name, (item.sha256 or "")[:8]), name,
                              f"sha256:{(item.sha256 or '')[:16]}" if item.sha256 else NOASSERTION,
                              purpose="LIBRARY", sha256=item.sha256,
                              comment=f"{item.path}: a static archive no package manager on the build machine "
                                      "knows")
        else:
            continue
        groups.setdefault(package.spdx_id, (package, []))[1].append(item)
    return [(package, sorted(inputs, key=lambda i: (i.kind != "archive", i.path)))
            for package, inputs in (groups[k] for k in sorted(groups))]


def _compiler(record: links.Record, zig: ZigBundle | None) -> Package | None:
    if zig is not None:
        return zig.package("zig")
    if record.compiler is None:
        return None
    what = f"{record.compiler} {record.compiler_version or ''}".strip()
    if record.compiler_owner is not None:
        package = deb_package(record.compiler_owner, record, "APPLICATION")
        return Package(package.spdx_id, package.name, package.version, package.supplier, package.purl,
                       package.purpose, summary=f"the compiler: {what}")
    return Package(spdx_id("Tool", record.compiler), record.compiler, record.compiler_version or NOASSERTION,
                   purpose="APPLICATION", summary=f"the compiler: {what}")


# --- a binary built elsewhere: what it shows of itself -------------------------------------------------------

def minimal_document(binary: Path, platform: str, facts: elf.ElfFacts, epoch: int) -> bytes:
    """For a binary with no SBOM beside it: the program, its libc as verify tells it (glibc's version where the
    binary carries glibc's banner) and the compiler its .comment names."""
    doc = Document(f"{binary.name} {platform}")
    prog = doc.add(program(binary, binary.name, platform, facts.libc, how="; built elsewhere, described from the "
                                                                          "binary"))
    doc.describes.append(prog)
    _from_binary(doc, prog, binary, facts)
    return doc.to_bytes(epoch)


def _from_binary(doc: Document, prog: str, binary: Path, facts: elf.ElfFacts) -> None:
    shown = _scan(binary, (_GLIBC_BANNER, _GCC_COMMENT, _CLANG_COMMENT))
    gcc, clang = shown.get(_GCC_COMMENT), shown.get(_CLANG_COMMENT)
    if facts.libc in ("glibc", "musl"):
        version, said = NOASSERTION, "verify finds its code in the binary; the binary does not carry its version"
        banner = shown.get(_GLIBC_BANNER)
        if facts.libc == "glibc" and banner:
            version = banner.group(2).decode()
            said = f"the binary carries glibc's banner: {banner.group(1).decode(errors='replace')}, release {version}"
        who, why = _libc_supplier(facts.libc, banner, gcc)
        doc.relate(prog, "STATIC_LINK", doc.add(Package(spdx_id("Libc", facts.libc), facts.libc, version, who,
                                                        purpose="LIBRARY", comment=f"{said}; supplier: {why}")))
    if gcc or clang:
        name = "gcc" if gcc else "clang"
        found = gcc.group(2) if gcc else clang.group(1)  # type: ignore[union-attr]
        said = f"named in the binary's .comment: {found.decode()}" + (f" ({gcc.group(1).decode()})" if gcc else "")
        distribution = _distribution(gcc)
        who = f"Organization: {distribution}" if distribution else NOASSERTION
        doc.relate(doc.add(Package(spdx_id("Tool", name), name, found.decode(), who, purpose="APPLICATION",
                                   comment=said)), "BUILD_TOOL_OF", prog)


# Who made a libc, when the binary names no distribution that shipped it: its upstream, the package's originator
UPSTREAM = {"glibc": "Organization: GNU Project", "musl": "Organization: musl libc project"}
DISTRIBUTIONS = ("Debian", "Ubuntu")


def _libc_supplier(libc: str, banner: re.Match[bytes] | None, gcc: re.Match[bytes] | None) -> tuple[str, str]:
    """The libc's supplier and how it is known: the distribution in glibc's banner; else the one whose gcc the
    .comment names, since a distribution's gcc links that distribution's libc (glibc, or musl through its
    musl-gcc); else the upstream project."""
    for match, how in ((banner, "named in glibc's banner"),
                       (gcc, "the binary's .comment names {d}'s gcc, which links {d}'s " + libc)):
        if d := _distribution(match):
            return f"Organization: {d}", how.format(d=d)
    return UPSTREAM[libc], "its upstream project: the binary names no distribution that shipped it"


def _distribution(match: re.Match[bytes] | None) -> str | None:
    """The distribution a banner's or a .comment's parenthesis names ("Debian 12.2.0-14"), if one we know."""
    said = match.group(1).decode(errors="replace") if match else ""
    return next((d for d in DISTRIBUTIONS if d in said), None)


def _scan(path: Path, patterns: Iterable[re.Pattern[bytes]]) -> dict[re.Pattern[bytes], re.Match[bytes]]:
    """The first match of each pattern in the file, read in overlapping chunks (a binary of any size)."""
    found: dict[re.Pattern[bytes], re.Match[bytes]] = {}
    wanted = list(patterns)
    tail = b""
    with open(path, "rb") as fh:
        while len(found) < len(wanted) and (chunk := fh.read(_SCAN_CHUNK)):
            window = tail + chunk
            for p in wanted:
                if p not in found and (m := p.search(window)):
                    found[p] = m
            tail = window[-256:]
    return found


# --- reading a document back -------------------------------------------------------------------------------

def sbom_path(binary: Path) -> Path:
    return binary.with_name(binary.name + SUFFIX)


@contextlib.contextmanager
def naming(binary: Path) -> Iterator[None]:
    """Hold binary's lock while its SBOM and then the binary itself take their names: builds racing to one
    output leave a binary and the SBOM that describes it, whichever finishes last."""
    key = hashlib.sha256(os.path.realpath(binary).encode()).hexdigest()[:16]
    with exclusive(f"output-{key}", waiting=f"waiting for another build that is writing {binary}"):
        yield


def write_beside(binary: Path, data: bytes) -> Path:
    """<binary>.spdx.json, written whole or not at all."""
    path = sbom_path(binary)
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)
    return path


def load(path: Path, what: str = "--sbom") -> dict[str, Any]:
    """An SPDX 2.x JSON document from a file, checked as parse() checks one; its size is checked before it is
    read, and no more than MAX_BYTES + 1 bytes are read however it grows meanwhile."""
    regular_input(path, "SPDX document")
    where = f"{what} {path}"
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > MAX_BYTES:
                raise _too_big(where, size)
            data = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise InputError(f"{where}: cannot read it ({exc.strerror or exc})") from None
    return parse(data, where)


def parse(data: bytes, what: str) -> dict[str, Any]:
    """An SPDX 2.x JSON document from its bytes (a file, a kept or pushed artifact): at most MAX_BYTES of UTF-8
    JSON, nested at most _MAX_DEPTH deep, of the types SPDX gives every field the toolkit reads; anything else
    is one InputError naming what is wrong."""
    if len(data) > MAX_BYTES:
        raise _too_big(what)
    try:
        text = data.decode("utf-8-sig")  # RFC 8259 JSON between systems is UTF-8; a BOM may be ignored
    except UnicodeDecodeError as exc:
        raise InputError(f"{what}: not UTF-8 text (byte {data[exc.start]:#04x} at offset {exc.start})") from None
    try:
        doc = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise _too_deep(what) from None
    except ValueError as exc:
        raise InputError(f"{what}: not an SPDX JSON document ({_first_line(exc)})") from None
    _check_depth(doc, what)
    if _SURROGATE_ESCAPE.search(text):  # only an escape can make one; UTF-8 decoding refuses them raw
        try:
            json.dumps(doc, ensure_ascii=False).encode()
        except UnicodeEncodeError as exc:
            raise InputError(f"{what}: a string holds {exc.object[exc.start]!r}, half of a UTF-16 surrogate pair, "
                             "which is not text") from None
    return _checked(doc, what)


def _too_big(what: str, size: int | None = None) -> InputError:
    has = f"{size:,} bytes, " if size is not None else ""
    return InputError(f"{what}: {has}over the {MAX_BYTES >> 20} MiB an SBOM read back may be",
                      hint="a static program's SBOM is a few KiB: give the one written with the binary")


def _too_deep(what: str) -> InputError:
    return InputError(f"{what}: nested more than {_MAX_DEPTH} levels deep, which no SPDX document is")


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value")


def _check_depth(doc: Any, what: str) -> None:
    """Level by level, without recursion: the containers at each depth, until none or too deep."""
    level = [doc] if isinstance(doc, (dict, list)) else []
    for _ in range(_MAX_DEPTH):
        level = [c for v in level for c in (v.values() if isinstance(v, dict) else v) if isinstance(c, (dict, list))]
        if not level:
            return
    raise _too_deep(what)


def _checked(doc: Any, what: str) -> dict[str, Any]:
    """doc, if it is an SPDX 2 document whose fields the toolkit reads have SPDX's types."""
    if not isinstance(doc, dict):
        raise InputError(f"{what}: not an SPDX 2 JSON document (its top level is {_kind(doc)}, not an object)")
    if not str(doc.get("spdxVersion", "")).startswith("SPDX-2.") or doc.get("SPDXID") != "SPDXRef-DOCUMENT":
        raise InputError(f"{what}: not an SPDX 2 JSON document (no spdxVersion SPDX-2.x and SPDXRef-DOCUMENT)")
    _conform(doc, _DOCUMENT, "", what)
    return doc


@dataclass(frozen=True)
class _Shape:
    """The fields of an object the toolkit reads: each a type, [a spec] for an array of those, or a _Shape;
    required are those SPDX 2.3 makes mandatory. Fields not named pass through unread."""

    required: dict[str, Any]
    optional: dict[str, Any] = field(default_factory=dict)


_CHECKSUM = _Shape({"algorithm": str, "checksumValue": str})
_DOCUMENT = _Shape({"spdxVersion": str, "SPDXID": str}, {
    "name": str,
    "documentDescribes": [str],
    "packages": [_Shape({"SPDXID": str, "name": str}, {"versionInfo": str, "checksums": [_CHECKSUM]})],
    "files": [_Shape({"SPDXID": str, "fileName": str}, {"checksums": [_CHECKSUM]})],
    "relationships": [_Shape({"spdxElementId": str, "relationshipType": str, "relatedSpdxElement": str},
                             {"comment": str})],
})
_JSON_KINDS = ((type(None), "null"), (bool, "a boolean"), ((int, float), "a number"), (str, "a string"),
               (list, "an array"), (dict, "an object"))


def _kind(value: Any) -> str:
    return next(name for types, name in _JSON_KINDS if isinstance(value, types))


def _conform(value: Any, spec: Any, where: str, what: str) -> None:
    """value has spec's type, else one InputError naming the field (packages[3].SPDXID) and what it is."""
    if isinstance(spec, _Shape):
        if not isinstance(value, dict):
            raise InputError(f"{what}: {where} is {_kind(value)}, not an object")
        for name in spec.required:
            if name not in value:
                raise InputError(f"{what}: {where + '.' if where else ''}{name} is missing")
        for name, inner in (spec.required | spec.optional).items():
            if name in value:
                _conform(value[name], inner, f"{where + '.' if where else ''}{name}", what)
    elif isinstance(spec, list):
        if not isinstance(value, list):
            raise InputError(f"{what}: {where} is {_kind(value)}, not an array")
        for i, item in enumerate(value):
            _conform(item, spec[0], f"{where}[{i}]", what)
    elif not isinstance(value, spec):
        raise InputError(f"{what}: {where} is {_kind(value)}, not {_kind(spec())}")


def described(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The packages the document DESCRIBES (documentDescribes, the older way, too)."""
    ids = [r.get("relatedSpdxElement") for r in doc.get("relationships", [])
           if r.get("spdxElementId") == "SPDXRef-DOCUMENT" and r.get("relationshipType") == "DESCRIBES"]
    ids += doc.get("documentDescribes", [])
    return [p for p in doc.get("packages", []) if isinstance(p, dict) and p.get("SPDXID") in ids]


def sha256_of(package: dict[str, Any]) -> str | None:
    for c in package.get("checksums", []) or []:
        if isinstance(c, dict) and c.get("algorithm") == "SHA256":
            return str(c.get("checksumValue", "")).lower()
    return None


def for_binary(doc: dict[str, Any], binary: Path, what: str) -> dict[str, Any]:
    """The package of doc that is binary, by its sha256: an SBOM of another file is refused."""
    actual = sha256_file(binary)
    recorded = [sha256_of(p) for p in described(doc)]
    if actual in recorded:
        return next(p for p in described(doc) if sha256_of(p) == actual)
    if not any(recorded):
        raise InputError(f"{what} records no sha256 of the program it describes, so it cannot be tied to {binary}",
                         hint="give the SBOM written with the binary, or --sbom none")
    raise InputError(f"{what} describes another file (sha256 {next(r for r in recorded if r)[:16]}...), "
                     f"not {binary} (sha256 {actual[:16]}...)",
                     hint="rebuild to write a new one, give the right one with --sbom FILE, or --sbom none")


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
