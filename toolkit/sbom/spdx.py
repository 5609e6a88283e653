"""The SPDX 2.3 document model and its writer: packages, files and relationships gathered in any order, written
as the same bytes for the same inputs, beside the binary they describe."""

# Our own small writer, sorted keys and stable SPDX IDs, `created` from SOURCE_DATE_EPOCH and a namespace derived
# from the content: the same inputs give the same bytes. spdx-tools, which the tests validate with, costs a
# second of imports that no build should pay.

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..dates import rfc3339
from ..files import atomic_output, exclusive
from . import NOASSERTION

MEDIA_TYPE = "application/spdx+json"
SUFFIX = ".spdx.json"
# An SPDX document needs a namespace URI of its own; nothing is served there (.invalid is reserved for that).
NAMESPACE = "https://fromscratch.invalid/spdx"
_SAFE_ID = re.compile(r"[^A-Za-z0-9.-]+")


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
    kind: str  # DESCRIBES, STATIC_LINK, HAS_PREREQUISITE, GENERATED_FROM, BUILD_TOOL_OF, CONTAINS
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

    # A consumer walks the document from what it DESCRIBES, along relationships from each element to what it is
    # made of (the NTIA checker: CONTAINS, DEPENDS_ON, STATIC_LINK, DYNAMIC_LINK, HAS_PREREQUISITE); a compiler
    # that is only BUILD_TOOL_OF the program, or a source it is only GENERATED_FROM, is not on that walk. So each
    # also gets the edge from the program SPDX 2.3 has for it (Table 68: "SPDXRef-A has as a prerequisite
    # SPDXRef-B"; clause 11.2's example "a pre-requisite for building executable bar"), said to be for building.

    def built_with(self, program: str, tool: Package) -> None:
        """tool (a compiler) BUILD_TOOL_OF program, which HAS_PREREQUISITE it to be built."""
        self.relate(self.add(tool), "BUILD_TOOL_OF", program)
        self.relate(program, "HAS_PREREQUISITE", tool.spdx_id, "to build it, not to run it: the compiler")

    def built_from(self, program: str, source: Package | File) -> None:
        """program GENERATED_FROM source, which it HAS_PREREQUISITE to be built."""
        self.relate(program, "GENERATED_FROM", self.add(source))
        self.relate(program, "HAS_PREREQUISITE", source.spdx_id, "to build it, not to run it: its source")

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
