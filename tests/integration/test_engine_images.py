"""The engine calls of `invoke image` (engine.Images), both ways against the real engine: the standard-library
client on the local socket and the SDK; the same answers, and the same errors after engine.step."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, gcc
from toolkit.engine import client as engine
from toolkit.errors import EngineError, EngineUnavailable
from toolkit.image import scratch as img

pytestmark = pytest.mark.engine

MISSING = "sha256:" + "0" * 64


@pytest.fixture(params=["socket", "sdk"])
def store(request, docker_client) -> Iterator[engine.Images]:
    if request.param == "sdk":
        yield engine.images(docker_client)
        return
    path = engine.local_socket(os.environ.get("DOCKER_HOST", ""))
    if path is None:
        pytest.skip("DOCKER_HOST is not a unix socket: the SDK path above is the one in use")
    made = engine.SocketImages.connect(path)
    yield made
    made.close()


@pytest.fixture(scope="module")
def program(tmp_path_factory) -> Path:
    # a binary of this module's own, so that no other test loads its image first
    tmp = tmp_path_factory.mktemp("engine-images")
    return gcc(tmp, f'int main(void){{ return 0; }}\nconst char *id = "{os.urandom(8).hex()}";\n',
               "-static", "-Os", "-s", name="prog")


def test_both_ways_load_tag_and_inspect_alike(store, program, docker_client, image_tag):
    first, second = image_tag(), image_tag()
    with img.assemble(program, first, epoch=0, opts=img.Options(labels={"way": type(store).__name__})) as built:
        loaded = img.load(store, built)
        assert loaded["id"] == built.image.image_id == docker_client.images.get(first).id
        again = img.load(store, built, [second])  # already in the engine: tagged, not loaded again
    assert again["id"] == loaded["id"] and again["size"] == loaded["size"] > 0
    assert docker_client.images.get(second).id == loaded["id"]
    assert store.inspect(MISSING) is None
    assert store.native_arch() == docker_client.version()["Arch"]


def test_a_refusal_is_one_engine_error_naming_the_step(store):
    with pytest.raises(EngineError, match=r"^tagging nothing failed: .*[Nn]o such image"):
        with engine.step("tagging nothing"):
            store.tag(MISSING, "fromscratch-test-never", "latest")


def test_an_archive_the_engine_rejects_is_an_engine_error(store):
    with pytest.raises(EngineError, match=r"^loading junk into the engine failed: \S"):
        with engine.step("loading junk into the engine"):
            store.load(iter([b"this is not a tar archive" * 100]))


def test_no_socket_is_engine_unavailable(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/fromscratch-no-engine.sock")
    with pytest.raises(EngineUnavailable, match="no Docker engine answered at unix:///nonexistent"):
        engine.images()


@pytest.mark.parametrize("host, path", [("", engine.DEFAULT_SOCKET), ("unix:///run/user/1000/docker.sock",
                                                                       "/run/user/1000/docker.sock"),
                                        ("tcp://127.0.0.1:2376", None), ("ssh://me@build-host", None),
                                        ("npipe:////./pipe/docker_engine", None)])
def test_only_a_unix_socket_takes_the_standard_library_path(host, path):
    assert engine.local_socket(host) == path


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(1 << 16):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def tcp_to_engine() -> Iterator[str]:
    """tcp://127.0.0.1:PORT forwarded to the local engine socket: an engine the SDK has to reach."""
    path = engine.local_socket(os.environ.get("DOCKER_HOST", ""))
    if path is None:
        pytest.skip("DOCKER_HOST is not a unix socket to forward to")
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = listener.accept()
                upstream = socket.socket(socket.AF_UNIX)
                upstream.connect(path)
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=_pipe, args=(a, b), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"tcp://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


def test_any_other_docker_host_goes_through_the_sdk(program, docker_client, image_tag, monkeypatch):
    tag = image_tag()
    with tcp_to_engine() as host:
        monkeypatch.setenv("DOCKER_HOST", host)
        store = engine.images()
        assert isinstance(store, engine.SdkImages)
        with img.assemble(program, tag, epoch=0, opts=img.Options(labels={"way": "tcp"})) as built:
            assert img.load(store, built)["id"] == built.image.image_id
    assert docker_client.images.get(tag).id == built.image.image_id


@contextlib.contextmanager
def engine_that_hangs_up(tmp_path: Path) -> Iterator[str]:
    """A socket that answers /version like an engine, then closes the connection on any other request: an
    engine that goes away mid-load (the shared real one cannot be stopped for a test)."""
    path = str(tmp_path / "hangs-up.sock")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen()
    version = json.dumps({"ApiVersion": "1.41", "Arch": "amd64", "Version": "20.10"}).encode()

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = listener.accept()
                with conn:
                    head = conn.recv(1 << 16)
                    if head.startswith(b"GET /version") or b"/_ping" in head.split(b"\r\n", 1)[0]:
                        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                                     b"Content-Length: %d\r\n\r\n%b" % (len(version), version))

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"unix://{path}"
    finally:
        listener.close()


def test_an_engine_that_goes_away_is_engine_unavailable(program, tmp_path, monkeypatch):
    with engine_that_hangs_up(tmp_path) as host:
        monkeypatch.setenv("DOCKER_HOST", host)
        store = engine.images()
        assert isinstance(store, engine.SocketImages)
        with img.assemble(program, "gone:latest", epoch=0) as built:
            with pytest.raises(EngineUnavailable, match=r"^looking up sha256:\w+ failed: the engine stopped "
                                                        r"answering"):
                img.load(store, built)
            with pytest.raises(EngineUnavailable, match=r"^loading gone:latest into the engine failed: the "
                                                        r"engine stopped answering"):
                with engine.step("loading gone:latest into the engine"):
                    store.load(iter([b"\0" * (1 << 20)] * 8))


def test_the_image_task_on_the_local_socket_never_imports_the_sdk(program, image_tag):
    """The SDK (and requests) cost a command more start-up time than its whole engine work."""
    tag = image_tag()
    code = ("import sys\nfrom toolkit.cli import program\n"
            f"program.run(['fromscratch', 'image', '--tag', {tag!r}, '--binary', {str(program)!r}], exit=False)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('docker', 'requests', 'urllib3')))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "loaded linux/" in proc.stdout and proc.stdout.rstrip().endswith("[]"), proc.stdout + proc.stderr
