"""The Docker engine, reached through the Docker SDK; engine errors are translated into ours here and only here."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from . import interrupts
from .errors import EngineError, EngineUnavailable, ToolkitError

log = logging.getLogger(__name__)

_HINT = "is dockerd or Docker Desktop running? is DOCKER_HOST right?"
ROLE = "org.fromscratch.role"
SESSION = "org.fromscratch.session"
_SESSION = os.environ.get("FROMSCRATCH_SESSION") or uuid.uuid4().hex[:16]


def labels(role: str) -> dict[str, str]:
    """Labels for everything the toolkit creates in the engine: what it is for, and which run made it
    (FROMSCRATCH_SESSION when set, so a caller such as a test can find exactly its own leftovers)."""
    return {ROLE: role, SESSION: _SESSION}


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
    import urllib3
    from docker.errors import DockerException

    try:
        yield
    except DockerException as exc:
        explanation = getattr(exc, "explanation", None) or str(exc)
        raise EngineError(f"{what} failed: {_one_line(explanation)}") from exc
    # A streamed answer (build output, logs, an archive) is read from the raw socket, so a vanished
    # engine shows up as urllib3's or the socket's own error rather than requests'.
    except (requests.RequestException, urllib3.exceptions.HTTPError, ConnectionError, TimeoutError) as exc:
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


@contextlib.contextmanager
def container(client: Any, role: str, image: str, **create: Any) -> Iterator[Any]:
    """A container named and labelled as ours, removed on the way out however the block ends.

    The name is chosen before the engine is asked, so a container that was created just as an interrupt
    arrived (the answer never read) is still found and removed.
    """
    name = f"fromscratch-{role}-{uuid.uuid4().hex[:12]}"
    try:
        with step(f"creating the {role} container"):
            made = client.containers.create(image, name=name, labels={**create.pop("labels", {}), **labels(role)},
                                            **create)
        yield made
    except BaseException:
        with interrupts.deferred():
            remove_container(client, name, quiet=True)
        raise
    with interrupts.deferred():
        remove_container(client, name)


def remove_container(client: Any, name: str, quiet: bool = False) -> None:
    """Remove a container by name or id if it exists. quiet: a failure (say, the engine is gone) is a warning
    that names the container, because another error is already on its way to the user."""
    from docker.errors import APIError, NotFound

    try:
        with step(f"removing the container {name}"):
            try:
                client.api.remove_container(name, force=True)
            except NotFound:
                pass
            except APIError as exc:
                if exc.status_code != 409 or "already in progress" not in str(exc.explanation):
                    raise
                wait_gone(client, name)  # someone else (docker rm -f) is removing it already
    except ToolkitError as exc:
        if not quiet:
            raise
        log.warning("could not remove the container %s (%s); remove it with: docker rm -f %s", name, exc, name)


def wait_gone(client: Any, container_id: str, seconds: float = 20.0) -> None:
    """Wait (bounded) until the engine has removed a container it is tearing down itself."""
    from docker.errors import NotFound

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            client.api.inspect_container(container_id)
        except NotFound:
            return
        time.sleep(0.2)
