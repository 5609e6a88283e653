"""Shared fixtures: the real engines (Docker, and Podman beside it; required under CI=true), a throwaway registry,
real gcc binaries, and a CLI runner."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["tests.faults"]  # fixtures for the fault tests: sandbox, fresh_base, engine_proxy

REPO = Path(__file__).resolve().parent.parent
CSRC = REPO / "csrc"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# The build container's base: no registry is reachable here, so CI makes this one with `invoke rootfs`.
BUILDER_BASE = os.environ.get("FROMSCRATCH_TEST_BUILDER_BASE", "fromscratch/debian:bookworm")
# Who supplies the programs the tests build, as every SBOM should say (NTIA's minimum elements ask for it).
os.environ.setdefault("FROMSCRATCH_SBOM_SUPPLIER", "Organization: fromscratch test suite")


@dataclass
class Result:
    code: int
    out: str
    err: str


def invoke(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
           timeout: int = 600) -> Result:
    """Run `invoke <args>` against this checkout's tasks.py as a separate process, as a user would."""
    proc = subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(REPO), *args],
                          cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    return Result(proc.returncode, proc.stdout, proc.stderr)


def assert_clean_failure(result: Result, code: int | None = None) -> None:
    """A failure that a user can read: non-zero, no Python traceback."""
    assert result.code != 0, result
    if code is not None:
        assert result.code == code, result
    assert "Traceback" not in result.err + result.out, result.err


@contextlib.contextmanager
def sigint(handler: Any) -> Iterator[None]:
    """SIGINT handled so for the block. The suite may run with SIGINT ignored (nohup, a shell's background job,
    some CI runners), so a test that relies on Ctrl-C's KeyboardInterrupt sets it."""
    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def sigint_default() -> None:
    """preexec_fn for a run a test interrupts with SIGINT: the default action, as from a terminal. Without it the
    run would inherit an ignored SIGINT from the suite and rightly keep ignoring it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="session", autouse=True)
def every_sbom_holds(tmp_path_factory):
    """Every SBOM any test's build wrote beside a binary (anywhere under the session's temporary directories)
    validates with spdx-tools and has NTIA's minimum elements: checked once, when the session ends."""
    yield
    found = sorted(tmp_path_factory.getbasetemp().rglob("*.spdx.json"))
    if found and not IN_CI and importlib.util.find_spec("ntia_conformance_checker") is None:
        return  # outside CI the checkers are optional; the SBOM tests say they skipped
    if found:
        from tests import spdxcheck

        for path in found:
            spdxcheck.check(path)


@pytest.fixture(scope="session", autouse=True)
def kept_states_go(tmp_path_factory):
    """The build state that project builds of the session's temporary projects kept on the engine (a volume
    each, compile/kept.py) is removed when the session ends: a test's project is never built again."""
    yield
    from toolkit.compile import kept
    from toolkit.engine import client as engine
    from toolkit.engine import volume
    from toolkit.errors import ToolkitError

    top = str(tmp_path_factory.getbasetemp().resolve())
    try:
        client = engine.connect(timeout=30)
        for v in volume.kept(client, sizes=False):
            if v.labels.get(kept.LABEL + "project", "").startswith(top + os.sep):
                volume.remove(client, v.name)
    except ToolkitError:
        pass  # no engine: nothing was kept on it


@pytest.fixture(scope="session")
def docker_client():
    """The real engine. Outside CI a missing engine skips; under CI=true it fails the test."""
    from toolkit.engine import client as engine
    from toolkit.errors import EngineUnavailable

    try:
        return engine.connect()
    except EngineUnavailable as exc:
        if IN_CI:
            pytest.fail(f"CI=true but no Docker engine answers: {exc}")
        pytest.skip(f"no Docker engine answers: {exc}")


@pytest.fixture(scope="session")
def builder_base(docker_client) -> str:
    from toolkit.engine import client as engine

    if not engine.image_exists(docker_client, BUILDER_BASE):
        msg = (f"the build container's base {BUILDER_BASE} is missing: make it with "
               f"`invoke rootfs --suite bookworm --tag {BUILDER_BASE}` (scripts/dev does)")
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    return BUILDER_BASE


@pytest.fixture
def image_tag(docker_client):
    """A unique image name, removed from the engine afterwards."""
    tags: list[str] = []

    def make(prefix: str = "fromscratch-test") -> str:
        tag = f"{prefix}-{uuid.uuid4().hex[:10]}:latest"
        tags.append(tag)
        return tag

    yield make
    for tag in tags:
        try:
            docker_client.images.remove(tag, force=True)
        except Exception:
            pass


def hello_project(where: Path, name: str = "p") -> Path:
    """A one-program Makefile project (hello.c, built static, prints "hi") in where/name."""
    proj = where / name
    proj.mkdir()
    (proj / "hello.c").write_text('#include <stdio.h>\nint main(void){puts("hi");return 0;}\n')
    (proj / "Makefile").write_text("hello: hello.c\n\t$(CC) -static -o hello hello.c\n")
    return proj


def max_rss_mib(*args: str, cwd: Path) -> tuple[int, str]:
    """Run `invoke <args>` in a fresh process; return its children's peak RSS in MiB (invoke's own, and its build's)
    and the end of its stderr."""
    probe = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024); print(p.stderr[-2000:])")
    proc = subprocess.run([sys.executable, "-c", probe, sys.executable, "-m", "invoke", "--search-root", str(REPO),
                           *args], capture_output=True, text=True, cwd=cwd, timeout=600)
    first, _, rest = proc.stdout.partition("\n")
    return int(first), rest


def gcc(tmp: Path, source: str, *flags: str, name: str = "prog") -> Path:
    """Compile C source text with the host gcc; a real binary for a real test."""
    src = tmp / f"{name}.c"
    src.write_text(source)
    out = tmp / name
    subprocess.run(["gcc", *flags, str(src), "-o", str(out)], check=True, capture_output=True)
    return out


@pytest.fixture(scope="session")
def binaries(tmp_path_factory) -> dict[str, Path]:
    """Static and dynamic builds of a tiny program, compiled once per session."""
    tmp = tmp_path_factory.mktemp("bin")
    src = '#include <stdio.h>\nint main(void){ puts("hi"); return 0; }\n'
    return {
        "static": gcc(tmp, src, "-static", "-O2", name="static"),
        "dynamic": gcc(tmp, src, "-O2", name="dynamic"),
        "object": gcc(tmp, src, "-c", name="object.o"),
        "shared": gcc(tmp, "int f(void){return 1;}\n", "-shared", "-fPIC", name="libf.so"),
        "static_pie": gcc(tmp, src, "-static-pie", "-fPIE", "-O2", name="static_pie"),
    }


def missing(what: str) -> None:
    """A tool or service the tests need is not there: a failure under CI=true, else a skip naming it."""
    if IN_CI:
        pytest.fail(f"CI=true but {what}")
    pytest.skip(what)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(what: str, ready: Any, proc: subprocess.Popen, seconds: float = 30) -> None:
    """Poll ready() until it is true; a service process that exits first fails with its output."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):  # not up yet: refused, reset, the SDK's own word for that
            if ready():
                return
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            pytest.fail(f"{what} exited ({proc.returncode}): {err[-2000:]}")
        time.sleep(0.1)
    proc.kill()
    pytest.fail(f"{what} did not answer within {seconds} s")


# --- a registry: Debian's docker-registry ------------------------------------------------------------------

@dataclass
class Registry:
    host: str  # 127.0.0.1:PORT
    root: Path


@contextlib.contextmanager
def serve_registry(root: Path, extra: str = "", tls: tuple[Path, Path, Path | None] | None = None,
                   ready: Any = None) -> Iterator[Registry]:
    """Debian's docker-registry on a free loopback port, storage under root, stopped afterwards. extra: more of its
    config (auth:); tls: its certificate, key and the CA it requires client certificates from (or None); ready:
    a probe given host:port (default: plain HTTP)."""
    exe = shutil.which("docker-registry")
    if exe is None:
        missing("Debian's docker-registry is not installed (scripts/dev installs it)")
    root.mkdir(parents=True, exist_ok=True)
    host = f"127.0.0.1:{free_port()}"
    http = f"http:\n  addr: {host}\n"
    if tls is not None:
        cert, key, client_ca = tls
        http += f"  tls:\n    certificate: {cert}\n    key: {key}\n"
        if client_ca is not None:
            http += f"    clientcas:\n      - {client_ca}\n"
    (root / "config.yml").write_text(
        "version: 0.1\nlog:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n{http}{extra}")
    proc = subprocess.Popen([exe, "serve", str(root / "config.yml")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        probe = ready or (lambda at: urllib.request.urlopen(f"http://{at}/v2/", timeout=1))
        wait_until("docker-registry", lambda: probe(host), proc)
        yield Registry(host, root)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# --- Podman's Docker-API service, beside dockerd -----------------------------------------------------------

@dataclass
class Podman:
    """Debian's podman serving the Docker API on a socket of its own and on tcp://127.0.0.1:PORT, its storage in
    a temporary directory (never the host's podman storage)."""

    socket: str  # unix:///...
    tcp: str  # tcp://127.0.0.1:PORT
    root: Path
    env: dict[str, str] = field(default_factory=dict)  # what a podman command needs to see that storage

    def client(self, host: str | None = None) -> Any:
        import docker

        return docker.DockerClient(base_url=host or self.socket, timeout=300)

    def command(self, *args: str) -> list[str]:
        return ["podman", *self.flags, *args]

    @property
    def flags(self) -> list[str]:
        return ["--root", str(self.root / "storage"), "--runroot", str(self.root / "run"),
                "--tmpdir", str(self.root / "libpod"), "--storage-driver", "overlay"]


# Podman here cannot set the open-files rlimit on containers ("error setting rlimit type 7: operation not
# permitted"): no default ulimits lets them start. The events go to a file of the service's own.
_CONTAINERS_CONF = """[containers]
default_ulimits = []

[engine]
events_logger = "file"
events_logfile_path = "{root}/events.log"
"""


@pytest.fixture(scope="session")
def podman(tmp_path_factory) -> Iterator[Podman]:
    """Podman's service for the session, on a unix socket and on TCP; under CI=true a missing podman fails."""
    if shutil.which("podman") is None:
        missing("podman is not installed (scripts/dev installs it)")
    root = tmp_path_factory.mktemp("podman")
    (root / "containers.conf").write_text(_CONTAINERS_CONF.format(root=root))
    env = {**os.environ, "CONTAINERS_CONF": str(root / "containers.conf")}
    env.pop("DOCKER_HOST", None)
    engine = Podman(f"unix://{root / 'podman.sock'}", f"tcp://127.0.0.1:{free_port()}", root,
                    {"CONTAINERS_CONF": env["CONTAINERS_CONF"]})
    procs = [subprocess.Popen(engine.command("system", "service", "--time=0", uri), env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
             for uri in (engine.socket, engine.tcp)]
    try:
        for proc, uri in zip(procs, (engine.socket, engine.tcp), strict=True):
            wait_until(f"podman system service {uri}", lambda uri=uri: engine.client(uri).ping(), proc)
        yield engine
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        _drop_storage(engine)


def _drop_storage(engine: Podman) -> None:
    """Podman leaves its overlay directory bind-mounted on itself (and a container's mounts, if one outlived the
    service): unmounted, deepest first, before the directory goes."""
    with open("/proc/self/mounts") as fh:
        points = [line.split()[1] for line in fh]
    for point in sorted((p for p in points if p.startswith(str(engine.root) + "/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)
    shutil.rmtree(engine.root, ignore_errors=True)


@pytest.fixture(scope="session")
def podman_builder_base(podman, docker_client, builder_base) -> str:
    """The build container's base, copied from dockerd into Podman's store once per session (a `docker save`
    streamed into Podman's load: seconds, where a debootstrap takes a minute)."""
    client = podman.client()
    with contextlib.suppress(Exception):
        client.images.get(builder_base)
        return builder_base
    saved = docker_client.api.get_image(builder_base, chunk_size=1 << 20)
    for message in client.api.load_image(saved):
        assert "error" not in message, message
    return builder_base


def tls_material(where: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1, 127.0.0.2 (another host, for tests of what goes where) and
    localhost signed by it, and a client certificate: openssl."""
    where.mkdir(parents=True, exist_ok=True)
    files = {name: where / name for name in ("ca.crt", "ca.key", "server.crt", "server.key", "client.cert",
                                             "client.key")}

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=where)

    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", f"/CN=fromscratch test CA {uuid.uuid4().hex[:8]}")
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1,IP:127.0.0.2,DNS:localhost\nextendedKeyUsage=serverAuth"),
                      ("client", "extendedKeyUsage=clientAuth")):
        (where / f"{name}.ext").write_text(ext + "\n")
        suffix = "crt" if name == "server" else "cert"
        openssl("req", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.{suffix}", "-days", "2", "-extfile", f"{name}.ext")
    return files


def https_ready(files: dict[str, Path]) -> Any:
    """serve_registry's probe for a TLS registry (that may want client certificates)."""
    context = ssl.create_default_context(cafile=str(files["ca.crt"]))
    context.load_cert_chain(str(files["client.cert"]), str(files["client.key"]))

    def ready(host: str) -> bool:
        try:
            urllib.request.urlopen(f"https://{host}/v2/", timeout=1, context=context)
        except urllib.error.HTTPError:
            pass  # 401: it answers
        return True

    return ready
