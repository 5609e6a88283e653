"""The local store of multi-platform images: one OCI layout per name, kept for `invoke push`, because an
engine of this era holds one platform per tag and cannot keep an image index."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from ..files import atomic_output
from . import oci


def root() -> Path:
    """FROMSCRATCH_STORE, else $XDG_CACHE_HOME/fromscratch/images, else ~/.cache/fromscratch/images."""
    if os.environ.get("FROMSCRATCH_STORE"):
        return Path(os.environ["FROMSCRATCH_STORE"])
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "fromscratch" / "images"


def path_for(ref: str) -> Path:
    """The layout directory of a name: readable, and unique even where two names read the same."""
    readable = "".join(c if c.isalnum() or c in "._-" else "_" for c in ref)
    return root() / f"{readable}-{hashlib.sha256(ref.encode()).hexdigest()[:8]}"


def find(ref: str) -> list[oci.Image] | None:
    """The images stored under ref, or None."""
    layout = path_for(ref)
    return oci.read_layout(layout) if (layout / "index.json").is_file() else None


def forget(ref: str) -> None:
    """Drop what is stored under ref: a newer one-platform image of that name lives in the engine."""
    shutil.rmtree(path_for(ref), ignore_errors=True)


# --- referrers: what is attached to an image (its SBOM), kept for push by its name and image ID ---------------
# An engine keeps images, not the artifacts that refer to them; push finds them here by the name it pushes and the
# image ID (the config's digest, which the engine keeps) and sends those whose subject is the manifest it pushes.
# Keyed by name as well: two names for one image ID (the same binary tagged twice, one with --sbom none) each keep
# their own SBOM, which names its own tag.

def _referrers_path(ref: str, image_id: str) -> Path:
    return root() / "referrers" / path_for(ref).name / f"{image_id.split(':', 1)[-1]}.tar"


def keep_referrers(ref: str, image_id: str, artifacts: list[oci.Artifact]) -> None:
    """Keep artifacts for the image made under ref (an OCI archive, written whole); none: forget what was kept."""
    path = _referrers_path(ref, image_id)
    if not artifacts:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp, open(tmp, "wb") as fh:
        oci.write_archive([], fh, docker=False, artifacts=artifacts)


def referrers(ref: str, image_id: str) -> list[oci.Artifact]:
    """What is kept for the image made under ref, or nothing."""
    path = _referrers_path(ref, image_id)
    return oci.read_artifacts(path) if path.is_file() else []
