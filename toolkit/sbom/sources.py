"""What a program was built from, as its document names it: --src files by the names the compiler saw, with their
digests, and a project's tree by its git commit and a digest over its files. Each is read when asked, as a build
takes its copy; its SPDX element is made later, by the function returned, with the first program's document (the
SPDX model is not loaded before a build starts: a build of hello waits for no more than it needs)."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..files import sha256

if TYPE_CHECKING:
    from .spdx import File, Package

_CHUNK = 1 << 20


def _digests(path: Path) -> tuple[str, str]:
    """SHA1 and SHA256 in one read: an SPDX file needs both."""
    sha1, sha2 = hashlib.sha1(usedforsecurity=False), hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            sha1.update(chunk)
            sha2.update(chunk)
    return sha1.hexdigest(), sha2.hexdigest()


def source_files(base: Path, names: Sequence[str]) -> Callable[[], list[File]]:
    """--src files by the names the compiler saw (relative to base), with their SHA1 and SHA256 (read now)."""
    read = [(name, *_digests(base / name)) for name in names]

    def described() -> list[File]:
        from .spdx import File, spdx_id

        return [File(spdx_id("File", name, sha2[:8]), f"./{name}", sha1, sha2) for name, sha1, sha2 in read]

    return described


def source_tree(root: Path, supplier: str, skip: Path | None = None) -> Callable[[], Package]:
    """A project directory: its git commit when it is a repository (noting uncommitted changes), and always a
    sha256 over its files (path, execute bit, content; .git and skip left out). The user gave it, so its supplier
    is the programs' (as for a file the image adds)."""
    digest = tree_digest(root, skip)
    commit, dirty = _git_commit(root)
    note = (f"the files of {root.name}: sha256 {digest} over each file's path, execute bit and content "
            "(.git and the output directory left out)")
    if commit and dirty:
        note += f"; git commit {commit} with uncommitted changes"

    def described() -> Package:
        from .spdx import Package, spdx_id

        return Package(spdx_id("Source", root.name), root.name, commit or f"sha256:{digest[:16]}", supplier,
                       purpose="SOURCE", comment=note,
                       gitoid=f"gitoid:commit:sha1:{commit}" if commit and len(commit) == 40 else None)

    return described


def tree_digest(root: Path, skip: Path | None = None) -> str:
    sha = hashlib.sha256()
    skip_real = os.path.realpath(skip) if skip else None
    kept = _KeptDigests(root)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != ".git"
                             and os.path.realpath(os.path.join(dirpath, d)) != skip_real)
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            if os.path.islink(path):
                sha.update(f"{rel}\0link\0{os.readlink(path)}\n".encode("utf-8", "surrogateescape"))
            elif os.path.isfile(path):
                mode = "x" if os.access(path, os.X_OK) else "-"
                sha.update(f"{rel}\0{mode}\0{kept.digest(rel, path)}\n".encode("utf-8", "surrogateescape"))
    kept.save()
    return sha.hexdigest()


class _KeptDigests:
    """The sha256 of each file of a project tree, kept under the cache directory between builds of it: a file
    whose size, modification and change times and inode are as they were is not read again (a rebuild hashed all
    of Lua's sources each time, ~0.07 s). One that cannot be read or written is only not kept."""

    _MAX = 200  # trees kept; the least recently written go

    def __init__(self, root: Path) -> None:
        from .. import files

        name = hashlib.sha256(os.fsencode(os.path.realpath(root))).hexdigest()[:32]
        self.path = files.cache_dir() / "digests" / f"{name}.json"
        self.old: dict[str, list] = {}
        self.new: dict[str, list] = {}
        try:
            import json

            found = json.loads(self.path.read_text())
            self.old = found if isinstance(found, dict) else {}
        except (OSError, ValueError):
            pass

    def digest(self, rel: str, path: str) -> str:
        st = os.stat(path)
        said = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        before = self.old.get(rel)
        if isinstance(before, list) and len(before) == 5 and before[:4] == said and isinstance(before[4], str):
            self.new[rel] = before
            return before[4]
        digest = sha256(Path(path))[0]
        self.new[rel] = [*said, digest]
        return digest

    def save(self) -> None:
        if self.new == self.old:
            return
        import contextlib
        import json

        from .. import files

        if not files.keep(self.path, json.dumps(self.new, sort_keys=True)):
            return
        with contextlib.suppress(OSError):
            kept = sorted(self.path.parent.glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
            for old in kept[:max(len(kept) - self._MAX, 0)]:
                old.unlink(missing_ok=True)


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
