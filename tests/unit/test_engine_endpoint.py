"""Which engine a task talks to, in the docker CLI's order, from config files and context metadata laid out as
`docker context create` writes them; no engine is asked anything."""

from __future__ import annotations

import hashlib
import json
import logging

import pytest

from toolkit.engine import endpoint
from toolkit.errors import InputError


@pytest.fixture
def config(tmp_path, monkeypatch):
    """An empty docker config directory as DOCKER_CONFIG, with no DOCKER_HOST or DOCKER_CONTEXT set."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    (tmp_path / "config.json").write_text("{}")
    return tmp_path


def _context(config, name: str, host: str) -> None:
    """What `docker context create NAME --docker host=HOST` writes."""
    meta = config / "contexts/meta" / hashlib.sha256(name.encode()).hexdigest() / "meta.json"
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps({"Name": name, "Metadata": {}, "Endpoints": {"docker": {"Host": host,
                                                                                       "SkipTLSVerify": False}}}))


def _use(config, name: str) -> None:
    (config / "config.json").write_text(json.dumps({"currentContext": name}))


def test_nothing_set_is_the_default_socket(config):
    found = endpoint.resolve()
    assert (found.host, found.source, found.socket_path) == ("unix:///var/run/docker.sock", "the default socket",
                                                            "/var/run/docker.sock")


def test_the_order_is_docker_host_then_docker_context_then_the_current_context(config, monkeypatch):
    _context(config, "first", "unix:///run/first.sock")
    _context(config, "second", "tcp://127.0.0.1:2376")
    _use(config, "first")
    assert endpoint.resolve() == endpoint.Endpoint("unix:///run/first.sock", "docker context 'first'", "first")
    monkeypatch.setenv("DOCKER_CONTEXT", "second")
    found = endpoint.resolve()
    assert (found.host, found.context, found.socket_path) == ("tcp://127.0.0.1:2376", "second", None)
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/host.sock")
    found = endpoint.resolve()
    assert (found.host, found.source, found.context) == ("unix:///run/host.sock", "DOCKER_HOST", None)


def test_the_default_context_is_the_default_socket(config, monkeypatch):
    _use(config, "default")
    assert endpoint.resolve().host == endpoint.DEFAULT_HOST
    monkeypatch.setenv("DOCKER_CONTEXT", "default")
    assert endpoint.resolve().source == "docker context 'default'"


def test_a_context_that_does_not_exist_names_itself_and_what_named_it(config, monkeypatch):
    _use(config, "gone")
    with pytest.raises(InputError, match=r"docker context 'gone' \(from the currentContext of .*config.json\) "
                                         "does not exist") as raised:
        endpoint.resolve()
    assert raised.value.exit_code == 2
    monkeypatch.setenv("DOCKER_CONTEXT", "nope")
    with pytest.raises(InputError, match=r"docker context 'nope' \(from DOCKER_CONTEXT\) does not exist"):
        endpoint.resolve()


@pytest.mark.parametrize("host", ["foo://bar", "tcp://127.0.0.1:port", "tcp://", "fd://3"])
def test_a_docker_host_that_does_not_parse_is_input_error(config, monkeypatch, host):
    monkeypatch.setenv("DOCKER_HOST", host)
    with pytest.raises(InputError, match=f"DOCKER_HOST '{host}' does not parse"):
        endpoint.resolve()


@pytest.mark.parametrize("text", ["{not json", "[1, 2]"])
def test_a_config_that_does_not_parse_is_refused(config, text):
    (config / "config.json").write_text(text)
    with pytest.raises(InputError, match="config.json is not"):
        endpoint.resolve()


def test_the_engine_used_is_logged_once(config, caplog):
    with caplog.at_level(logging.INFO, logger="toolkit"):
        endpoint._last_logged = None
        endpoint.resolve()
        endpoint.resolve()
    assert [r.getMessage() for r in caplog.records] == ["engine: unix:///var/run/docker.sock (the default socket)"]


def test_contexts_are_found_with_no_config_file(tmp_path, monkeypatch):
    """A fresh machine after `docker context create`: contexts in ~/.docker/contexts and no config.json, which the
    docker CLI reads all the same (the SDK alone looks for them beside a config file it did not find)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)  # the SDK, finding no config file, would look in ./contexts
    for name in ("DOCKER_CONFIG", "DOCKER_HOST", "DOCKER_CONTEXT"):
        monkeypatch.delenv(name, raising=False)
    _context(tmp_path / ".docker", "remote", "tcp://127.0.0.1:2376")
    monkeypatch.setenv("DOCKER_CONTEXT", "remote")
    assert endpoint.resolve() == endpoint.Endpoint("tcp://127.0.0.1:2376", "docker context 'remote'", "remote")
    assert not (tmp_path / ".docker/config.json").exists()


def test_docker_config_with_no_config_file_holds_the_contexts(tmp_path, monkeypatch):
    """DOCKER_CONFIG names the directory whether or not it holds a config.json: the contexts there are the ones
    meant, not those beside ~/.docker/config.json; their TLS material is read from there too."""
    home, config = tmp_path / "home", tmp_path / "config"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setenv("DOCKER_CONTEXT", "remote")
    _context(home / ".docker", "remote", "tcp://home.invalid:2376")
    _use(home / ".docker", "remote")
    _context(config, "remote", "tcp://127.0.0.1:2376")
    tls = config / "contexts/tls" / hashlib.sha256(b"remote").hexdigest() / "docker"
    tls.mkdir(parents=True)
    for pem in ("ca.pem", "cert.pem", "key.pem"):
        (tls / pem).write_text("")
    found = endpoint.resolve()
    assert (found.host, found.context) == ("tcp://127.0.0.1:2376", "remote")
    assert found.tls is not None and found.tls.ca_cert == str(tls / "ca.pem")
    assert found.tls.cert == (str(tls / "cert.pem"), str(tls / "key.pem"))
