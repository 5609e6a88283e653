"""What a program was built from, as its document names it: --src files by the names the compiler saw, with their
digests, and a project's tree by its git commit and a digest over its files."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

from ..files import sha256
from .spdx import File, Package, spdx_id

_CHUNK = 1 << 20


def _digests(path: Path) -> tuple[str, str]:
    """SHA1 and SHA256 in one read: an SPDX file needs both."""
    sha1, sha2 = hashlib.sha1(usedforsecurity=False), hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
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


def source_tree(root: Path, supplier: str, skip: Path | None = None) -> Package:
    """A project directory: its git commit when it is a repository (noting uncommitted changes), and always a
    sha256 over its files (path, execute bit, content; .git and skip left out). The user gave it, so its supplier
    is the programs' (as for a file the image adds)."""
    digest = tree_digest(root, skip)
    commit, dirty = _git_commit(root)
    note = (f"the files of {root.name}: sha256 {digest} over each file's path, execute bit and content "
            "(.git and the output directory left out)")
    if commit and dirty:
        note += f"; git commit {commit} with uncommitted changes"
    return Package(spdx_id("Source", root.name), root.name, commit or f"sha256:{digest[:16]}", supplier,
                   purpose="SOURCE", comment=note,
                   gitoid=f"gitoid:commit:sha1:{commit}" if commit and len(commit) == 40 else None)


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
                sha.update(f"{rel}\0{mode}\0{sha256(Path(path))[0]}\n".encode())
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
