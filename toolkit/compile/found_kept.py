"""What finding answered (compile/found.py), kept under the cache directory, so that a rebuild whose project
declares what it did before asks the Contents index nothing: the lookups are most of a rebuild's fixed cost on
the host (0.39 s of Lua's no-op build, against 0.01 s for reading what it declares).

An answer is kept under a key made of all it depends on: the declarations (kind, name, where), the targets, what
is left out, how headers count, each target's index file (path, size, modification time: a refreshed index is a
new key), and the source text of the modules that decide (a toolkit that decides otherwise asks again). The
architecture-independent index (Contents-all) is not in the key: it is refreshed with the others, and asking for
it here would fetch it when no lookup needs it."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import files, targets
from . import found, provides
from .deps import Declared

_KEPT_MAX = 200  # answers kept; the oldest go first
_DECIDING = ("found.py", "provides.py", "deps.py", "found_kept.py")


def find(declared: Sequence[Declared], wanted_targets: Sequence[targets.Target], index: provides.Index,
         exclude: Sequence[str] = (), headers_alone: bool = True) -> found.Finding:
    """found.find's answer, kept: the same arguments and the same indexes give the kept answer without a lookup.
    A kept answer that cannot be read is asked again; one that cannot be written is not kept."""
    key = _key(declared, wanted_targets, index, exclude, headers_alone)
    kept = files.cache_dir() / "found" / f"{key}.json"
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        return _loaded(json.loads(kept.read_text()))
    answer = found.find(declared, wanted_targets, index, exclude, headers_alone)
    if files.keep(kept, json.dumps(_dumped(answer), sort_keys=True)):
        with contextlib.suppress(OSError):
            _prune(kept.parent)
    return answer


def _key(declared: Sequence[Declared], wanted_targets: Sequence[targets.Target], index: provides.Index,
         exclude: Sequence[str], headers_alone: bool) -> str:
    here = Path(__file__).parent
    indexes = []
    for target in wanted_targets:
        path = index(target.debian_arch)
        st = path.stat() if path is not None else None
        indexes.append([str(path), st.st_size, st.st_mtime_ns] if st else None)
    text = json.dumps({
        "declared": [[d.kind, d.name, d.where] for d in declared], "targets": [t.name for t in wanted_targets],
        "exclude": sorted(exclude), "headers_alone": headers_alone, "indexes": indexes,
        "code": [hashlib.sha256((here / name).read_bytes()).hexdigest() for name in _DECIDING],
    }, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _dumped(answer: found.Finding) -> dict[str, Any]:
    def said(d: Declared) -> list[str]:
        return [d.kind, d.name, d.where]

    return {"found": [[f.package, said(f.why), list(f.archs)] for f in answer.found],
            "shared_only": [[p, said(d)] for p, d in answer.shared_only],
            "unprovided": [said(d) for d in answer.unprovided]}


def _loaded(data: dict[str, Any]) -> found.Finding:
    def declared(row: list[str]) -> Declared:
        kind, name, where = (str(x) for x in row)
        return Declared(kind, name, where)

    return found.Finding(
        tuple(found.Found(str(p), declared(d), tuple(str(a) for a in archs)) for p, d, archs in data["found"]),
        tuple((str(p), declared(d)) for p, d in data["shared_only"]),
        tuple(declared(d) for d in data["unprovided"]))


def _prune(directory: Path) -> None:
    """At most _KEPT_MAX answers: the least recently written go."""
    entries = sorted(directory.glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
    for old in entries[:max(len(entries) - _KEPT_MAX, 0)]:
        with contextlib.suppress(OSError):
            os.unlink(old)
