"""SBOMs pushed and read back through the OCI 1.1 referrers API, with a loopback proxy in front of Debian's
docker-registry adding that API, a stand-in because no registry with the referrers API can be installed or reached
on this machine."""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests import spdxcheck
from tests.conftest import invoke
from tests.integration import test_push
from tests.integration.test_sbom import push_two_platforms

pytestmark = pytest.mark.engine
SPDX = "application/spdx+json"
INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MANIFESTS = re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<ref>[^/]+)$")
REFERRERS = re.compile(r"^/v2/(?P<name>.+)/referrers/(?P<digest>[^/]+)$")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "proxy-connection"}

registry, names = test_push.registry, test_push.names  # the same fixtures: a loopback registry, unique names in it


class ReferrersProxy:
    """Forwards every request to the registry behind it and adds the referrers API of the OCI distribution spec
    1.1: a manifest pushed with a subject is answered with OCI-Subject and listed by GET /v2/<name>/referrers/."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream  # host:port of the real registry
        self.referrers: dict[tuple[str, str], list[dict[str, Any]]] = {}  # (name, subject digest) -> descriptors
        self.seen: list[tuple[str, str]] = []  # (method, path with query) of every request
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.host = f"127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

    def got(self, method: str, path: str) -> bool:
        with self.lock:
            return any(m == method and p.split("?")[0] == path for m, p in self.seen)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def answer(self) -> None:
                with proxy.lock:
                    proxy.seen.append((self.command, self.path))
                path, _, query = self.path.partition("?")
                found = REFERRERS.match(path)
                if self.command == "GET" and found:
                    return self._referrers(found["name"], found["digest"], urllib.parse.parse_qs(query))
                body = self._body()
                status, headers, data = proxy.forward(self.command, self.path, self.headers.items(), body)
                found = MANIFESTS.match(path)
                if self.command == "PUT" and found and status == 201:
                    subject = proxy.remember(found["name"], body, headers, self.headers.get("Content-Type"))
                    if subject:
                        headers.append(("OCI-Subject", subject))
                self._send(status, headers, data)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = answer  # http.server's names

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":  # how dxf uploads blobs
                    chunks = []
                    while size := int(self.rfile.readline().split(b";")[0], 16):
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                        pass
                    return b"".join(chunks)
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _referrers(self, name: str, digest: str, query: dict[str, list[str]]) -> None:
                with proxy.lock:
                    listed = list(proxy.referrers.get((name, digest), []))
                headers = [("Content-Type", INDEX)]
                if "artifactType" in query:
                    listed = [d for d in listed if d.get("artifactType") in query["artifactType"]]
                    headers.append(("OCI-Filters-Applied", "artifactType"))
                data = json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": listed}).encode()
                self._send(200, headers, data)

            def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
                self.send_response(status)
                for key, value in headers:
                    if key.lower() not in HOP_BY_HOP or (key.lower() == "content-length" and self.command == "HEAD"):
                        self.send_header(key, value)
                if self.command != "HEAD":
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    def forward(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        """The real registry's answer (status, headers, body), Locations naming it renamed to the proxy."""
        conn = http.client.HTTPConnection(self.upstream, timeout=60)
        try:
            sent = {k: v for k, v in headers if k.lower() not in HOP_BY_HOP}
            conn.request(method, path, body=body if body or method in ("PUT", "POST", "PATCH") else None,
                         headers=sent)
            answer = conn.getresponse()
            data = answer.read()
            out = []
            for key, value in answer.getheaders():
                if key.lower() == "location":
                    value = value.replace(f"//{self.upstream}/", f"//{self.host}/")
                out.append((key, value))
            return answer.status, out, data
        finally:
            conn.close()

    def remember(self, name: str, body: bytes, headers: list[tuple[str, str]], content_type: str | None) -> str:
        """The subject digest of a pushed manifest that has one (its descriptor kept for the referrers API), else
        the empty string."""
        try:
            manifest = json.loads(body)
        except ValueError:
            return ""
        subject = manifest.get("subject") if isinstance(manifest, dict) else None
        if not isinstance(subject, dict) or "digest" not in subject:
            return ""
        digest = dict((k.lower(), v) for k, v in headers).get("docker-content-digest")
        desc: dict[str, Any] = {"mediaType": manifest.get("mediaType") or content_type,
                                "digest": digest or "sha256:" + hashlib.sha256(body).hexdigest(), "size": len(body)}
        artifact_type = manifest.get("artifactType") or (manifest.get("config") or {}).get("mediaType")
        if artifact_type:
            desc["artifactType"] = artifact_type
        if manifest.get("annotations"):
            desc["annotations"] = manifest["annotations"]
        with self.lock:
            listed = self.referrers.setdefault((name, subject["digest"]), [])
            if all(d["digest"] != desc["digest"] for d in listed):  # a manifest pushed again is listed once
                listed.append(desc)
        return str(subject["digest"])


@pytest.fixture
def proxy(registry) -> Iterator[ReferrersProxy]:
    served = ReferrersProxy(registry)
    try:
        yield served
    finally:
        served.close()


def _get(url: str, accept: str = "") -> tuple[bytes, Any]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return bytes(answer.read()), answer.headers


def test_sboms_go_and_come_back_through_the_referrers_api(registry, proxy, names, tmp_path):
    name = names(proxy.host)
    repo = name.split("/", 1)[1]
    pushed = push_two_platforms(name, tmp_path)
    sboms = re.findall(r"^sbom: +(sha256:[0-9a-f]{64}) for (\S+) \((.*)\)$", pushed.out, re.M)
    assert [(platform, how) for _, platform, how in sboms] == [("linux/amd64", "referrers API"),
                                                               ("linux/arm64/v8", "referrers API")], pushed.out
    uploads = [p for m, p in proxy.seen if m == "PUT" and p.startswith(f"/v2/{repo}/blobs/uploads/")]
    assert uploads, proxy.seen  # the blobs too went through the proxy: the Locations it renamed named it
    assert not [p for _, p in proxy.seen if "/manifests/sha256-" in p]  # no referrers tag read or written

    # the real registry has the image, its SBOM manifests, and no referrers tag: the API made one needless
    tags = json.loads(_get(f"http://{registry}/v2/{repo}/tags/list")[0])["tags"]
    assert tags == ["latest"], tags
    index = json.loads(_get(f"http://{registry}/v2/{repo}/manifests/latest", INDEX)[0])
    subjects = index["manifests"]
    assert [s["platform"]["architecture"] for s in subjects] == ["amd64", "arm64"]
    for subject, (digest, _, _) in zip(subjects, sboms, strict=True):
        body, _ = _get(f"http://{registry}/v2/{repo}/manifests/{digest}", MANIFEST)
        manifest = json.loads(body)
        assert manifest["subject"]["digest"] == subject["digest"] and manifest["artifactType"] == SPDX
        # the proxy's referrers API lists that one SBOM, as a registry's would
        listed, headers = _get(f"http://{proxy.host}/v2/{repo}/referrers/{subject['digest']}")
        assert headers["Content-Type"] == INDEX and "OCI-Filters-Applied" not in headers
        assert json.loads(listed) == {"schemaVersion": 2, "mediaType": INDEX, "manifests": [
            {"mediaType": MANIFEST, "digest": digest, "size": len(body), "artifactType": SPDX,
             "annotations": manifest["annotations"]}]}
        for wanted, count in ((SPDX, 1), ("application/vnd.example.other", 0)):
            query = urllib.parse.urlencode({"artifactType": wanted})
            listed, headers = _get(f"http://{proxy.host}/v2/{repo}/referrers/{subject['digest']}?{query}")
            assert headers["OCI-Filters-Applied"] == "artifactType"
            assert len(json.loads(listed)["manifests"]) == count
        spdxcheck.check(_get(f"http://{registry}/v2/{repo}/blobs/{manifest['layers'][0]['digest']}")[0])

    # read back through the proxy's referrers API: the same documents invoke image kept here
    with proxy.lock:
        proxy.seen.clear()  # from here on, only what invoke sbom asks
    remote = invoke("sbom", "--tag", name, "--remote")
    assert remote.code == 0, remote
    assert remote.out.count(f", from {proxy.host})") == 2 and remote.out.count("static link: libc.a") == 2
    assert "libc6-dev-arm64-cross" in remote.out
    for subject in subjects:
        assert proxy.got("GET", f"/v2/{repo}/referrers/{subject['digest']}")
    assert not [p for _, p in proxy.seen if "/manifests/sha256-" in p]  # not the referrers tag
    remote_json = invoke("sbom", "--tag", name, "--remote", "--json")
    local_json = invoke("sbom", "--tag", name, "--json")
    assert remote_json.code == 0 and local_json.code == 0, (remote_json, local_json)
    docs = json.loads(remote_json.out)
    assert [d["name"] for d in docs] == [f"{name}:latest linux/amd64", f"{name}:latest linux/arm64/v8"]
    assert docs == json.loads(local_json.out)

    again = invoke("push", "--tag", name)  # pushed again: still by the API, still one SBOM per platform
    assert again.code == 0 and again.out.count("(referrers API)") == 2, again
    assert json.loads(_get(f"http://{registry}/v2/{repo}/tags/list")[0])["tags"] == ["latest"]
    for subject in subjects:
        listed, _ = _get(f"http://{proxy.host}/v2/{repo}/referrers/{subject['digest']}")
        assert len(json.loads(listed)["manifests"]) == 1
