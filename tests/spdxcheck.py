"""Every SBOM the tests see is held to spdx-tools (parse and validate: no messages) and to the NTIA minimum
elements checker, the two tools a consumer of our SBOMs would run."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from tests.conftest import missing


def _tools() -> tuple[Any, Any, Any]:
    try:
        from ntia_conformance_checker import SbomChecker
        from spdx_tools.spdx.parser.parse_anything import parse_file
        from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document
    except ImportError:
        missing("spdx-tools and ntia-conformance-checker are not installed (pip install -e '.[test]')")
    return parse_file, validate_full_spdx_document, SbomChecker


def check(source: Path | bytes, ntia: bool = True) -> dict[str, Any]:
    """The document, after spdx-tools parsed and validated it without a message and (ntia) the NTIA checker
    found every minimum element; a document given as bytes is checked from a file of its own."""
    parse_file, validate, checker = _tools()
    with tempfile.TemporaryDirectory() as tmp:
        path = source if isinstance(source, Path) else Path(tmp) / "doc.spdx.json"
        if isinstance(source, bytes):
            path.write_bytes(source)
        messages = [m.validation_message for m in validate(parse_file(str(path)))]
        assert messages == [], (path, messages)
        if ntia:
            gaps = ntia_gaps(path, checker)
            assert gaps == [], (path, gaps)
        return json.loads(path.read_bytes())


def ntia_gaps(path: Path, checker: Any = None) -> list[tuple[str, list[str]]]:
    """What the NTIA checker finds missing: (element, component names), ("floating", SPDX IDs) for packages it
    cannot reach from what the document DESCRIBES (it leaves them out of its checks), and ("document", ...) for
    the rest."""
    checker = checker or _tools()[2]
    logging.disable(logging.WARNING)  # its warnings (floating elements among them, listed below), only here
    try:
        result = checker(str(path))
    finally:
        logging.disable(logging.NOTSET)
    gaps = [(name, sorted(c[0] for c in comps)) for name, comps in result.all_components_without_info]
    if result.floating_component_ids:
        gaps.append(("floating", sorted(result.floating_component_ids)))
    missing_doc = [what for what, ok in (("author", result.doc_author), ("timestamp", result.doc_timestamp),
                                         ("relationships", result.dependency_relationships)) if not ok]
    if missing_doc or result.parsing_errors:
        gaps.append(("document", [*missing_doc, *map(str, result.parsing_errors)]))
    return gaps
