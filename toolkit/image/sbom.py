"""The image's SBOM: the program's SPDX document (written with the binary, given with --sbom, or made from the
binary itself) with the image and its other files added, attached to each platform's manifest as an OCI 1.1
artifact; and SBOMs read back, from a binary, the local store or a registry, for `invoke sbom`."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .. import command
from ..check import elf
from ..errors import InputError, ToolkitError
from ..files import regular_input, scratch_dir, sha256
from ..sbom import links, read, records, spdx, suppliers
from ..sbom.program import minimal_document
from ..sbom.sources import tree_digest
from . import oci, runtime
from . import scratch as img

ARTIFACT_TYPE = spdx.MEDIA_TYPE
IMAGE_ID = "SPDXRef-fromscratch-Image"
# The CA bundle is made by update-ca-certificates from the certificates this directory's package ships.
_CA_SOURCES = "/usr/share/ca-certificates"


@dataclass(frozen=True)
class Choice:
    """What --sbom says: the SBOM beside each binary (auto), one file, or none."""

    mode: str  # auto, file, none
    path: Path | None = None


def choose(text: str | None, binaries: int) -> Choice:
    """--sbom FILE|none, checked before anything is built: a missing or non-SPDX file is refused here."""
    if text is None:
        return Choice("auto")
    if text == "none":
        return Choice("none")
    if binaries > 1:
        raise InputError("--sbom FILE names one binary's SBOM; an image of several platforms has one per binary",
                         hint="keep each binary's <binary>.spdx.json beside it, or give --sbom none")
    read.load(Path(text))
    return Choice("file", Path(text))


@dataclass(frozen=True)
class Program:
    """The program's document and which of its packages is the binary."""

    doc: dict[str, Any]
    package_id: str
    origin: str  # where it came from, in the user's words


def for_program(binary: Path, choice: Choice, platform: str, facts: elf.ElfFacts, epoch: int, *,
                supplier: str, built_here: bool = False) -> Program | None:
    """The program's SBOM: --sbom FILE, else <binary>.spdx.json, else one made from what the binary shows (naming
    supplier as the program's); an SBOM of another file is refused. built_here: the build of this task wrote
    binary and its SBOM together (under the lock of their names), so the program is the package the SBOM
    describes, taken as written: the binary is not hashed again to find it."""
    if choice.mode == "none":
        return None
    path = choice.path if choice.path is not None else spdx.sbom_path(binary)
    if choice.mode == "file" or path.exists():
        what = "--sbom" if choice.mode == "file" else "the SBOM"
        doc = read.load(path, what)
        described = read.described(doc) if built_here and choice.mode == "auto" else []
        package = described[0] if len(described) == 1 else read.for_binary(doc, binary, f"{what} {path}")
        return Program(doc, str(package["SPDXID"]), path.name)
    doc = json.loads(minimal_document(binary, platform, facts, epoch, supplier=supplier))
    return Program(doc, read.described(doc)[0]["SPDXID"], f"made from the binary (no {path.name} beside it)")


# --- the image's other files, and where they came from --------------------------------------------------------

@dataclass(frozen=True)
class Extra:
    """A file or tree the image holds besides the program, and the host path it came from."""

    dest: str  # in the image, no leading slash
    source: Path
    pypi: str | None = None  # the Python distribution it came from (certifi, tzdata)
    hint: str | None = None  # a host path whose package made this file


def extras(opts: img.Options) -> list[Extra]:
    """What --ca-certs, --tzdata and --add put in the image."""
    out = []
    if opts.ca_certs:
        bundle = img.ca_bundle()
        host = bundle == img.HOST_CA_BUNDLE
        out.append(Extra("etc/ssl/certs/ca-certificates.crt", bundle, None if host else "certifi",
                         _CA_SOURCES if host else None))
    if opts.tzdata:
        zoneinfo = img.zoneinfo_dir()
        out.append(Extra("usr/share/zoneinfo", zoneinfo, None if zoneinfo == img.HOST_ZONEINFO else "tzdata"))
    out += [Extra(add.dest, add.source) for add in opts.adds]
    return out


@dataclass(frozen=True)
class Contained:
    """An image content as a package, with what of it the image holds."""

    package: spdx.Package
    comment: str


def resolve(found: Sequence[Extra], supplier: str) -> list[Contained]:
    """Each extra as a package: the host package that owns it (dpkg, asked the way a link's inputs are), the
    Python distribution it came from, else itself (the user's own file, supplied by supplier, the program's)."""
    if not found:
        return []
    record = _host_record([str(e.source.resolve()) for e in found] + [e.hint for e in found if e.hint])
    owners = {i.path: i.owner for i in record.inputs} | {i.real: i.owner for i in record.inputs}
    out = []
    for extra in found:
        digest = sha256(extra.source)[0] if extra.source.is_file() else None  # once, for both uses
        where = _describe(extra, digest)
        owner = owners.get(str(extra.source.resolve())) or (owners.get(extra.hint) if extra.hint else None)
        if owner is not None:
            how = "made by update-ca-certificates from" if extra.hint else "from"
            out.append(Contained(suppliers.deb_package(owner, record, "FILE"),
                                 f"{where}, {how} the host's {owner.name}"))
        elif extra.pypi:
            out.append(Contained(_pypi(extra.pypi), f"{where}, from the Python package {extra.pypi}"))
        else:
            version = digest or tree_digest(extra.source)
            out.append(Contained(spdx.Package(spdx.spdx_id("Added", extra.dest), f"/{extra.dest}",
                                              f"sha256:{version[:16]}", supplier, purpose="FILE",
                                              sha256=digest),
                                 f"{where}, added with --add"))
    return out


def debian_contents(added: Sequence[runtime.Added]) -> list[Contained]:
    """The Debian packages the run-time files came from (terminfo, locale...), each with what of it the image
    holds."""
    out = []
    for kind in added:
        for pkg in kind.packages:
            deb = records.DebPackage(pkg.package, pkg.version, pkg.arch, pkg.source, pkg.version, pkg.maintainer)
            record = records.Record(os_id="debian", os_version=pkg.os_version)
            out.append(Contained(suppliers.deb_package(deb, record, "FILE"),
                                 f"{kind.kind} ({', '.join(kind.names)}) from Debian's {pkg.package}"))
    return out


def _describe(extra: Extra, digest: str | None) -> str:
    if digest is not None:
        return f"/{extra.dest} (sha256 {digest})"
    count = sum(len(names) for _, _, names in os.walk(extra.source))
    return f"/{extra.dest} ({count} files)"


def _host_record(paths: Sequence[str]) -> records.Record:
    """fs_resolve run on this machine for paths: their owners, as for a native link."""
    with tempfile.TemporaryDirectory(prefix="fromscratch-owners-", dir=scratch_dir()) as tmp:
        trace = Path(tmp) / "trace"
        trace.write_text("".join(f"file {p}\n" for p in paths))
        try:
            proc = subprocess.run(links.argv("fs_resolve", str(trace)), capture_output=True, text=True)
        except OSError:  # no sh (a Windows host): no package is known, each file stands for itself
            return records.Record()
    return records.parse(proc.stdout)


def _pypi(name: str) -> spdx.Package:
    from importlib import metadata  # ~30 ms to import: only a PyPI package's description needs it

    meta = metadata.metadata(name).json
    who = str(meta.get("author") or meta.get("maintainer") or "")
    email = str(meta.get("author_email") or meta.get("maintainer_email") or "")
    supplier = suppliers.maintainer_supplier(f"{who} <{email}>" if email else who) if who else spdx.NOASSERTION
    version = str(meta["version"])
    return spdx.Package(spdx.spdx_id("Package", "pypi", name), name, version, supplier,
                        f"pkg:pypi/{quote(name, safe='')}@{quote(version, safe='')}", "FILE")


# --- the image's document and its artifact -------------------------------------------------------------------

def image_purl(ref: str, manifest: oci.Descriptor, platform: str) -> str:
    """pkg:oci/<name>@<manifest digest>?arch=...&repository_url=...&tag=..., the package URL of an image."""
    repository, _, tag = ref.rpartition(":")
    name = repository.rsplit("/", 1)[-1]
    arch = platform.split("/")[1] if platform.count("/") else platform
    query = [("arch", arch)]
    if "/" in repository:
        query.append(("repository_url", repository))
    query.append(("tag", tag))
    return (f"pkg:oci/{quote(name, safe='')}@{quote(manifest.digest, safe='')}?"
            + "&".join(f"{k}={quote(v, safe='/')}" for k, v in query))


def image_document(program: Program, ref: str, platform: str, manifest: oci.Descriptor,
                   contents: Sequence[Contained], epoch: int, *, supplier: str) -> bytes:
    """The program's document with the image (supplied by supplier) as what it describes: the image CONTAINS the
    program and each of its other files' packages."""
    doc = dict(program.doc)  # only its top level changes: a deep copy would double a large SBOM's memory
    doc.pop("documentDescribes", None)
    repository, _, tag = ref.rpartition(":")
    image = spdx.Package(IMAGE_ID, repository, tag, supplier, image_purl(ref, manifest, platform),
                         "CONTAINER", summary=f"a FROM scratch image for {platform}")
    packages = {p["SPDXID"]: p for p in doc.get("packages", [])}
    relationships = [r for r in doc.get("relationships", [])
                     if not (r.get("spdxElementId") == "SPDXRef-DOCUMENT" and r.get("relationshipType") == "DESCRIBES")]
    packages[IMAGE_ID] = image.to_json()
    relationships.append(spdx.Relationship(IMAGE_ID, "CONTAINS", program.package_id, "the program").to_json())
    for content in contents:
        packages[content.package.spdx_id] = content.package.to_json()
        relationships.append(spdx.Relationship(IMAGE_ID, "CONTAINS", content.package.spdx_id,
                                               content.comment).to_json())
    doc.update({
        "name": f"{ref} {platform}",
        "creationInfo": spdx.creation_info(epoch),
        "packages": [packages[k] for k in sorted(packages)],
        "relationships": [spdx.Relationship("SPDXRef-DOCUMENT", "DESCRIBES", IMAGE_ID).to_json()]
        + sorted(relationships, key=lambda r: json.dumps(r, sort_keys=True)),
    })
    return spdx.dumps(doc)


def attach(built: img.Built, program: Program, ref: str, contents: Sequence[Contained], name: str,
           epoch: int, *, supplier: str) -> oci.Artifact:
    """The image's SBOM as an artifact whose subject is the platform's manifest."""
    data = image_document(program, ref, built.image.platform, built.image.manifest_desc, contents, epoch,
                          supplier=supplier)
    return oci.artifact(built.image.manifest_desc, ARTIFACT_TYPE, data, f"{name}{spdx.SUFFIX}", epoch)


# --- reading SBOMs back --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Shown:
    """One document to show, and where it came from."""

    title: str
    doc: dict[str, Any]


def of_binary(binary: Path, supplier: str) -> Shown:
    """A binary's SBOM: the one beside it, else one made from what it shows (naming supplier as the program's)."""
    facts = elf.read(str(regular_input(binary, "binary")))
    if not facts.is_elf:
        raise InputError(f"{binary}: {facts.describe}, not an ELF program")
    program = for_program(binary, Choice("auto"), img.platform_of(facts).platform, facts, 0, supplier=supplier)
    assert program is not None
    return Shown(f"{binary} ({program.origin})", program.doc)


def from_artifacts(artifacts: Sequence[oci.Artifact], where: str) -> list[Shown]:
    out = []
    for a in artifacts:
        if a.descriptor.artifact_type != ARTIFACT_TYPE:
            continue
        doc = read.parse(a.blob, f"the SBOM {a.descriptor.digest} {where}")
        out.append(Shown(f"{doc.get('name', '?')} (SBOM {a.descriptor.digest[:19]}, {where})", doc))
    return out


def of_remote(local: str, insecure: bool = False) -> list[Shown]:
    """The SBOMs that refer to each platform manifest of an image in a registry."""
    from . import referrers, registry

    ref = registry.parse_reference(local)
    found = referrers.fetch(ref, registry.client(ref, insecure or None), ARTIFACT_TYPE)
    shown = from_artifacts([a for _, a in found], f"from {ref.registry}")
    if not shown:
        raise ToolkitError(f"no SBOM refers to {ref} in its registry",
                           hint=f"{command.line('push --tag ' + local)} pushes the one "
                                f"{command.line('image')} attached")
    return shown


def of_local_image(ref: str) -> list[Shown]:
    """The SBOMs kept for an image made here: a multi-platform one in the store, else the engine's."""
    from ..engine import client as engine
    from . import store

    images = store.find(ref)
    ids = [i.image_id for i in images] if images is not None else []
    if images is None:
        attrs = engine.images().inspect(ref)
        if attrs is None:
            raise InputError(f"no image {ref} in the local store or the engine",
                             hint=f"make it with {command.line('image --tag ' + ref)}")
        ids = [attrs["Id"]]
    shown = [s for i in ids for s in from_artifacts(store.referrers(ref, i), f"kept by {command.line('image')}")]
    if not shown:
        raise ToolkitError(f"no SBOM is kept for {ref}",
                           hint=f"{command.line('image')} attaches one unless --sbom none; push an image made "
                                "elsewhere and read it with --remote")
    return shown


# --- the table -----------------------------------------------------------------------------------------------

def rows(doc: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(package, version, how it got in) for every package and file of a document."""
    how: dict[str, list[str]] = {}
    for r in doc.get("relationships", []):
        kind, a, b, note = (r.get("relationshipType"), r.get("spdxElementId"), r.get("relatedSpdxElement"),
                            r.get("comment") or "")
        if kind == "DESCRIBES":
            how.setdefault(b, []).append("described")
        elif kind == "STATIC_LINK":
            taken = [os.path.basename(p.split(" (")[0]) for p in note.removeprefix("linked from ").split(", ")]
            how.setdefault(b, []).append("static link: " + ", ".join(t for t in taken if t))
        elif kind == "CONTAINS":
            how.setdefault(b, []).append("program" if note == "the program" else f"file: {note.split(' (')[0]}")
        elif kind == "BUILD_TOOL_OF":
            how.setdefault(a, []).append("build tool")
        elif kind == "GENERATED_FROM":
            how.setdefault(b, []).append("source")
    out = []
    for p in doc.get("packages", []):
        out.append((p.get("name", "?"), p.get("versionInfo", spdx.NOASSERTION),
                    "; ".join(how.get(p.get("SPDXID"), [])) or "-"))
    for f in doc.get("files", []):
        sha = next((c["checksumValue"] for c in f.get("checksums", []) if c.get("algorithm") == "SHA256"), "")
        out.append((f.get("fileName", "?").removeprefix("./"), f"sha256:{sha[:16]}" if sha else "-",
                    "; ".join(how.get(f.get("SPDXID"), [])) or "-"))
    order = {"described": 0, "program": 1, "static": 2, "file": 3, "build": 4, "source": 5}
    return sorted(out, key=lambda r: (order.get(r[2].split(" ")[0].split(":")[0], 6), r[0]))


def render(shown: Sequence[Shown]) -> str:
    blocks = []
    for s in shown:
        table = [("PACKAGE", "VERSION", "HOW IT GOT IN"), *rows(s.doc)]
        widths = [max(len(r[i]) for r in table) for i in range(2)]
        lines = [s.title] + [f"  {a:<{widths[0]}}  {b:<{widths[1]}}  {c}" for a, b, c in table]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def to_json(shown: Sequence[Shown]) -> str:
    """One document as itself; several (one per platform) as a list."""
    docs = [s.doc for s in shown]
    return json.dumps(docs[0] if len(docs) == 1 else docs, indent=2, sort_keys=True, ensure_ascii=False)
