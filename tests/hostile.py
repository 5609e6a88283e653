"""A misbehaving HTTP server for the tests, over plain HTTP or TLS: each request is answered by a function of the
test's, whose answer may be huge, endless, slow, malformed or redirecting. It records every request (method,
path, headers, body) so a test can see what a client sent where."""

from __future__ import annotations

import hashlib
import json
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# What an endless or huge answer sends at most: enough to show memory growing, little enough that a client that
# reads it all (the bug under test) still ends.
SAFETY = 300 << 20


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    host: str  # the server's own host:port


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    kind: str = "plain"  # plain | endless (chunked, never ends) | huge (claims `claim` bytes, sends zeros) |
    #                      trickle (the whole answer, status line first, one byte every `pause` s) | silent
    claim: int = 2_000_000_000
    pause: float = 0.5


def json_answer(obj: object, status: int = 200, media_type: str = "application/json",
                digest: str | None = None) -> Answer:
    data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    headers = {"Content-Type": media_type,
               "Docker-Content-Digest": digest or "sha256:" + hashlib.sha256(data).hexdigest()}
    return Answer(status, headers, data)


class HostileServer:
    def __init__(self, answer: Callable[[Request], Answer], tls: dict[str, Path] | None = None,
                 address: str = "127.0.0.1") -> None:
        self.answer = answer
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.server = ThreadingHTTPServer((address, 0), self._handler())
        self.server.daemon_threads = True
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls["server.crt"]), str(tls["server.key"]))
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.host = f"{address}:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def __enter__(self) -> HostileServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()

    def seen(self, method: str | None = None) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if method is None or r.method == method]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def handle_one(self) -> None:
                body = self._body()
                request = Request(self.command, self.path, dict(self.headers.items()), body, server.host)
                with server.lock:
                    server.requests.append(request)
                self._send(server.answer(request))

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = handle_one  # http.server's names

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    parts = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            self.rfile.readline()
                            return b"".join(parts)
                        parts.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _send(self, answer: Answer) -> None:
                head = [f"HTTP/1.1 {answer.status} X"]
                headers = dict(answer.headers)
                if answer.kind == "endless":
                    headers["Transfer-Encoding"] = "chunked"
                elif answer.kind == "huge":
                    headers["Content-Length"] = str(answer.claim)
                else:
                    headers.setdefault("Content-Length", str(len(answer.body)))
                head += [f"{k}: {v}" for k, v in headers.items()]
                raw = ("\r\n".join(head) + "\r\n\r\n").encode()
                try:
                    if answer.kind == "silent":
                        server.stop.wait(60)
                        return
                    if answer.kind == "trickle":
                        for byte in raw + (b"" if self.command == "HEAD" else answer.body):
                            if server.stop.wait(answer.pause):
                                return
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                        return
                    self.wfile.write(raw)
                    if self.command == "HEAD":
                        return
                    if answer.kind in ("endless", "huge"):
                        chunk = b"\0" * (1 << 16)
                        framed = b"%x\r\n%s\r\n" % (len(chunk), chunk) if answer.kind == "endless" else chunk
                        sent = 0
                        while sent < SAFETY and not server.stop.is_set():
                            self.wfile.write(framed)
                            sent += len(chunk)
                        self.close_connection = True
                        return
                    self.wfile.write(answer.body)
                except (TimeoutError, BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
                    self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        return Handler


class FakeRegistry:
    """Enough of the distribution API for a push and a read back (blobs, uploads, manifests by tag and digest,
    no referrers API), as an answer function for a HostileServer. `override` answers first: a test makes one
    endpoint misbehave by returning an Answer for it (None: the registry's own answer). `login`, when given, is
    the Authorization header every /v2/ request must carry (else 401 with a Basic challenge); `upload_host`
    sends blob uploads there (a Location on another host)."""

    def __init__(self, override: Callable[[Request], Answer | None] | None = None, login: str | None = None,
                 upload_host: str | None = None, scheme: str = "http") -> None:
        self.override = override or (lambda request: None)
        self.login = login
        self.upload_host = upload_host
        self.scheme = scheme
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, tuple[str, bytes]] = {}  # tag or digest -> (media type, bytes)

    def __call__(self, request: Request) -> Answer:
        special = self.override(request)
        if special is not None:
            return special
        path = request.path.split("?", 1)[0]
        if path.startswith("/upload/"):  # the upload Location, on whichever host
            digest = request.path.split("digest=", 1)[1].split("&")[0].replace("%3A", ":")
            self.blobs[digest] = request.body
            return Answer(201, {"Docker-Content-Digest": digest})
        if self.login is not None and request.headers.get("Authorization") != self.login:
            return Answer(401, {"WWW-Authenticate": 'Basic realm="fake"'}, b'{"errors":[]}')
        if path == "/v2/":
            return Answer(200, {}, b"{}")
        parts = path.split("/")
        if "blobs" in parts and parts[-1] == "" and parts[-2] == "uploads":
            host = self.upload_host or request.host
            return Answer(202, {"Location": f"{self.scheme}://{host}/upload/1", "Content-Length": "0"})
        if "blobs" in parts:
            digest = parts[-1]
            if digest not in self.blobs:
                return Answer(404, {}, b'{"errors":[{"code":"BLOB_UNKNOWN"}]}')
            return Answer(200, {"Docker-Content-Digest": digest, "Content-Type": "application/octet-stream"},
                          self.blobs[digest])
        if "manifests" in parts:
            reference = parts[-1]
            if request.method == "PUT":
                digest = "sha256:" + hashlib.sha256(request.body).hexdigest()
                entry = (request.headers.get("Content-Type", ""), request.body)
                self.manifests[reference] = self.manifests[digest] = entry
                return Answer(201, {"Docker-Content-Digest": digest, "Content-Length": "0"})
            if reference not in self.manifests:
                return Answer(404, {}, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')
            media_type, data = self.manifests[reference]
            return json_answer(data, media_type=media_type)
        return Answer(404, {}, b'{"errors":[{"code":"NAME_UNKNOWN"}]}')
