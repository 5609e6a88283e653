"""Tools for the fault tests: runs a test can signal at a chosen moment, leftover checks scoped to one run (other
helpers' tests share the engine), a fresh base image, another user, and a socket proxy standing in for an engine
that goes away."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import REPO, Result, sigint_default
from toolkit.engine.client import SESSION

LOCKS = "fromscratch-locks"  # files.exclusive's lock files: meant to stay
NOBODY = 65534
# A compile that takes as long as the test wants: gcc runs each of its stages through this wrapper.
SLOW_CFLAGS = "-wrapper 'sh,-c,sleep 600; exec \"$0\" \"$@\"'"


def invoke_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "invoke", "--search-root", str(REPO), *args]


class Run:
    """`invoke <args>` in its own process group, output to files, so a test can watch it and signal it."""

    def __init__(self, args: tuple[str, ...], cwd: Path, env: dict[str, str], logs: Path,
                 prefix: list[str] | None = None) -> None:
        logs.mkdir(exist_ok=True)
        stem = uuid.uuid4().hex[:8]
        self.out_path, self.err_path = logs / f"{stem}.out", logs / f"{stem}.err"
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen([*(prefix or []), *invoke_cmd(*args)], cwd=cwd, env=env, stdout=out,
                                         stderr=err, stdin=subprocess.DEVNULL, start_new_session=True,
                                         preexec_fn=sigint_default)

    @property
    def err(self) -> str:
        return self.err_path.read_text(errors="replace")

    def wait_for(self, what: str, predicate: Callable[[], object], timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"the run ended before {what}: {self.finish()}")
            time.sleep(0.05)
        self.proc.kill()
        raise AssertionError(f"timed out waiting for {what}: {self.finish()}")

    def interrupt(self, signum: int) -> None:
        """SIGINT goes to the whole process group, as a terminal's Ctrl-C does; SIGTERM to the process, as kill."""
        if signum == signal.SIGINT:
            os.killpg(self.proc.pid, signum)
        else:
            self.proc.send_signal(signum)

    def finish(self, timeout: float = 180) -> Result:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"the run did not end within {timeout} s: {self.err}") from None
        return Result(self.proc.returncode, self.out_path.read_text(errors="replace"), self.err)


@dataclass
class Sandbox:
    """One test's corner: a work dir (cwd), its own TMPDIR, and its own FROMSCRATCH_SESSION label value."""

    root: Path
    client: object = None
    session: str = field(default_factory=lambda: f"test-{uuid.uuid4().hex[:12]}")

    def __post_init__(self) -> None:
        for d in (self.work, self.tmp, self.logs):
            d.mkdir(exist_ok=True)
            os.chmod(d, 0o777)  # a run as another user writes here too

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "TMPDIR": str(self.tmp), "FROMSCRATCH_SESSION": self.session, **extra}

    def start(self, *args: str, env: dict[str, str] | None = None, prefix: list[str] | None = None) -> Run:
        return Run(args, self.work, env or self.env(), self.logs, prefix)

    def run(self, *args: str, env: dict[str, str] | None = None, prefix: list[str] | None = None,
            timeout: float = 600) -> Result:
        return self.start(*args, env=env, prefix=prefix).finish(timeout)

    def temp_leftovers(self) -> list[str]:
        left = [p.name for p in self.tmp.iterdir() if p.name != LOCKS]
        locks = self.tmp / LOCKS
        if locks.is_dir():
            left += [f"{LOCKS}/{p.name}" for p in locks.iterdir() if not p.name.endswith(".lock")]
        return left

    def partial_files(self) -> list[str]:
        return sorted(str(p.relative_to(self.work)) for p in self.work.rglob("*.partial"))

    def containers(self) -> list[dict]:
        """This run's containers, as the engine lists them (api level: the SDK's list() inspects each one,
        which races with their removal)."""
        return self.client.api.containers(all=True, filters={"label": f"{SESSION}={self.session}"})  # type: ignore[attr-defined]

    def images(self) -> list[dict]:
        return self.client.api.images(all=True, filters={"label": f"{SESSION}={self.session}"})  # type: ignore[attr-defined]

    def assert_clean(self) -> None:
        """Nothing of this run's left in the engine or in TMPDIR, and no half-written file in the work dir."""
        assert not self.containers(), self.containers()
        assert not self.images(), self.images()
        assert not self.temp_leftovers(), self.temp_leftovers()
        assert not self.partial_files(), self.partial_files()

    def remove_containers(self) -> None:
        for c in self.containers():
            self.client.api.remove_container(c["Id"], force=True)  # type: ignore[attr-defined]


@pytest.fixture
def sandbox(tmp_path, docker_client) -> Iterator[Sandbox]:
    box = Sandbox(tmp_path, docker_client)
    yield box
    box.remove_containers()  # a failed test must not leave its containers on the shared engine
    for image in box.images():
        try:
            docker_client.images.remove(image["Id"], force=True)
        except Exception:
            pass


@pytest.fixture
def local_sandbox(tmp_path) -> Sandbox:
    """A sandbox for runs that need no engine."""
    return Sandbox(tmp_path)


def descendants(client, image_id: str) -> list[dict]:
    """Every image built on image_id (all=True, so intermediate and dangling ones too), parents first."""
    children: dict[str, list[dict]] = {}
    for attrs in client.api.images(all=True):
        children.setdefault(attrs.get("ParentId") or "", []).append(attrs)
    found, queue = [], [image_id]
    while queue:
        for attrs in children.get(queue.pop(0), []):
            found.append(attrs)
            queue.append(attrs["Id"])
    return found


def new_base(client, builder_base: str) -> str:
    """A base image nothing has been built on (its own id, so the builder's cache cannot answer for it), built
    by client's engine (Docker or Podman) from builder_base; returns its tag."""
    tag = f"fromscratch-test-base-{uuid.uuid4().hex[:10]}:latest"
    dockerfile = f"FROM {builder_base}\nLABEL org.fromscratch.test={tag}\n".encode()
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
    context.seek(0)
    for message in client.api.build(fileobj=context, custom_context=True, tag=tag, rm=True, forcerm=True,
                                    decode=True, pull=False):
        assert "error" not in message, message
    return tag


@pytest.fixture
def fresh_base(docker_client, builder_base) -> Iterator[str]:
    """new_base on dockerd; afterwards every image built on it, and it, are removed."""
    tag = new_base(docker_client, builder_base)
    base_id = docker_client.images.get(tag).id
    yield tag
    deadline = time.monotonic() + 60  # the engine may still be removing a cancelled build's step container
    while ((left := docker_client.api.containers(all=True, filters={"ancestor": base_id}))
           and time.monotonic() < deadline):
        for container in left:
            with contextlib.suppress(Exception):
                docker_client.api.remove_container(container["Id"], force=True)
        time.sleep(0.5)
    for attrs in reversed(descendants(docker_client, base_id)):
        for ref in [t for t in attrs.get("RepoTags") or [] if t != "<none>:<none>"] or [attrs["Id"]]:
            try:
                docker_client.images.remove(ref, force=True, noprune=True)
            except Exception:
                pass
    docker_client.images.remove(tag, force=True)


def engine_socket() -> str:
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    return host


def as_other_user() -> list[str]:
    """A command prefix that runs as nobody with the engine socket's group: the toolkit as an ordinary user.
    CAP_DAC_READ_SEARCH only lets it read this checkout wherever CI cloned it; what it writes is its own."""
    if os.geteuid() != 0:
        return []  # already an ordinary user
    sock = engine_socket().removeprefix("unix://")
    gid = os.stat(sock).st_gid if os.path.exists(sock) else NOBODY  # no engine here: tests that need none
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={gid}", "--clear-groups",
            "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]


_PROXY = r"""
import socket, sys, threading
listen, upstream = sys.argv[1], sys.argv[2]
def connect():
    if upstream.startswith("tcp://"):
        host, port = upstream[6:].rsplit(":", 1)
        return socket.create_connection((host, int(port)))
    s = socket.socket(socket.AF_UNIX)
    s.connect(upstream.removeprefix("unix://"))
    return s
def pump(a, b):
    try:
        while data := a.recv(65536):
            b.sendall(data)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
server = socket.socket(socket.AF_UNIX)
server.bind(listen)
server.listen(64)
print("ready", flush=True)
while True:
    client, _ = server.accept()
    upstream_conn = connect()
    threading.Thread(target=pump, args=(client, upstream_conn), daemon=True).start()
    threading.Thread(target=pump, args=(upstream_conn, client), daemon=True).start()
"""


class EngineProxy:
    """A socket that forwards to the real engine until kill(): then the engine is gone, as far as a client
    of this socket can tell (the shared dockerd itself is never touched)."""

    def __init__(self, where: Path) -> None:
        self.path = where / "engine.sock"
        self.proc = subprocess.Popen([sys.executable, "-c", _PROXY, str(self.path), engine_socket()],
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"

    @property
    def docker_host(self) -> str:
        return f"unix://{self.path}"

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def engine_proxy(tmp_path) -> Iterator[EngineProxy]:
    proxy = EngineProxy(tmp_path)
    yield proxy
    proxy.kill()


def sparse_binary(static: Path, dest: Path, size: int) -> Path:
    """A real static executable grown to size with a hole at its end: the loader ignores bytes past the
    segments, so it still runs, and the disk holds only the original few hundred KiB."""
    dest.write_bytes(static.read_bytes())
    os.truncate(dest, size)
    os.chmod(dest, 0o755)
    return dest

