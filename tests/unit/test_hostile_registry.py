"""`invoke push` and `invoke sbom --remote` against a registry that misbehaves on purpose: served by the test itself
(tests/hostile.py), over plain HTTP and TLS, with answers that are huge, endless, slow, malformed, redirecting or
that send an upload to another host. Each ends in one line, exit 1 or 2, in bounded memory and time, and no login
reaches a host other than the registry's."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO, tls_material
from tests.hostile import Answer, FakeRegistry, HostileServer, Request, json_answer
from tests.image_helpers import tiny_for

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
SPDX = "application/spdx+json"
USER, PASSWORD = "fromscratch", "hostile-test-secret"
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
LIMIT = "2"  # FROMSCRATCH_NET_TIMEOUT for these tests: a slow answer is stopped after 2 s, not a minute
# What a run may take at most in memory: the cap on an answer is 4 MiB; Python, requests and invoke are ~40 MiB.
MEMORY_MIB = 100


@dataclass
class Run:
    code: int
    out: str
    err: str
    peak_mib: int
    seconds: float


def run(*args: str, env: dict[str, str], timeout: float = 40) -> Run:
    """`invoke ARGS` in a process of its own, with its peak memory (RSS) and how long it took."""
    probe = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024); print(p.returncode); "
             "sys.stdout.write(p.stdout + '\\0' + p.stderr)")
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", probe, sys.executable, "-m", "invoke", "--search-root",
                           str(REPO), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **env})
    peak, code, rest = proc.stdout.split("\n", 2)
    out, _, err = rest.partition("\0")
    return Run(int(code), out, err, int(peak), time.monotonic() - start)


def one_line(result: Run, code: int, *words: str) -> None:
    """A failure a user can read: the code, one line on stderr, no traceback or internal error, the words."""
    assert result.code == code, result
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.err
    assert "internal error" not in result.err and "Traceback" not in result.err, result.err
    for word in words:
        assert word in result.err, result.err
    assert result.peak_mib < MEMORY_MIB, f"peak RSS {result.peak_mib} MiB"


@pytest.fixture(scope="module")
def tls(tmp_path_factory) -> dict[str, Path]:
    return tls_material(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    """No login saved, caches and the store in this test's directory, the short network limit."""
    (tmp_path / "docker").mkdir()
    return {"DOCKER_CONFIG": str(tmp_path / "docker"), "XDG_CACHE_HOME": str(tmp_path / "cache"),
            "FROMSCRATCH_STORE": str(tmp_path / "store"), "FROMSCRATCH_NET_TIMEOUT": LIMIT}


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _published(registry: FakeRegistry, blob: bytes = b'{"spdxVersion": "SPDX-2.3"}') -> dict[str, str]:
    """An image in the fake registry under :latest, with an SBOM listed in its referrers tag (the registry has no
    referrers API): the digests of each part, for overrides to aim at."""
    config = b"{}"
    manifest = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST,
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": _digest(config), "size": len(config)},
                           "layers": []}).encode()
    artifact = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST, "artifactType": SPDX,
                           "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": _digest(b"{}"),
                                      "size": 2},
                           "layers": [{"mediaType": SPDX, "digest": _digest(blob), "size": len(blob)}],
                           "subject": {"mediaType": MANIFEST, "digest": _digest(manifest),
                                       "size": len(manifest)}}).encode()
    index = json.dumps({"schemaVersion": 2, "mediaType": INDEX,
                        "manifests": [{"mediaType": MANIFEST, "digest": _digest(artifact), "size": len(artifact),
                                       "artifactType": SPDX}]}).encode()
    registry.manifests["latest"] = registry.manifests[_digest(manifest)] = (MANIFEST, manifest)
    registry.manifests[_digest(artifact)] = (MANIFEST, artifact)
    tag = _digest(manifest).replace(":", "-")
    registry.manifests[tag] = (INDEX, index)
    registry.blobs[_digest(blob)] = blob
    return {"manifest": _digest(manifest), "artifact": _digest(artifact), "blob": _digest(blob), "tag": tag}


def _when(path_part: str, answer: Answer, method: str = "GET"):
    """An override: this answer for requests whose path contains path_part."""
    def override(request: Request) -> Answer | None:
        return answer if request.method == method and path_part in request.path else None
    return override


# --- bodies are bounded ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["endless", "huge"])
@pytest.mark.parametrize("where", ["tag", "referrers API", "referrers tag", "sbom blob"])
def test_huge_and_endless_answers_stop_at_the_cap(env, kind, where):
    """Before: the tag's manifest, a referrers answer or the SBOM blob was read whole into memory (a 2 GB claim
    or an endless chunked body grew the process by gigabytes). Now each stops at 4 MiB (an SBOM blob at the
    size its descriptor gives), in one line."""
    registry = FakeRegistry()
    parts = _published(registry)
    target = {"tag": ("/manifests/latest", "GET"), "referrers API": ("/referrers/", "GET"),
              "referrers tag": (f"/manifests/{parts['tag']}", "GET"),
              "sbom blob": (f"/blobs/{parts['blob']}", "GET")}[where]
    bad = Answer(200, {"Content-Type": INDEX}, kind=kind)
    referrers_api = _when("/referrers/", bad) if where == "referrers API" else None
    registry.override = referrers_api or _when(target[0], bad, target[1])
    with HostileServer(registry) as server:
        result = run("sbom", "--tag", f"{server.host}/app", "--remote", env=env)
    one_line(result, 1, server.host)
    assert "4 MiB" in result.err or "more than the" in result.err, result.err


@pytest.mark.parametrize("kind", ["endless", "huge"])
def test_huge_and_endless_answers_over_tls_stop_at_the_cap(env, tls, kind):
    registry = FakeRegistry()
    _published(registry)
    registry.override = _when("/manifests/latest", Answer(200, {"Content-Type": INDEX}, kind=kind))
    with HostileServer(registry, tls=tls) as server:
        result = run("sbom", "--tag", f"{server.host}/app", "--remote", "--insecure", env=env)
    one_line(result, 1, server.host, "4 MiB")


# --- every wait has a limit -------------------------------------------------------------------------------------

@pytest.mark.parametrize("over", ["http", "tls"])
def test_a_registry_that_answers_a_byte_at_a_time_is_stopped_at_the_limit(env, tls, over):
    """Before: one byte every half second kept a read going (requests' timeout is per read), and over plain
    HTTP the slow status line was then reported as a TLS failure. Now the whole answer must arrive within
    FROMSCRATCH_NET_TIMEOUT (2 s here), and the message says that, naming the host."""
    slow = Answer(200, {"Content-Type": "application/json"}, b"{}" + b" " * 200, kind="trickle", pause=0.5)
    with HostileServer(lambda request: slow, tls=tls if over == "tls" else None) as server:
        result = run("sbom", "--tag", f"{server.host}/app", "--remote", *(["--insecure"] if over == "tls" else []),
                     env=env)
    one_line(result, 1, server.host, "did not send its whole answer within 2 s", "FROMSCRATCH_NET_TIMEOUT")
    assert "TLS with" not in result.err  # what a slow status line over plain HTTP was called before
    assert result.seconds < 15, result


def test_a_slow_manifest_names_what_was_being_read(env):
    registry = FakeRegistry()
    _published(registry)
    registry.override = _when("/manifests/latest", Answer(200, {}, b"{}" * 100, kind="trickle", pause=0.2))
    with HostileServer(registry) as server:
        result = run("sbom", "--tag", f"{server.host}/app", "--remote", env=env)
    one_line(result, 1, "reading the tag latest", server.host, "within 2 s")
    assert result.seconds < 15, result


@pytest.mark.parametrize("location", ["/v2/", "file:///etc/passwd"])
def test_a_redirect_that_fails_is_named_as_one(env, location):
    """Before: a redirect loop on /v2/ or a redirect to file:// was reported as "no registry answered"."""
    with HostileServer(lambda request: Answer(302, {"Location": location})) as server:
        result = run("sbom", "--tag", f"{server.host}/app", "--remote", env=env)
    one_line(result, 1, server.host, "redirect")
    assert "no registry answered" not in result.err


def test_a_bad_timeout_setting_is_refused(env):
    result = run("sbom", "--tag", "127.0.0.1:1/app", "--remote", env={**env, "FROMSCRATCH_NET_TIMEOUT": "soon"})
    one_line(result, 2, "FROMSCRATCH_NET_TIMEOUT='soon'")


# --- answers that are not what a registry sends -----------------------------------------------------------------

NESTED = b"[" * 200_000 + b"]" * 200_000


LISTS_A_NUMBER = b'{"mediaType": "' + INDEX.encode() + b'", "manifests": [1]}'


@pytest.mark.parametrize(("where", "body"), [(where, body) for where in ("tag", "referrers API", "referrers tag")
                                             for body in (b"[1,2,3]", NESTED)] + [("tag", LISTS_A_NUMBER)],
                         ids=lambda v: v if isinstance(v, str) else v[:12].decode())
def test_answers_that_are_not_manifests_are_one_line(env, where, body):
    """Before: [1,2,3], JSON nested 200,000 deep or an index of images listing a number ended in an internal error
    (exit 3)."""
    registry = FakeRegistry()
    parts = _published(registry)
    if where == "referrers API":
        registry.override = _when("/referrers/", json_answer(body, media_type=INDEX))
    else:
        path = "/manifests/latest" if where == "tag" else f"/manifests/{parts['tag']}"
        registry.override = _when(path, json_answer(body, media_type=INDEX))
    with HostileServer(registry) as server:
        result = run("sbom", "--tag", f"{server.host}/app", "--remote", env=env)
    one_line(result, 1, server.host)


def test_a_manifest_whose_bytes_are_not_its_docker_content_digest_is_refused(env):
    registry = FakeRegistry()
    parts = _published(registry)
    _, data = registry.manifests["latest"]
    registry.override = _when("/manifests/latest", json_answer(data, media_type=MANIFEST, digest=_digest(b"other")))
    with HostileServer(registry) as server:
        result = run("sbom", "--tag", f"{server.host}/app", "--remote", env=env)
    one_line(result, 1, "Docker-Content-Digest", parts["manifest"][:19])


def test_a_blob_whose_bytes_are_not_its_digest_is_refused(env):
    """Before: python-dxf's digest mismatch error ended in an internal error."""
    registry = FakeRegistry()
    parts = _published(registry)
    registry.blobs[parts["blob"]] = b'{"spdxVersion": "SPDX-2.X"}'  # the same size, other bytes
    with HostileServer(registry) as server:
        result = run("sbom", "--tag", f"{server.host}/app", "--remote", env=env)
    one_line(result, 1, "another digest", parts["blob"][:19])


# --- push: the login stays home, the tag comes last --------------------------------------------------------------

@pytest.fixture
def pushable(tmp_path, env):
    """make(host) -> a two-platform image REGISTRY/app kept in the store for `invoke push` (no engine needed)."""
    bins = tmp_path / "bins"
    for arch in ("amd64", "arm64"):
        (bins / arch).mkdir(parents=True)
        tiny_for(arch, bins / arch / "hello")

    def make(host: str) -> str:
        name = f"{host}/app"
        made = run("image", "--tag", name, "--binary", str(bins / "amd64/hello"), "--binary",
                   str(bins / "arm64/hello"), "--output", f"oci:{tmp_path / 'layout'}", env=env, timeout=120)
        assert made.code == 0, made
        return name

    return make


def _docker_login(env: dict[str, str], host: str) -> None:
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    Path(env["DOCKER_CONFIG"], "config.json").write_text(json.dumps({"auths": {host: {"auth": auth}}}))


@contextlib.contextmanager
def _push_with_upload_host(env, tls, pushable, registry: FakeRegistry, storage_handler):
    """A push, logged in, to a registry whose blob uploads go to another host (127.0.0.2) served by
    storage_handler: yields both servers, while they still run, and the push's result."""
    with HostileServer(registry, tls=tls) as home, \
            HostileServer(storage_handler, tls=tls, address="127.0.0.2") as storage:
        registry.upload_host = storage.host
        name = pushable(home.host)
        _docker_login(env, home.host)
        yield home, storage, run("push", "--tag", name, "--insecure", env=env)


def test_a_login_is_not_sent_to_the_host_an_upload_location_names(env, tls, pushable):
    """Before: python-dxf followed the blob upload's Location on another host with the user's Authorization
    header. Now the login goes to the registry's own host only: the upload host gets none."""
    registry = FakeRegistry(login=BASIC, scheme="https")
    with _push_with_upload_host(env, tls, pushable, registry, registry) as (home, storage, result):
        uploads = storage.seen("PUT")
        assert uploads, "the uploads went to the other host"
        assert not [r for r in storage.seen() if "Authorization" in r.headers]
        assert all(r.headers.get("Authorization") == BASIC for r in home.seen() if r.path != "/v2/"
                   and r.headers.get("Authorization"))
    assert result.code == 0, result
    assert "latest" in registry.manifests


def test_an_upload_host_that_asks_for_the_login_does_not_get_it(env, tls, pushable):
    registry = FakeRegistry(login=BASIC, scheme="https")

    def storage_answer(request: Request) -> Answer:
        return Answer(401, {"WWW-Authenticate": 'Basic realm="storage"'}, b"{}")

    with _push_with_upload_host(env, tls, pushable, registry, storage_answer) as (_, storage, result):
        assert not [r for r in storage.seen() if "Authorization" in r.headers]
    one_line(result, 1, "127.0.0.2", "sent to no other host")
    assert "latest" not in registry.manifests


@pytest.mark.parametrize("failure", ["refused", "endless"])
def test_a_failed_sbom_step_leaves_the_tag_as_it_was(env, pushable, failure):
    """Before: the tag was set first, so an SBOM step that failed left it naming an image without its SBOM (and
    an endless referrers tag grew the process by gigabytes). Now the tag comes last, and the message says so."""
    registry = FakeRegistry()

    def override(request: Request) -> Answer | None:
        if "/manifests/sha256-" not in request.path:
            return None
        if failure == "refused" and request.method == "PUT":
            return Answer(500, {}, b'{"errors":[{"code":"UNKNOWN"}]}')
        if failure == "endless" and request.method == "GET":
            return Answer(200, {"Content-Type": INDEX}, kind="endless")
        return None

    registry.override = override
    with HostileServer(registry) as server:
        name = pushable(server.host)
        result = run("push", "--tag", name, env=env)
    one_line(result, 1, "was not tagged", "without its SBOM")
    assert "latest" not in registry.manifests
    assert any(k.startswith("sha256:") for k in registry.manifests)  # the image itself went up, by digest


# --- a Debian mirror (rootfs --busybox --mirror) ----------------------------------------------------------------

@pytest.mark.parametrize("kind", ["endless", "huge", "trickle"])
def test_a_mirror_s_release_file_is_bounded_in_size_and_time(env, tmp_path, kind):
    """Before: a 3 GB InRelease made `rootfs --busybox --mirror` reach 6.3 GB, and a slow one was waited on for
    ever. Now a release file may be 16 MiB, and must arrive within FROMSCRATCH_NET_TIMEOUT."""
    answer = Answer(200, {}, b"x" * 100, kind=kind, claim=3_000_000_000, pause=0.3)
    with HostileServer(lambda request: answer) as mirror:
        result = run("rootfs", "--busybox", "--mirror", f"http://{mirror.host}/debian", "--out",
                     str(tmp_path / "bb.tar"), "--quiet", env=env)
        asked = [r.path for r in mirror.seen()]
    one_line(result, 1, mirror.host)
    assert asked == ["/debian/dists/bookworm/InRelease"]
    assert ("16 MiB" in result.err) if kind != "trickle" else ("within 2 s" in result.err), result.err
    assert result.seconds < 15 and not (tmp_path / "bb.tar").exists()


def test_an_index_of_thousands_of_platforms_is_not_followed(env):
    """Before: each of 10,000 listed manifests (within 4 MiB) was asked for its referrers, one request each."""
    digest = _digest(b"x")
    index = {"schemaVersion": 2, "mediaType": INDEX,
             "manifests": [{"mediaType": MANIFEST, "digest": digest, "size": 1,
                            "platform": {"os": "linux", "architecture": f"a{i}"}} for i in range(10_000)]}
    registry = FakeRegistry()
    registry.manifests["latest"] = (INDEX, json.dumps(index).encode())
    with HostileServer(registry) as server:
        result = run("sbom", "--tag", f"{server.host}/app", "--remote", env=env)
        asked = len(server.seen())
    one_line(result, 1, "10,000 manifests", "256")
    assert asked < 10 and result.seconds < 15


def test_a_mirror_login_in_its_url_goes_to_that_host_only(env, tmp_path):
    """http://user:password@mirror/: the mirror gets the login; a redirect to another host does not."""
    with HostileServer(lambda request: Answer(404)) as elsewhere, \
            HostileServer(lambda request: Answer(302, {"Location": f"http://{elsewhere.host}{request.path}"}),
                          address="127.0.0.2") as mirror:
        result = run("rootfs", "--busybox", "--mirror", f"http://{USER}:{PASSWORD}@{mirror.host}/debian", "--out",
                     str(tmp_path / "bb.tar"), "--quiet", env=env)
        assert [r.headers.get("Authorization") for r in mirror.seen()] == [BASIC]
        assert elsewhere.seen() and not [r for r in elsewhere.seen() if "Authorization" in r.headers]
    one_line(result, 2, "has no suite 'bookworm'")
