"""fromscratch: C sources -> static Linux binaries -> verified -> FROM scratch images."""

from __future__ import annotations

__version__ = "0.1.0"
