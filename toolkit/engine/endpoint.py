"""Which engine to talk to, chosen in the docker CLI's order: DOCKER_HOST, then DOCKER_CONTEXT, then the current
context of the docker config file, then the default socket; contexts are read with the Docker SDK's own support."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError

log = logging.getLogger(__name__)

DEFAULT_SOCKET = "/var/run/docker.sock"
DEFAULT_HOST = f"unix://{DEFAULT_SOCKET}"
_HOST_EXAMPLE = "e.g. unix:///var/run/docker.sock, tcp://HOST:2376 or ssh://USER@HOST"


@dataclass(frozen=True)
class Endpoint:
    """An engine's address and what chose it, in the user's words."""

    host: str  # a DOCKER_HOST-style URL: unix://, tcp://, ssh://, npipe://
    source: str  # "DOCKER_HOST", "docker context 'colima'", "the default socket"
    context: str | None = None  # the context's name, when a context chose it
    tls: Any = None  # a docker.tls.TLSConfig from the context's TLS material
    from_env: bool = False  # DOCKER_HOST: DOCKER_TLS_VERIFY and DOCKER_CERT_PATH apply too

    def __str__(self) -> str:
        return f"{self.host} ({self.source})"

    @property
    def socket_path(self) -> str | None:
        """The unix socket path, when the engine is on one."""
        return local_socket(self.host)

    @property
    def hint(self) -> str:
        if self.context:
            return (f"is the engine of docker context '{self.context}' running? `docker context ls` lists the "
                    "contexts; DOCKER_HOST or DOCKER_CONTEXT picks another")
        if self.from_env:
            return "is the engine running? is DOCKER_HOST right?"
        return ("is dockerd or Docker Desktop running? DOCKER_HOST, DOCKER_CONTEXT or `docker context use` "
                "picks another engine")

    def sdk_client(self, timeout: int, version: str | None = None) -> Any:
        """A docker.DockerClient for this endpoint (not yet asked anything but, without version, its version)."""
        import docker  # imported here: verify and native builds never pay for the SDK
        from docker.utils import kwargs_from_env

        params: dict[str, Any] = {"base_url": self.host}
        if self.from_env:
            params = kwargs_from_env()
        elif self.tls is not None:
            params["tls"] = self.tls
        # ssh:// through the ssh program, as the docker CLI does (and paramiko is not a dependency)
        return docker.DockerClient(timeout=timeout, use_ssh_client=self.host.startswith("ssh://"), version=version,
                                   **params)


def local_socket(host: str) -> str | None:
    """The unix socket path that a DOCKER_HOST-style URL names (the default socket when it is empty), else None."""
    if not host:
        return DEFAULT_SOCKET
    for scheme in ("unix://", "http+unix://"):  # the second: how the SDK writes a context's socket
        if host.startswith(scheme):
            return host[len(scheme):] or DEFAULT_SOCKET
    return None


def config_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The docker CLI's configuration directory: DOCKER_CONFIG, else ~/.docker."""
    environ = os.environ if environ is None else environ
    return Path(environ.get("DOCKER_CONFIG") or Path.home() / ".docker")


def config(environ: Mapping[str, str] | None = None) -> dict:
    """The docker CLI's config.json as a dict ({} when there is none); one that does not parse is refused, as the
    CLI refuses it, rather than read as if it said nothing."""
    path = config_dir(environ) / "config.json"
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise InputError(f"cannot read the docker config {path}: {exc.strerror}") from None
    try:
        found = json.loads(text) if text.strip() else {}
    except ValueError as exc:
        raise InputError(f"the docker config {path} is not JSON ({exc})", hint="fix or remove it") from None
    if not isinstance(found, dict):
        raise InputError(f"the docker config {path} is not a JSON object", hint="fix or remove it")
    return found


_last_logged: Endpoint | None = None


def resolve(environ: Mapping[str, str] | None = None) -> Endpoint:
    """The engine the docker CLI would use here."""
    global _last_logged
    endpoint = _resolve(os.environ if environ is None else environ)
    if endpoint != _last_logged:  # a task that connects twice says it once
        log.info("engine: %s", endpoint)
        _last_logged = endpoint
    return endpoint


def _resolve(environ: Mapping[str, str]) -> Endpoint:
    host = environ.get("DOCKER_HOST")
    if host:
        _check_host(host, "DOCKER_HOST")
        return Endpoint(host, "DOCKER_HOST", from_env=True)
    name, named_by = environ.get("DOCKER_CONTEXT"), "DOCKER_CONTEXT"
    if not name:
        name = config(environ).get("currentContext")
        named_by = f"the currentContext of {config_dir(environ) / 'config.json'}"
    if not name or name == "default":
        return Endpoint(DEFAULT_HOST, "the default socket" if not name else "docker context 'default'")
    return _from_context(str(name), named_by, config_dir(environ) / "contexts")


def _from_context(name: str, named_by: str, contexts: Path) -> Endpoint:
    from docker.context import ContextAPI

    try:
        with _sdk_contexts_in(contexts):
            context = ContextAPI.get_context(name)
    except Exception as exc:  # the SDK's ContextException, or a bare Exception for a meta file that is not JSON
        raise InputError(f"docker context '{name}' (from {named_by}) cannot be read: {exc}") from None
    if context is None:
        raise InputError(f"docker context '{name}' (from {named_by}) does not exist",
                         hint="`docker context ls` lists the contexts; `docker context use NAME` picks one")
    host = context.Host
    if not host:
        raise InputError(f"docker context '{name}' has no docker endpoint", hint="`docker context inspect " + name
                         + "` shows it")
    _check_host(host, f"docker context '{name}'")
    return Endpoint(host, f"docker context '{name}'", context=name, tls=context.TLSConfig)


_sdk_contexts_lock = threading.Lock()


@contextlib.contextmanager
def _sdk_contexts_in(contexts: Path) -> Iterator[None]:
    """The Docker SDK reading its contexts from this directory, as the docker CLI does. The SDK looks beside the
    config.json it finds: with none (a fresh machine after `docker context create`) it looks in ./contexts, and
    with none under DOCKER_CONFIG, beside ~/.docker/config.json. Its get_context_dir is the one place that
    decides (the meta and TLS paths are built on it), so that is what is pointed here while the SDK reads."""
    from docker.context import config as sdk_config

    with _sdk_contexts_lock:  # a module attribute: two threads resolving at once must not undo each other's
        found = sdk_config.get_context_dir
        sdk_config.get_context_dir = lambda: str(contexts)
        try:
            yield
        finally:
            sdk_config.get_context_dir = found


def _check_host(host: str, what: str) -> None:
    """A host URL that does not parse is the user's to fix (exit 2), not an engine that does not answer."""
    if local_socket(host):
        return  # any path: whether a socket answers there is connect()'s question
    from docker.errors import DockerException
    from docker.utils import parse_host

    try:
        parse_host(host, is_win32=False)
    except (DockerException, ValueError) as exc:
        raise InputError(f"{what} {host!r} does not parse ({exc})", hint=_HOST_EXAMPLE) from None
