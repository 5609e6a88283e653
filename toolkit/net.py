"""Foundation: HTTP for the wings that talk to a network service (a registry, a Debian mirror). It is requests,
configured so that every answer has a time limit and a size limit, and a login goes only to the hosts it is for.

- Time: connecting, the TLS handshake and each write may take `limit` seconds; an answer (status line, headers
  and the body read through this session) must arrive whole within its read timeout, which is `limit` unless a
  caller gives a longer one for a big download. A server that sends one byte a second is stopped at the deadline,
  which requests alone (a timeout per socket read) never does.
- Size: an answer's body may be at most `max_answer` bytes (4 MiB unless a caller allows more), decoded bytes
  counted, a larger Content-Length refused before anything is read, redirect bodies included.
- Logins: an `Authorization` header is sent only to the hosts in `login_hosts`; a request or redirect to any other
  host (a blob upload's Location on a storage host, say) goes without it.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import requests
import requests.adapters
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from .errors import InputError

TIMEOUT_ENV = "FROMSCRATCH_NET_TIMEOUT"
DEFAULT_TIMEOUT = 60.0
# The distribution spec suggests registries accept manifests up to 4 MiB; an index, a referrers list, a token
# answer, an error page or a signed Release file are far smaller (Debian's largest InRelease is under 1 MiB).
MAX_ANSWER = 4 << 20


def timeout(environ: Mapping[str, str] | None = None) -> float:
    """FROMSCRATCH_NET_TIMEOUT in seconds (default 60): how long any one wait on the network may take."""
    text = (os.environ if environ is None else environ).get(TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 86400:
        raise InputError(f"{TIMEOUT_ENV}={text!r}: give the seconds a network wait may take (e.g. 60)")
    return value


class AnswerTooBig(requests.RequestException):
    """An answer's body is larger than the session allows."""


def host_key(netloc_or_url: str, scheme: str = "https") -> tuple[str, int]:
    """(host, port) of a URL or a bare host[:port], the port defaulting to the scheme's."""
    text = netloc_or_url if "://" in netloc_or_url else f"{scheme}://{netloc_or_url}"
    parts = urllib.parse.urlsplit(text)
    try:
        port = parts.port
    except ValueError:
        port = None
    return (parts.hostname or "").lower(), port or (443 if parts.scheme == "https" else 80)


class Session(requests.Session):
    """A requests session with the limits above."""

    def __init__(self, limit: float, login_hosts: Iterable[str] = (), max_answer: int = MAX_ANSWER) -> None:
        super().__init__()
        self.limit = limit
        self.max_answer = max_answer
        self.login_hosts: set[tuple[str, int]] = set()
        for host in login_hosts:
            self.allow_login(host)
        adapter = _Adapter()
        self.mount("http://", adapter)
        self.mount("https://", adapter)
        self.headers["Accept-Encoding"] = "identity"  # sizes are what the server says they are
        self.hooks["response"].append(self._bounded)

    def allow_login(self, host: str) -> None:
        """Send the Authorization header to host (host[:port]; without a port, both default ports)."""
        if ":" in host.rsplit("]", 1)[-1]:
            self.login_hosts.add(host_key(host))
        else:
            self.login_hosts |= {host_key(host, "https"), host_key(host, "http")}

    @contextlib.contextmanager
    def allowing(self, max_answer: int) -> Iterator[None]:
        """Answers of up to max_answer bytes inside the block (a download whose size a signed index gives)."""
        before, self.max_answer = self.max_answer, max_answer
        try:
            yield
        finally:
            self.max_answer = before

    def merge_environment_settings(self, url: str, proxies: Any, stream: Any, verify: Any,
                                   cert: Any) -> dict[str, Any]:
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if verify is None:  # the trust this session was given, not REQUESTS_CA_BUNDLE's, which requests prefers
            settings["verify"] = self.verify
        return settings

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if "Authorization" in request.headers and host_key(request.url or "") not in self.login_hosts:
            del request.headers["Authorization"]
        if not kwargs.get("timeout"):
            kwargs["timeout"] = self.limit
        return super().send(request, **kwargs)

    def _bounded(self, response: requests.Response, **_: Any) -> requests.Response:
        """Cap the body before anything reads it (this hook runs before requests reads a body, redirects too)."""
        declared = response.headers.get("Content-Length", "")
        method = response.request.method if response.request is not None else ""
        if method != "HEAD" and declared.strip().isdigit() and int(declared) > self.max_answer:
            response.close()
            raise AnswerTooBig(f"{_where(response.url)} answered with {int(declared):,} bytes, over the "
                               f"{_size(self.max_answer)} such an answer may be", response=response)
        response.raw = _Capped(response.raw, self.max_answer, response)
        return response


def read_body(response: requests.Response, chunk: int = 1 << 16) -> Iterator[bytes]:
    """An answer's body in chunks, as it arrives (within the session's size and time limits)."""
    yield from response.iter_content(chunk)


def body(response: requests.Response) -> bytes:
    """An answer's whole body, within the session's limits."""
    return b"".join(read_body(response))


def _where(url: str | None) -> str:
    parts = urllib.parse.urlsplit(url or "")
    return parts.netloc or "the server"


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 and not n % (1 << 20) else f"{n:,} bytes"


class _Capped:
    """A urllib3 response whose body stops at a size: requests reads bodies through stream() and read()."""

    def __init__(self, raw: Any, limit: int, response: requests.Response) -> None:
        self._raw = raw
        self._limit = limit
        self._response = response
        self._seen = 0

    def _count(self, data: bytes) -> bytes:
        self._seen += len(data)
        if self._seen > self._limit:
            self._raw.close()
            raise AnswerTooBig(f"{_where(self._response.url)} sent more than the {_size(self._limit)} such an "
                               "answer may be", response=self._response)
        return data

    def stream(self, amt: int | None = 1 << 16, decode_content: bool | None = None) -> Iterator[bytes]:
        for data in self._raw.stream(amt, decode_content=decode_content):
            yield self._count(data)

    def read(self, amt: int | None = None, decode_content: bool | None = None, **kwargs: Any) -> bytes:
        if amt is None:
            return b"".join(self.stream(1 << 16, decode_content=decode_content))
        return self._count(self._raw.read(amt, decode_content=decode_content, **kwargs))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


# --- a deadline for each answer -------------------------------------------------------------------------------
# urllib3 gives the socket its read timeout before reading an answer, and http.client reads the status line,
# headers and body through sock.makefile(). The connection classes below hand http.client a socket whose every
# read may wait only until the answer's deadline, so a trickle of bytes cannot keep a read going for ever.

class _Deadline:
    """A socket whose reads end at a deadline: each read waits at most what is left of it."""

    def __init__(self, sock: Any, seconds: float) -> None:
        self._sock = sock
        self._seconds = seconds
        self._deadline = time.monotonic() + seconds

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"the whole answer did not arrive within {self._seconds:g} s")
        self._sock.settimeout(left)
        return int(self._sock.recv_into(buffer, nbytes, flags))

    def makefile(self, mode: str = "rb", buffering: int | None = None, **_: Any) -> io.BufferedReader:
        self._sock._io_refs += 1  # as socket.makefile counts it: the socket closes when its last file does
        return io.BufferedReader(socket.SocketIO(self, "rb"), buffering or io.DEFAULT_BUFFER_SIZE)  # type: ignore[arg-type]

    def _decref_socketios(self) -> None:
        self._sock._decref_socketios()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _DeadlineMixin:
    sock: Any
    timeout: Any

    def getresponse(self) -> Any:
        real = self.sock
        seconds = self.timeout if isinstance(self.timeout, (int, float)) else DEFAULT_TIMEOUT
        self.sock = _Deadline(real, float(seconds))
        try:
            return super().getresponse()  # type: ignore[misc]
        finally:
            if isinstance(self.sock, _Deadline):  # http.client set it to None if it closed the connection
                self.sock = real


class _HTTPConnection(_DeadlineMixin, HTTPConnection):
    pass


class _HTTPSConnection(_DeadlineMixin, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _Adapter(requests.adapters.HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


def describe(exc: BaseException, host: str, limit: float, server: str = "server") -> str:
    """What went wrong with a request, in words: a time limit (naming the variable that sets it), a size limit,
    a redirect, TLS, or nobody answering."""
    chain = _chain(exc)
    if any(isinstance(e, AnswerTooBig) for e in chain):
        return str(next(e for e in chain if isinstance(e, AnswerTooBig)))
    timed = f"within {limit:g} s ({TIMEOUT_ENV} sets the limit)"
    if any(isinstance(e, requests.ConnectTimeout) for e in chain):
        return f"{host} did not accept a connection {timed}"
    if any(isinstance(e, (requests.Timeout, socket.timeout, TimeoutError)) for e in chain) \
            or "timed out" in str(exc) or "did not arrive within" in str(exc):
        return f"{host} did not send its whole answer {timed}"
    if isinstance(exc, requests.TooManyRedirects):
        return f"{host} redirected more than 30 times (a redirect loop)"
    if isinstance(exc, (requests.exceptions.InvalidSchema, requests.exceptions.MissingSchema,
                        requests.exceptions.InvalidURL)):
        return f"{host} redirected to a URL that cannot be followed ({_first_line(str(exc))})"
    if isinstance(exc, requests.exceptions.SSLError):
        return f"TLS with {host} failed ({_first_line(str(exc))})"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return f"{host} broke off its answer ({_first_line(str(exc))})"
    return f"no {server} answered at {host} ({type(exc).__name__})"


def unanswered(exc: BaseException) -> bool:
    """Whether a request failed because nothing answered (refused, reset, no route): not slow, big or bad."""
    return describe(exc, "", 1, "-").startswith("no - answered")


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    todo: list[Any] = [exc]
    while todo:
        item = todo.pop()
        if not isinstance(item, BaseException) or any(item is s for s in seen):
            continue
        seen.append(item)
        todo += [item.__cause__, item.__context__, getattr(item, "reason", None), *item.args]
    return seen


def _first_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 200 else text[:197] + "..."
