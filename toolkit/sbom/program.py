"""The document of one program: the program itself, what its link took by package, the compiler and the sources
when it was built here; its libc and compiler as the binary shows them when it was built elsewhere."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..check import elf
from ..files import sha256
from . import links, records, shown
from .spdx import NOASSERTION, Document, File, Package, spdx_id
from .suppliers import ZigBundle, deb_package, upstream, zig_bundle


def program(binary: Path, name: str, platform: str, libc: str | None, supplier: str, how: str = "") -> Package:
    """The program itself: its name, sha256 (a version derived from it), platform and supplier."""
    digest = sha256(binary)[0]
    libc_words = {"glibc": ", glibc", "musl": ", musl", "none": ", no libc"}.get(libc or "", "")
    return Package(spdx_id("Program", name), name, f"sha256:{digest[:16]}", supplier,
                   purpose="APPLICATION", sha256=digest,
                   summary=f"a static Linux executable for {platform}{libc_words}{how}")


def program_document(binary: Path, name: str, platform: str, facts: elf.ElfFacts, record: records.Record | None,
                     sources: Sequence[Package | File], epoch: int, *, supplier: str) -> bytes:
    """The document of a program built here (binary, to be called name, supplied by supplier): what its link
    took, by package, the compiler, the sources."""
    doc = Document(f"{name} {platform}")
    prog = doc.add(program(binary, name, platform, facts.libc, supplier))
    doc.describes.append(prog)
    for source in sources:
        doc.built_from(prog, source)
    if record is None or not record.seen:  # linked behind the wrappers' back: say what the binary shows
        shown.add(doc, prog, binary, facts)
        return doc.to_bytes(epoch)
    zig = zig_bundle() if record.linker == links.ZIG else None
    for package, inputs in _linked(record, zig):
        doc.add(package)
        taken = ", ".join(f"{i.path}{f' (sha256 {i.sha256})' if i.sha256 else ''}" for i in inputs)
        doc.relate(prog, "STATIC_LINK", package.spdx_id, f"linked from {taken}")
    tool = _compiler(record, zig)
    if tool is not None:
        doc.built_with(prog, tool)
    return doc.to_bytes(epoch)


def minimal_document(binary: Path, platform: str, facts: elf.ElfFacts, epoch: int, *, supplier: str) -> bytes:
    """For a binary with no SBOM beside it: the program, its libc as verify tells it (glibc's version where the
    binary carries glibc's banner) and the compiler its .comment names."""
    doc = Document(f"{binary.name} {platform}")
    prog = doc.add(program(binary, binary.name, platform, facts.libc, supplier,
                           how="; built elsewhere, described from the binary"))
    doc.describes.append(prog)
    shown.add(doc, prog, binary, facts)
    return doc.to_bytes(epoch)


def _linked(record: records.Record, zig: ZigBundle | None) -> list[tuple[Package, list[records.Input]]]:
    """Each package the link took files from, with those files: dpkg's owner; for zig, the part of zig's
    bundle; an archive nobody owns as itself. Objects nobody owns are the program's own."""
    groups: dict[str, tuple[Package, list[records.Input]]] = {}
    for item in record.inputs:
        if item.owner is not None:
            package = deb_package(item.owner, record, "LIBRARY")
        elif zig is not None and (part := zig.owning(item.path)) is not None:
            package = part
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


def _compiler(record: records.Record, zig: ZigBundle | None) -> Package | None:
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
                   upstream(record.compiler), purpose="APPLICATION",
                   summary=f"the compiler: {what} (no package manager on the build machine knows it; supplier: its "
                           "upstream project)")
