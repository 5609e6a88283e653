"""The login and TLS trust a push uses, found as docker finds them: credHelpers, then credsStore, then auths
(passwords and identity tokens), through real credential-helper programs on PATH; certs.d folders; the identity
token traded at a token server. No registry or engine."""

from __future__ import annotations

import base64
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest

from toolkit.engine import login as logins
from toolkit.engine.login import CredentialsError, Login, find_login
from toolkit.errors import InputError
from toolkit.image import registry, tls
from toolkit.image.tls import trust

REG = "registry.test:5000"


@pytest.fixture
def docker_config(tmp_path, monkeypatch):
    """DOCKER_CONFIG in tmp_path and a bin directory first on PATH; returns a writer of config.json."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")

    def write(config: dict) -> Path:
        (tmp_path / "config.json").write_text(json.dumps(config))
        return tmp_path

    return write


def helper(config_dir: Path, name: str, stdout: str, status: int = 0) -> None:
    """A docker-credential-NAME that prints stdout for `get` and notes the server it was asked for."""
    path = config_dir / "bin" / f"docker-credential-{name}"
    (config_dir / f"{name}.out").write_text(stdout)
    path.write_text(f'#!/bin/sh\nread -r server\necho "$server" >> "{config_dir}/{name}.asked"\n'
                    f'cat "{config_dir}/{name}.out"\nexit {status}\n')
    path.chmod(0o755)


def _auth(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def _creds(user: str, secret: str) -> str:
    return json.dumps({"ServerURL": REG, "Username": user, "Secret": secret})


def test_cred_helpers_then_creds_store_then_auths(docker_config):
    where = docker_config({"auths": {REG: {"auth": _auth("plain", "pw0")}}})
    assert find_login(REG) == Login("plain", "pw0", "", f"auths in {where / 'config.json'}")
    helper(where, "store", _creds("stored", "pw1"))
    docker_config({"auths": {REG: {"auth": _auth("plain", "pw0")}}, "credsStore": "store"})
    assert find_login(REG) == Login("stored", "pw1", "", "docker-credential-store")
    helper(where, "special", _creds("special", "pw2"))
    docker_config({"credsStore": "store", "credHelpers": {REG: "special", "other.test": "store"}})
    assert find_login(REG) == Login("special", "pw2", "", "docker-credential-special")
    assert (where / "special.asked").read_text().split() == [REG]


def test_identity_tokens_from_auths_and_from_a_helper(docker_config):
    where = docker_config({"auths": {REG: {"identitytoken": "refresh-me"}}})
    assert find_login(REG) == Login("", "", "refresh-me", f"auths in {where / 'config.json'}")
    helper(where, "tok", _creds("<token>", "from-helper"))
    docker_config({"credsStore": "tok"})
    assert find_login(REG).identity_token == "from-helper"  # type: ignore[union-attr]


def test_no_login_an_empty_entry_and_a_helper_without_one_are_none(docker_config):
    assert find_login(REG) is None
    where = docker_config({"auths": {REG: {}}})  # Docker Desktop's mark for a login kept in its store
    assert find_login(REG) is None
    helper(where, "empty", "credentials not found in native keychain\n", status=1)
    docker_config({"credsStore": "empty"})
    assert find_login(REG) is None


def test_docker_hub_is_asked_for_by_docker_s_own_name(docker_config):
    where = docker_config({"credsStore": "hub"})
    helper(where, "hub", _creds("me", "pw"))
    assert find_login(logins.DOCKER_HUB).username == "me"  # type: ignore[union-attr]
    assert (where / "hub.asked").read_text().split() == ["https://index.docker.io/v1/"]


@pytest.mark.parametrize("setup, words", [
    (None, "docker-credential-absent that"),
    ("boom: the keychain is locked\n", "docker-credential-broken failed for registry.test:5000: "),
    ("<html>not json</html>", "answered for registry.test:5000 with something that is not credentials"),
    ('{"Username": "x"}', "something that is not credentials"),
])
def test_broken_helpers_are_one_clear_error_naming_the_registry(docker_config, setup, words):
    name = "absent" if setup is None else "broken"
    where = docker_config({"credHelpers": {REG: name}})
    if setup is not None:
        helper(where, name, setup, status=1 if setup.startswith("boom") else 0)
    with pytest.raises(CredentialsError, match=words) as raised:
        find_login(REG)
    assert raised.value.exit_code == 2 and f"docker login {REG}" in str(raised.value)
    assert "\n" not in str(raised.value)


def test_an_auths_entry_that_is_not_an_object_is_input_error(docker_config):
    docker_config({"auths": {REG: "oops"}})
    with pytest.raises(InputError, match="auths entry"):
        find_login(REG)


# --- TLS trust from certs.d --------------------------------------------------------------------------------

def test_trust_is_the_system_cas_plus_the_registry_s_own(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    certs_d = tmp_path / "certs.d"
    assert trust(REG, certs_d=certs_d) == tls.Trust(tls._system_cas())
    folder = certs_d / REG
    folder.mkdir(parents=True)
    (folder / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\nOURS\n-----END CERTIFICATE-----\n")
    (folder / "client.cert").write_text("cert")
    (folder / "client.key").write_text("key")
    found = trust(REG, certs_d=certs_d)
    assert found.cert == (str(folder / "client.cert"), str(folder / "client.key"))
    bundle = Path(str(found.verify)).read_text()
    assert bundle.startswith(Path(tls._system_cas()).read_text()[:200]) and "\nOURS\n" in bundle
    assert trust(REG, certs_d=certs_d).verify == found.verify  # written once, by its content
    assert trust(REG, insecure=True, certs_d=certs_d).verify is False


@pytest.mark.parametrize("names, words", [(["client.cert"], "has no client.key"), (["client.key"], "no client.cert")])
def test_a_client_certificate_without_its_pair_is_refused(tmp_path, names, words):
    folder = tmp_path / REG
    folder.mkdir()
    for name in names:
        (folder / name).write_text("x")
    with pytest.raises(InputError, match=words):
        trust(REG, certs_d=tmp_path)


# --- an identity token traded for an access token ----------------------------------------------------------

class _TokenServer(BaseHTTPRequestHandler):
    forms: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        form = dict(urllib.parse.parse_qsl(self.rfile.read(int(self.headers["Content-Length"])).decode()))
        self.forms.append(form)
        ok = form.get("refresh_token") == "good"
        body = json.dumps({"access_token": "access-1"} if ok else {"error": "invalid_grant"}).encode()
        self.send_response(200 if ok else 401)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_an_identity_token_is_traded_at_the_realm_of_the_bearer_challenge():
    from dxf.exceptions import DXFUnauthorizedError

    server = ThreadingHTTPServer(("127.0.0.1", 0), _TokenServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        realm = f"http://127.0.0.1:{server.server_port}/token"
        challenge = SimpleNamespace(headers={"www-authenticate": f'Bearer realm="{realm}",service="reg.test",'
                                                                 'scope="repository:me/app:pull,push"'})
        assert registry._refreshed_token(challenge, "good", tls.Trust(True)) == "access-1"
        assert _TokenServer.forms[-1] == {"grant_type": "refresh_token", "refresh_token": "good",
                                          "client_id": "fromscratch", "service": "reg.test",
                                          "scope": "repository:me/app:pull,push"}
        with pytest.raises(DXFUnauthorizedError):
            registry._refreshed_token(challenge, "bad", tls.Trust(True))
        basic = SimpleNamespace(headers={"www-authenticate": 'Basic realm="r"'})
        with pytest.raises(DXFUnauthorizedError):
            registry._refreshed_token(basic, "good", tls.Trust(True))
    finally:
        server.shutdown()
