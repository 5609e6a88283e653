"""The Docker engine, reached through the Docker SDK; engine errors are translated into ours here and only here."""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Iterable, Iterator
from typing import Any

from .errors import EngineError, EngineUnavailable

log = logging.getLogger(__name__)

_HINT = "is dockerd or Docker Desktop running? is DOCKER_HOST right?"


def connect(timeout: int = 120) -> Any:
    """A docker.DockerClient for the engine the environment names (DOCKER_HOST, else the local socket)."""
    import docker  # imported here: verify and native builds never pay for the SDK
    from docker.errors import DockerException

    where = os.environ.get("DOCKER_HOST") or "the default socket"
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except DockerException as exc:
        raise EngineUnavailable(f"no Docker engine answered at {where}", hint=_HINT) from exc
    except Exception as exc:  # requests' connection errors, an unusable DOCKER_HOST URL
        raise EngineUnavailable(f"no Docker engine answered at {where} ({type(exc).__name__})",
                                hint=_HINT) from exc
    return client


@contextlib.contextmanager
def step(what: str) -> Iterator[None]:
    """Run a block that talks to the engine; any engine failure leaves it as EngineError naming the step."""
    import requests
    from docker.errors import DockerException

    try:
        yield
    except DockerException as exc:
        explanation = getattr(exc, "explanation", None) or str(exc)
        raise EngineError(f"{what} failed: {_one_line(explanation)}") from exc
    except requests.RequestException as exc:
        raise EngineUnavailable(f"{what} failed: the engine stopped answering ({type(exc).__name__})",
                                hint=_HINT) from exc


def _one_line(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= 300 else text[:297] + "..."


def image_exists(client: Any, ref: str) -> bool:
    from docker.errors import ImageNotFound

    with step(f"looking up image {ref}"):
        try:
            client.images.get(ref)
            return True
        except ImageNotFound:
            return False


class ChunkReader(io.RawIOBase):
    """A file-like view of the byte chunks the engine streams (get_archive, export), for tarfile's stream mode."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buf = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buf:
            try:
                self._buf = memoryview(next(self._chunks))
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]  # a view: no copy of the rest of a large chunk
        return n
