"""The Docker engine, reached through the Docker SDK (or, for the few calls of loading an image over a local
socket, straight over HTTP); engine errors are translated into ours here and only here."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys
import threading
import uuid
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, urlencode

from .. import targets
from ..errors import EngineError, EngineUnavailable, ToolkitError
from . import endpoint as endpoints

if TYPE_CHECKING:
    import http.client

log = logging.getLogger(__name__)

ROLE = "org.fromscratch.role"
SESSION = "org.fromscratch.session"
_SESSION = os.environ.get("FROMSCRATCH_SESSION") or uuid.uuid4().hex[:16]
DEFAULT_SOCKET = endpoints.DEFAULT_SOCKET
local_socket = endpoints.local_socket


class Client(Protocol):
    """The engine as the Docker SDK's DockerClient gives it (the SDK ships no types): what the toolkit calls.
    connect() makes one; tests may pass a small stand-in with the same attributes."""

    api: Any  # the low-level APIClient
    images: Any
    containers: Any

    def version(self) -> dict: ...

    def info(self) -> dict: ...

    def ping(self) -> bool: ...


def labels(role: str) -> dict[str, str]:
    """Labels for everything the toolkit creates in the engine: what it is for, and which run made it
    (FROMSCRATCH_SESSION when set, so a caller such as a test can find exactly its own leftovers)."""
    return {ROLE: role, SESSION: _SESSION}


def connect(timeout: int = 120) -> Client:
    """A docker.DockerClient for the engine the docker CLI would use (DOCKER_HOST, DOCKER_CONTEXT, the current
    context, else the local socket), Docker or Podman alike."""
    endpoint = endpoints.resolve()
    try:
        client = endpoint.sdk_client(timeout)
        client.ping()
    except Exception as exc:  # the SDK's DockerException, requests' connection errors, a TLS file that is missing
        raise unavailable(endpoint, exc) from exc
    return client  # type: ignore[no-any-return]


def connect_lazy(timeout: int = 120) -> Client:
    """connect()'s engine, but over a local unix socket the SDK is loaded only when a call needs it: the version
    (which is the ping) and image lookups go over the socket with the standard library, which spares a build that
    finds nothing to do the SDK's start-up (~0.1 s) and its second version request. Any other engine: connect()."""
    endpoint = endpoints.resolve()
    if endpoint.socket_path is None:
        return connect(timeout)
    return LazyClient(SocketImages.connect(endpoint.socket_path, timeout, endpoint), endpoint, timeout)


class LazyClient:
    """A Client whose docker.DockerClient is made on the first call that needs it (at the API version the engine
    answered: no second negotiation); version() and image lookups (image_id) answer over the socket first."""

    def __init__(self, socket: SocketImages, endpoint: endpoints.Endpoint, timeout: int) -> None:
        self.socket = socket
        self._endpoint = endpoint
        self._timeout = timeout
        self._sdk: Any = None
        self._making = threading.Lock()  # the builds of several targets, each in its thread, share one SDK client

    def version(self) -> dict:
        return dict(self.socket.version)

    def ping(self) -> bool:
        return True  # SocketImages.connect asked the engine its version: it answered

    def sdk(self) -> Any:
        with self._making:
            if self._sdk is None:
                try:
                    self._sdk = self._endpoint.sdk_client(self._timeout, self.socket.version.get("ApiVersion"))
                except Exception as exc:  # the engine went away since it answered
                    raise unavailable(self._endpoint, exc) from exc
            return self._sdk

    def __getattr__(self, name: str) -> Any:  # api, images, containers, volumes, info(), ...: the SDK's
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.sdk(), name)


def unavailable(endpoint: endpoints.Endpoint, exc: BaseException | None = None) -> EngineUnavailable:
    """No engine answered at endpoint: the one line that names where it looked and what chose that."""
    why = f"; {type(exc).__name__}" if exc is not None else ""
    return EngineUnavailable(f"no Docker engine answered at {endpoint.host} ({endpoint.source}{why})",
                             hint=endpoint.hint)


class Refused(Exception):
    """The engine answered a request with an error (an HTTP status >= 400, or an error in a streamed answer)."""

    def __init__(self, explanation: str, status: int = 0) -> None:
        super().__init__(explanation)
        self.explanation = explanation
        self.status = status


@contextlib.contextmanager
def step(what: str) -> Iterator[None]:
    """Run a block that talks to the engine; any engine failure leaves it as EngineError naming the step."""
    try:
        yield
    except Refused as exc:
        raise EngineError(f"{what} failed: {_one_line(exc.explanation)}") from exc
    except Exception as exc:
        docker_errors = sys.modules.get("docker.errors")
        if docker_errors is not None and isinstance(exc, docker_errors.DockerException):
            explanation = getattr(exc, "explanation", None) or str(exc)
            raise EngineError(f"{what} failed: {_one_line(explanation)}") from exc
        if _gone(exc):
            raise EngineUnavailable(f"{what} failed: the engine stopped answering ({type(exc).__name__})",
                                    hint=_hint()) from exc
        raise


def _hint() -> str:
    try:
        return endpoints.resolve().hint
    except ToolkitError:  # the environment changed under a running task: the engine's own error matters more
        return "is the engine running?"


# What a vanished engine looks like: the socket closed or silent, or a client library's word for that.
_GONE = (("http.client", "HTTPException"), ("requests", "RequestException"), ("urllib3.exceptions", "HTTPError"))


def _gone(exc: Exception) -> bool:
    # A library's exceptions exist only once it is imported, and only a block that used it can raise them:
    # looked up in sys.modules, so that step() itself imports nothing (SocketImages never loads the SDK).
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    return any(isinstance(exc, cls) for module, name in _GONE
               if (cls := getattr(sys.modules.get(module), name, None)) is not None)


def _one_line(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= 300 else text[:297] + "..."


def data_room(client: Client) -> tuple[str, int] | None:
    """(directory, free bytes) where the engine keeps images, when the engine is on this machine (a unix socket)
    and that directory is visible here; None when it cannot be known (a remote engine, a VM's disk)."""
    if endpoints.resolve().socket_path is None:
        return None
    with step("asking the engine where it keeps images"):
        root = (client.info() or {}).get("DockerRootDir") or ""
    try:
        st = os.statvfs(root) if root and os.path.isdir(root) else None
    except OSError:
        st = None
    return (root, st.f_bavail * st.f_frsize) if st is not None else None


def image_exists(client: Client, ref: str) -> bool:
    return image_id(client, ref) is not None


def image_id(client: Client, ref: str) -> str | None:
    """The ID of the image ref names; None when there is none."""
    if isinstance(client, LazyClient):  # over the socket: no SDK for a lookup
        with step(f"looking up image {ref}"):
            found = client.socket.inspect(ref)
        return None if found is None else str(found.get("Id", ""))
    image = get_image(client, ref)
    return None if image is None else str(image.id)


def image_labels(client: Client, ref: str) -> dict[str, str] | None:
    """The labels of the image ref names ({} for none); None when the engine has no such image."""
    attrs = _attrs(client, ref)
    if attrs is None:
        return None
    return {str(k): str(v) for k, v in ((attrs.get("Config") or {}).get("Labels") or {}).items()}


def get_image(client: Client, ref: str) -> Any:
    """The SDK's Image that ref names (its attrs, save()); None when the engine has none."""
    from docker.errors import ImageNotFound

    with step(f"looking up image {ref}"):
        try:
            return client.images.get(ref)
        except ImageNotFound:
            return None


def remove_image(client: Client, ref: str) -> None:
    """Remove the image ref names, if there is one (call it inside step(), which says what failed)."""
    from docker.errors import ImageNotFound

    try:
        client.images.remove(ref)
    except ImageNotFound:
        pass


def native_target(store: Images) -> targets.Target:
    """The target the engine's machine runs natively, as the engine reports its architecture."""
    return targets.lookup(store.native_arch())


def platform_ref(ref: str, target: targets.Target) -> str:
    """The tag one platform of a multi-platform image carries in the engine (an engine of this era keeps one
    platform per tag): NAME:TAG-<target>, e.g. hello:1.0-arm64, hello:latest-arm-v7."""
    return f"{ref}-{target.name}"


def find_image(client: Client, ref: str, platform: targets.Target | None, hint: str) -> str:
    """The engine's image that ref means for platform: ref itself when it is for that platform (or none is asked
    for), else ref's tag for that platform (platform_ref). None is one line naming the platforms of ref there
    are (hint: what to say when there are none)."""
    from ..errors import InputError

    if ":" not in ref.rsplit("/", 1)[-1] and "@" not in ref:
        ref = f"{ref}:latest"  # as the engine reads a name without a tag; its platforms' tags are NAME:latest-<arch>
    attrs = _attrs(client, ref)
    own = _platform_of(attrs) if attrs is not None else None
    if attrs is not None and (platform is None or own == platform):
        return ref
    if platform is not None and image_exists(client, platform_ref(ref, platform)):
        return platform_ref(ref, platform)
    others = [t for t in targets.TARGETS if image_exists(client, platform_ref(ref, t))]
    there = [f"{platform_ref(ref, t)} ({t.platform})" for t in others]
    if attrs is not None:
        there.insert(0, f"{ref} ({own.platform if own else _platform_string(attrs)})")
    if not there:
        raise InputError(f"no image {ref} in the engine", hint=hint)
    first = own if attrs is not None and own is not None else others[0] if others else None
    wanted = f" for {platform.platform}" if platform is not None else ""
    raise InputError(f"no image {ref}{wanted} in the engine; there is {', '.join(there)}",
                     hint=f"pick one with --platform {first.platform}, or give its tag" if first else hint)


def _attrs(client: Client, ref: str) -> dict | None:
    from docker.errors import ImageNotFound

    with step(f"looking up image {ref}"):
        try:
            return dict(client.api.inspect_image(ref))
        except ImageNotFound:
            return None


def _platform_string(attrs: dict) -> str:
    return "/".join(str(p) for p in (attrs.get("Os") or "?", attrs.get("Architecture") or "?", attrs.get("Variant"))
                    if p)


def _platform_of(attrs: dict) -> targets.Target | None:
    """The target an image's attributes (Os, Architecture, Variant) name; None for one the table does not hold."""
    from ..errors import InputError

    try:
        return targets.parse_platform(_platform_string(attrs))
    except InputError:
        return None


def import_layer(client: Client, chunks: Iterable[bytes], ref: str, changes: list[str]) -> None:
    """`docker import` of a layer tar streamed in chunks, as the image ref. Call it inside step(). The reference
    goes whole into `repo`, which Docker and Podman both read (Podman ignores a separate `tag`); an error reported
    inside the answer is Refused, though its status was 200."""
    text = client.api.import_image_from_stream(chunks, repository=ref, changes=changes)
    for line in str(text).splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict):
            _check(message)


# --- the calls that loading an image needs ------------------------------------------------------------------

class Images(Protocol):
    """The engine as `invoke image` uses it: its architecture, an image's attributes, load and tag. Call these
    inside step(): their failures are Refused, or the socket's and the SDK's own, for step to translate."""

    def native_arch(self) -> str: ...

    def inspect(self, ref: str) -> dict | None: ...

    def load(self, chunks: Iterable[bytes]) -> None: ...

    def tag(self, image: str, repository: str, tag: str) -> None: ...


def images(client: Client | None = None, timeout: int = 120) -> Images:
    """The engine for loading images: over the local socket with the standard library when the engine is on one
    (DOCKER_HOST or a context naming a unix socket, or none), which spares a command the SDK's start-up; through
    the SDK (client, or a new one) otherwise: tcp:// with TLS, ssh://, a named pipe."""
    if client is not None:
        return SdkImages(client)
    endpoint = endpoints.resolve()
    if endpoint.socket_path is None:
        return SdkImages(connect(timeout))
    return SocketImages.connect(endpoint.socket_path, timeout, endpoint)


def _unix_connection(path: str, timeout: float) -> http.client.HTTPConnection:
    """An HTTP/1.1 connection over a unix socket (imported here: tasks that never load an image skip it)."""
    import http.client
    import socket

    class UnixConnection(http.client.HTTPConnection):
        def connect(self) -> None:  # also how http.client reopens a connection the engine closed
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(self.timeout)
                sock.connect(path)
            except BaseException:
                sock.close()
                raise
            self.sock = sock

    return UnixConnection("localhost", timeout=timeout)  # the Host header dockerd expects on its socket


class SocketImages:
    """The Engine API over a unix socket with http.client: one kept-alive connection, the API version the
    engine reports (as the SDK's "auto" does), and errors raised as Refused or the socket's own. One request at a
    time: the builds for several targets look images up from threads of their own, and an HTTPConnection asked
    while it answers another refuses (CannotSendRequest)."""

    def __init__(self, conn: http.client.HTTPConnection, version: dict) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self.version = version  # the engine's answer to GET /version
        self._prefix = f"/v{version.get('ApiVersion', '1.24')}"

    @classmethod
    def connect(cls, path: str, timeout: float = 120, endpoint: endpoints.Endpoint | None = None) -> SocketImages:
        """Ask the engine its version (which is also the ping); no answer is EngineUnavailable."""
        endpoint = endpoint or endpoints.Endpoint(f"unix://{path}", "a unix socket")
        conn = _unix_connection(path, timeout)
        try:
            status, body = _request(conn, "GET", "/version")
            if status != 200:
                raise Refused(_explanation(body), status)
            return cls(conn, json.loads(body))
        except Exception as exc:  # refused, no socket, a stranger on it: no engine either way
            conn.close()
            raise unavailable(endpoint, exc) from exc

    def native_arch(self) -> str:
        return str(self.version.get("Arch", "amd64"))

    def inspect(self, ref: str) -> dict | None:
        with self._lock:
            status, body = _request(self._conn, "GET", f"{self._prefix}/images/{quote(ref, safe='/:')}/json")
        if status == 404:
            return None
        if status != 200:
            raise Refused(_explanation(body), status)
        return dict(json.loads(body))

    def load(self, chunks: Iterable[bytes]) -> None:
        """POST the archive as it is produced (chunked), then read the engine's JSON messages to the end."""
        conn = self._conn
        with self._lock:
            conn.request("POST", f"{self._prefix}/images/load?quiet=1", body=chunks,
                         headers={"Content-Type": "application/x-tar"}, encode_chunked=True)
            with conn.getresponse() as resp:
                if resp.status != 200:
                    raise Refused(_explanation(resp.read()), resp.status)
                for line in resp:  # one JSON object a line: progress, "Loaded image: ...", or an error
                    if line.strip():
                        _check(json.loads(line))

    def tag(self, image: str, repository: str, tag: str) -> None:
        query = urlencode({"repo": repository, "tag": tag})
        with self._lock:
            status, body = _request(self._conn, "POST",
                                    f"{self._prefix}/images/{quote(image, safe='/:')}/tag?{query}")
        if status >= 300:
            raise Refused(_explanation(body), status)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _request(conn: http.client.HTTPConnection, method: str, url: str) -> tuple[int, bytes]:
    conn.request(method, url)
    with conn.getresponse() as resp:
        return resp.status, resp.read()


def _explanation(body: bytes) -> str:
    """The engine's {"message": ...} error body, else the body as text."""
    try:
        return str(json.loads(body)["message"])
    except (ValueError, KeyError, TypeError):
        return body.decode("utf-8", "replace").strip() or "no reason given"


def _check(message: dict) -> None:
    """A message of a streamed answer that reports an error fails the request, though its status was 200."""
    if "errorDetail" in message or "error" in message:
        raise Refused((message.get("errorDetail") or {}).get("message") or message.get("error") or "no reason given")


class SdkImages:
    """The same calls through a docker.DockerClient: any engine the SDK reaches."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def native_arch(self) -> str:
        return str(self.client.version().get("Arch", "amd64"))

    def inspect(self, ref: str) -> dict | None:
        from docker.errors import ImageNotFound

        try:
            return dict(self.client.api.inspect_image(ref))
        except ImageNotFound:
            return None

    def load(self, chunks: Iterable[bytes]) -> None:
        # the low-level call: the high-level images.load() inspects every loaded image once more
        for message in self.client.api.load_image(chunks, quiet=True):
            _check(message)

    def tag(self, image: str, repository: str, tag: str) -> None:
        self.client.api.tag(image, repository, tag)


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
