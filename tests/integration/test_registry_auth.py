"""`invoke push` to a registry the way people have one: TLS with a private CA and a client certificate (in docker's
/etc/docker/certs.d/<host:port>/), htpasswd (Basic) logins or bearer tokens from a token server, and the login
kept only by a credential helper on PATH (or an identity token); then `docker pull` through the same login. A
wrong password, an unknown CA and broken helpers each fail in one line, and leave nothing that a later push trips
on."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import ssl
import subprocess
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import assert_clean_failure, https_ready, invoke, missing, serve_registry, tls_material

pytestmark = pytest.mark.engine

USER, PASSWORD = "fromscratch", "s3cret-" + uuid.uuid4().hex[:8]
CERTS_D = Path("/etc/docker/certs.d")
PLATFORMS = "linux/amd64,linux/arm64"
HELPER = """#!/bin/sh
# docker-credential-fstest: answers `get` from the files beside it, and notes which server it was asked for
dir=$(dirname "$0")
[ "$1" = get ] || exit 1
read -r server
echo "$server" >> "$dir/asked"
cat "$dir/answer"
exit "$(cat "$dir/status")"
"""


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch) -> None:
    """Each test's CAs are new: the CA bundles push writes go to this test's cache, not the user's."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@contextlib.contextmanager
def trusted(host: str, files: dict[str, Path], client: bool = False) -> Iterator[None]:
    """The registry's CA (and our client certificate) where docker reads them; removed afterwards. dockerd itself
    skips certs.d for a loopback registry: it never verifies one (and so sends no client certificate either)."""
    if os.geteuid() != 0:
        missing("writing /etc/docker/certs.d needs root")
    folder = CERTS_D / host
    folder.mkdir(parents=True, exist_ok=True)
    try:
        for name in ("ca.crt", *(("client.cert", "client.key") if client else ())):
            shutil.copy(files[name], folder / name)
        yield
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def secure_registry(tmp_path_factory) -> Iterator[str]:
    """A registry with TLS (a CA made here) and htpasswd logins; its CA in certs.d for the module."""
    root = tmp_path_factory.mktemp("secure-registry")
    files = tls_material(root / "tls")
    if shutil.which("htpasswd") is None:
        missing("htpasswd is not installed (apache2-utils; scripts/dev installs it)")
    line = subprocess.run(["htpasswd", "-nbB", USER, PASSWORD], check=True, capture_output=True, text=True)
    (root / "htpasswd").write_text(line.stdout.strip() + "\n")
    auth = f"auth:\n  htpasswd:\n    realm: fromscratch-test\n    path: {root / 'htpasswd'}\n"
    with serve_registry(root / "registry", auth, tls=(files["server.crt"], files["server.key"], None),
                        ready=https_ready(files)) as served:
        with trusted(served.host, files):
            yield served.host


@dataclass
class Login:
    """A DOCKER_CONFIG whose only login for the registry is a credential helper on PATH (no auths entry)."""

    dir: Path
    registry: str

    def answer(self, secret: str | None = PASSWORD, text: str | None = None, status: int = 0) -> None:
        body = json.dumps({"ServerURL": self.registry, "Username": USER, "Secret": secret})
        (self.dir / "bin/answer").write_text(body if text is None else text)
        (self.dir / "bin/status").write_text(str(status))

    @property
    def env(self) -> dict[str, str]:
        return {"DOCKER_CONFIG": str(self.dir), "PATH": f"{self.dir / 'bin'}:{os.environ['PATH']}"}

    def asked(self) -> list[str]:
        path = self.dir / "bin/asked"
        return path.read_text().split() if path.exists() else []

    def config(self, helper: str = "fstest") -> None:
        (self.dir / "config.json").write_text(json.dumps({"credHelpers": {self.registry: helper}}))

    @classmethod
    def make(cls, where: Path, registry: str) -> Login:
        made = cls(where, registry)
        (made.dir / "bin").mkdir(parents=True)
        helper = made.dir / "bin/docker-credential-fstest"
        helper.write_text(HELPER)
        helper.chmod(0o755)
        made.config()
        made.answer()
        return made


@pytest.fixture
def login(tmp_path, secure_registry) -> Login:
    return Login.make(tmp_path / "docker-config", secure_registry)


@contextlib.contextmanager
def stored_image(where: Path, registry: str, docker_client) -> Iterator[tuple[str, dict[str, str]]]:
    """A two-platform image kept for a push to registry (in a store of its own); its tags leave the engine after."""
    name = f"{registry}/fromscratch-test-{uuid.uuid4().hex[:10]}"
    store = {"FROMSCRATCH_STORE": str(where / "store")}
    made = invoke("image", "--tag", name, "--platform", PLATFORMS, "--toolchain", "native", cwd=where, env=store)
    assert made.code == 0, made
    try:
        yield name, store
    finally:
        _forget(docker_client, name)


@pytest.fixture
def image(tmp_path, secure_registry, docker_client) -> Iterator[tuple[str, dict[str, str]]]:
    with stored_image(tmp_path, secure_registry, docker_client) as made:
        yield made


def _one_line_naming(result, registry: str, code: int, *words: str) -> None:
    assert_clean_failure(result, code)
    assert len(result.err.strip().splitlines()) == 1, result.err
    assert registry in result.err and all(w in result.err for w in words), result.err


def test_push_with_a_credential_helper_then_docker_pull_with_the_same_login(login, image, docker_client):
    name, store = image
    pushed = invoke("push", "--tag", name, env={**store, **login.env})
    assert pushed.code == 0, pushed
    assert "linux/arm64" in pushed.out and login.asked() == [login.registry]
    anonymous = subprocess.run(["docker", "pull", name], capture_output=True, text=True,
                               env={**os.environ, "DOCKER_CONFIG": str(login.dir.parent / "empty")})
    assert anonymous.returncode != 0  # the registry does want a login: the helper's was the one used
    for tag in list(docker_client.images.get(f"{name}:latest").tags):
        docker_client.images.remove(tag, force=True)
    pulled = subprocess.run(["docker", "pull", "--platform", "linux/arm64", name], capture_output=True, text=True,
                            env={**os.environ, **login.env})
    assert pulled.returncode == 0, pulled.stderr
    assert docker_client.images.get(name).attrs["Architecture"] == "arm64"
    out = docker_client.containers.run(name, remove=True, platform="linux/arm64").decode()
    assert "built for linux/arm64" in out


def test_a_wrong_password_is_one_line_and_a_later_push_works(login, image):
    name, store = image
    login.answer("wrong-" + PASSWORD)
    refused = invoke("push", "--tag", name, env={**store, **login.env})
    _one_line_naming(refused, login.registry, 1, "refused", f"docker login {login.registry}")
    login.answer()
    pushed = invoke("push", "--tag", name, env={**store, **login.env})
    assert pushed.code == 0, pushed


def test_broken_credential_helpers_are_one_line_and_exit_2(login, image):
    name, store = image
    login.config("fsmissing")
    result = invoke("push", "--tag", name, env={**store, **login.env})
    _one_line_naming(result, login.registry, 2, "docker-credential-fsmissing", "not installed")
    login.config()
    login.answer(text="credentials not found? no: something else went wrong\n", status=1)
    result = invoke("push", "--tag", name, env={**store, **login.env})
    _one_line_naming(result, login.registry, 2, "docker-credential-fstest failed", "something else went wrong",
                     f"docker login {login.registry}")
    login.answer(text="<html>this is not JSON</html>\n")
    result = invoke("push", "--tag", name, env={**store, **login.env})
    _one_line_naming(result, login.registry, 2, "not credentials", f"docker login {login.registry}")
    (login.dir / "config.json").write_text("{not json")
    result = invoke("push", "--tag", name, env={**store, **login.env})
    assert_clean_failure(result, 2)
    assert "is not JSON" in result.err, result.err


@contextlib.contextmanager
def tls_registry(tmp_path: Path, docker_client, client_certificates: bool) -> Iterator[tuple[str, str, dict, dict]]:
    """A TLS registry with a CA of its own (in no certs.d yet), and a two-platform image kept for a push to it:
    its host, the image's name, the store's environment and the TLS files."""
    files = tls_material(tmp_path / "tls")
    client_ca = files["ca.crt"] if client_certificates else None
    with serve_registry(tmp_path / "registry", tls=(files["server.crt"], files["server.key"], client_ca),
                        ready=https_ready(files)) as served:
        with stored_image(tmp_path, served.host, docker_client) as (name, store):
            yield served.host, name, store, files


def test_an_unknown_ca_is_one_line_and_a_later_push_works(tmp_path, docker_client):
    """A registry whose CA is in no certs.d: refused before a byte is sent; with its CA in place, pushed."""
    with tls_registry(tmp_path, docker_client, client_certificates=False) as (host, name, store, files):
        refused = invoke("push", "--tag", name, env=store)
        _one_line_naming(refused, host, 1, "not signed by a CA", str(CERTS_D / host / "ca.crt"))
        with trusted(host, files):
            pushed = invoke("push", "--tag", name, env=store)
        assert pushed.code == 0, pushed


def test_a_registry_that_wants_a_client_certificate_gets_the_one_in_certs_d(tmp_path, docker_client):
    with tls_registry(tmp_path, docker_client, client_certificates=True) as (host, name, store, files):
        with trusted(host, files):
            refused = invoke("push", "--tag", name, env=store)
        _one_line_naming(refused, host, 1, "TLS with", "client.cert")
        with trusted(host, files, client=True):
            pushed = invoke("push", "--tag", name, env=store)
        assert pushed.code == 0, pushed


def _forget(docker_client, name: str) -> None:
    for attrs in docker_client.api.images():
        for tag in attrs.get("RepoTags") or []:
            if tag.startswith(name + ":"):
                docker_client.api.remove_image(tag, force=True)


# --- bearer tokens: the registry sends clients to a token server ----------------------------------------------

SERVICE, ISSUER, REFRESH = "fromscratch-test-registry", "fromscratch-test-issuer", "refresh-" + uuid.uuid4().hex


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """The token server docker-registry's `auth: token:` sends clients to: Basic credentials (GET, what dockerd and
    python-dxf send) or a refresh token (POST, an identity token), answered with a JWT signed RS256 by a key whose
    certificate the registry trusts, for the scopes asked."""

    def __init__(self, where: Path, files: dict[str, Path]) -> None:
        self.key, self.cert = where / "signer.key", where / "signer.crt"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(self.key),
                        "-out", str(self.cert), "-days", "2", "-subj", "/CN=token signer"], check=True,
                       capture_output=True)
        self.chain = [base64.b64encode(ssl.PEM_cert_to_DER_cert(self.cert.read_text())).decode()]
        server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(files["server.crt"]), str(files["server.key"]))
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self.server = server
        self.realm = f"https://127.0.0.1:{server.server_port}/token"
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def token(self, scopes: list[str]) -> str:
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": USER, "aud": SERVICE, "exp": now + 300, "nbf": now - 10, "iat": now,
                  "jti": uuid.uuid4().hex, "access": access}
        head = {"typ": "JWT", "alg": "RS256", "x5c": self.chain}
        signing_input = f"{_b64url(json.dumps(head).encode())}.{_b64url(json.dumps(claims).encode())}"
        signed = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)], input=signing_input.encode(),
                                check=True, capture_output=True).stdout
        return f"{signing_input}.{_b64url(signed)}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        tokens = self
        basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
                ok = self.headers.get("Authorization") == basic
                self._answer(ok, {"token": tokens.token(query.get("scope", []))} if ok else {})

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                form = urllib.parse.parse_qs(body)
                ok = form.get("grant_type") == ["refresh_token"] and form.get("refresh_token") == [REFRESH]
                self._answer(ok, {"access_token": tokens.token(form.get("scope", []))} if ok else {})

            def _answer(self, ok: bool, body: dict) -> None:
                data = json.dumps(body if ok else {"errors": [{"code": "UNAUTHORIZED"}]}).encode()
                self.send_response(200 if ok else 401)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        return Handler


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory) -> Iterator[str]:
    """A TLS registry with token authentication, its token server beside it; its CA in certs.d."""
    root = tmp_path_factory.mktemp("token-registry")
    files = tls_material(root / "tls")
    tokens = TokenServer(root, files)
    auth = (f"auth:\n  token:\n    realm: {tokens.realm}\n    service: {SERVICE}\n    issuer: {ISSUER}\n"
            f"    rootcertbundle: {tokens.cert}\n")
    try:
        with serve_registry(root / "registry", auth, tls=(files["server.crt"], files["server.key"], None),
                            ready=https_ready(files)) as served:
            with trusted(served.host, files):
                yield served.host
    finally:
        tokens.server.shutdown()


def test_bearer_tokens_for_a_helper_login_then_docker_pull(tmp_path, token_registry, docker_client):
    login = Login.make(tmp_path / "docker-config", token_registry)
    with stored_image(tmp_path, token_registry, docker_client) as (name, store):
        pushed = invoke("push", "--tag", name, env={**store, **login.env})
        assert pushed.code == 0, pushed
        _forget(docker_client, name)
        pulled = subprocess.run(["docker", "pull", "--platform", "linux/arm64", name], capture_output=True,
                                text=True, env={**os.environ, **login.env})
        assert pulled.returncode == 0, pulled.stderr
        assert docker_client.images.get(name).attrs["Architecture"] == "arm64"
        login.answer("wrong-" + PASSWORD)
        refused = invoke("push", "--tag", name, env={**store, **login.env})
        _one_line_naming(refused, token_registry, 1, "refused the login of", f"docker login {token_registry}")


def test_an_identity_token_is_traded_at_the_token_server(tmp_path, token_registry, docker_client):
    config = tmp_path / "docker-config"
    config.mkdir()
    with stored_image(tmp_path, token_registry, docker_client) as (name, store):
        for token, code in ((REFRESH, 0), ("stale-" + REFRESH, 1)):
            (config / "config.json").write_text(json.dumps({"auths": {token_registry: {"identitytoken": token}}}))
            result = invoke("push", "--tag", name, env={**store, "DOCKER_CONFIG": str(config)})
            assert result.code == code, result
        _one_line_naming(result, token_registry, 1, "refused the identity token")
