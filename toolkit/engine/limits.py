"""What one build may use, natively or in a container: a value every toolchain takes, kept apart from the
container class (engine/container.py) so that a native build does not load the engine's modules to name it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Limits:
    """What one build may use: memory (bytes, swap included) and processes of its container, and seconds of wall
    time (None: no limit) natively or in a container. A runaway build (a fork bomb, a leak, a hang) stops there
    instead of taking the engine's machine with it."""

    memory: int = 8 << 30
    pids: int = 4096
    timeout: float | None = 3600.0

    def create_args(self) -> dict[str, Any]:
        return {"mem_limit": self.memory, "memswap_limit": self.memory, "pids_limit": self.pids}


DEFAULT_LIMITS = Limits()
