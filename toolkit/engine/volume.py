"""Named volumes the toolkit keeps on the engine between builds (a project's build tree, a compiler cache):
made labelled as ours, listed with their sizes, removed. A remote engine and Podman keep them the same way."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from . import client as engine

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Kept:
    """A volume of ours: its name, labels, size in bytes (None: the engine did not say) and when it was made."""

    name: str
    labels: dict[str, str]
    size: int | None
    created: float  # seconds since the epoch; 0 when the engine did not say


def ensure(client: engine.Client, name: str, labels: dict[str, str], role: str = "state") -> bool:
    """The volume called name, made with labels (and ours, with role) unless it exists; True when it was made
    now."""
    from docker.errors import NotFound

    with engine.step(f"looking for the volume {name}"):
        try:
            client.api.inspect_volume(name)
            return False
        except NotFound:
            pass
    with engine.step(f"creating the volume {name}"):
        client.api.create_volume(name, labels={**labels, **engine.labels(role)})
    return True


def remove(client: engine.Client, name: str) -> bool:
    """Remove a volume if it exists; False when it is in use by a container (a build running now)."""
    from docker.errors import APIError, NotFound

    with engine.step(f"removing the volume {name}"):
        try:
            client.api.remove_volume(name, force=False)
        except NotFound:
            pass
        except APIError as exc:
            if exc.status_code == 409:
                return False
            raise
    return True


def kept(client: engine.Client, sizes: bool = True, role: str = "state") -> list[Kept]:
    """Every volume of ours with role, by name; with sizes the engine measures them."""
    with engine.step("listing the kept volumes"):
        found = (client.api.volumes(filters={"label": f"{engine.ROLE}={role}"}) or {}).get("Volumes") or []
        measured: dict[str, int] = {}
        if sizes and found:
            for v in client.api.df().get("Volumes") or []:
                size = (v.get("UsageData") or {}).get("Size")
                if isinstance(size, int) and size >= 0:
                    measured[v.get("Name", "")] = size
    return sorted((Kept(v["Name"], dict(v.get("Labels") or {}), measured.get(v["Name"]), _when(v.get("CreatedAt")))
                   for v in found), key=lambda k: k.name)


def _when(text: str | None) -> float:
    if not text:
        return 0.0
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0
