"""Reading an SPDX document back (--sbom FILE, <binary>.spdx.json, one kept or pulled from a registry): bounded,
checked field by field, and tied to the binary it claims to describe."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..files import regular_input, sha256

# An SBOM read back (--sbom, <binary>.spdx.json, a kept or pushed one): a static program's is kilobytes (hello's is
# 5 KiB, each --src file adds half a KiB: 4 MiB is some 7,000 sources). Reading one and writing it again into the
# image's holds up to ~35 bytes of memory per byte (a file of empty objects), so the cap bounds that too.
MAX_BYTES = 4 << 20
# An SPDX 2 document nests five levels (document, packages, a package, its externalRefs, one of them); copying
# one and printing it indented spend Python frames per level, so a deep one is refused when read.
_MAX_DEPTH = 32
# A JSON escape of a UTF-16 surrogate (\ud800-\udfff): alone, it decodes to a str that cannot be written as UTF-8.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


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
    actual = sha256(binary)[0]
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
