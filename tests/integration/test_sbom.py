"""SBOMs with the real engine, build images and registry: a --package library found by dpkg inside the build
image (and only where the link used it), zig's bundled musl, and each platform's SBOM pushed after its image to
Debian's docker-registry, which has no referrers API, then read back over its HTTP API and with
`invoke sbom --remote`."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests import spdxcheck
from tests.conftest import invoke, missing
from tests.integration import test_push
from toolkit import targets
from toolkit.compile import buildimage

pytestmark = pytest.mark.engine
SPDX = "application/spdx+json"
INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _packages(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in doc["packages"]}


def _static_links(doc: dict[str, Any]) -> dict[str, str]:
    return {r["relatedSpdxElement"]: r.get("comment", "") for r in doc["relationships"]
            if r["relationshipType"] == "STATIC_LINK"}


def test_a_package_library_is_listed_where_the_link_used_it_and_only_there(builder_base, docker_client, tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "withz.c").write_text('#include <stdio.h>\n#include <zlib.h>\n'
                                  'int main(void){ printf("%s\\n", zlibVersion()); return 0; }\n')
    (proj / "plain.c").write_text('#include <stdio.h>\nint main(void){ puts("no zlib here"); return 0; }\n')
    (proj / "Makefile").write_text("all: withz plain\n%: %.c\n\t$(CC) $(CFLAGS) $< -o $@ $(LDFLAGS) -lz\n")
    built = invoke("build", "--project", str(proj), "--package", "zlib1g-dev", "--arch", "arm64", "--toolchain",
                   "container", "--builder-base", builder_base, "--out", str(tmp_path / "dist"), timeout=1800)
    assert built.code == 0, built
    engine_arch = targets.lookup(docker_client.version()["Arch"]).architecture
    image = buildimage.chain(builder_base, targets.lookup("arm64"), engine_arch, (), ("zlib1g-dev",),
                             project=True, base_id=buildimage.base_image_id(docker_client, builder_base))[-1].tag

    wanted = ("zlib1g-dev:arm64", "libc6-dev-arm64-cross", "gcc-12-aarch64-linux-gnu")
    query = subprocess.run(["docker", "run", "--rm", image, "dpkg-query", "-W", "-f", "${binary:Package} ${Version}\n",
                            *wanted], capture_output=True, text=True, check=True).stdout
    versions = dict(line.split(" ", 1) for line in query.splitlines())  # what dpkg reports inside the build image

    def dpkg(package: str) -> str:
        return versions[package]

    withz = spdxcheck.check(tmp_path / "dist" / "withz.spdx.json")
    plain = spdxcheck.check(tmp_path / "dist" / "plain.spdx.json")
    zlib = _packages(withz)["zlib1g-dev"]
    assert zlib["versionInfo"] == dpkg("zlib1g-dev:arm64")
    locator = next(r["referenceLocator"] for r in zlib["externalRefs"] if r["referenceType"] == "purl")
    assert locator.startswith(f"pkg:deb/debian/zlib1g-dev@{quote(zlib['versionInfo'], safe=':')}?arch=arm64")
    assert "/libz.a (sha256 " in _static_links(withz)[zlib["SPDXID"]]
    assert "zlib1g-dev" not in _packages(plain)  # -lz on its link line too, but no member of libz.a taken
    for doc in (withz, plain):
        libc = _packages(doc)["libc6-dev-arm64-cross"]
        assert libc["versionInfo"] == dpkg("libc6-dev-arm64-cross") and libc["SPDXID"] in _static_links(doc)
        assert _packages(doc)["gcc-12-aarch64-linux-gnu"]["versionInfo"] == dpkg("gcc-12-aarch64-linux-gnu")


def test_a_zig_build_lists_the_musl_zig_ships(tmp_path):
    spec = importlib.util.find_spec("ziglang")
    if spec is None or spec.origin is None:
        missing("the zig toolchain needs ziglang: pip install -e '.[zig]' (scripts/dev does)")
    header = Path(spec.origin).parent / "lib" / "libc" / "musl" / "src" / "internal" / "version.h"
    musl_version = re.search(r'#define VERSION "([^"]+)"', header.read_text()).group(1)  # type: ignore[union-attr]
    zig_version = subprocess.run([sys.executable, "-m", "ziglang", "version"], capture_output=True,
                                 text=True).stdout.strip()
    (tmp_path / "app.c").write_text('#include <stdio.h>\nint main(void){ puts("zig"); return 0; }\n')
    built = invoke("build", "--src", "app.c", "--out", "app", "--toolchain", "zig", cwd=tmp_path, timeout=1800)
    assert built.code == 0, built
    doc = spdxcheck.check(tmp_path / "app.spdx.json")
    musl, zig = _packages(doc)["musl"], _packages(doc)["zig"]
    assert musl["versionInfo"] == musl_version and musl["SPDXID"] in _static_links(doc)
    assert f"pkg:generic/musl@{musl_version}" in json.dumps(musl)
    assert zig["versionInfo"] == zig_version
    assert any(r["relationshipType"] == "BUILD_TOOL_OF" and r["spdxElementId"] == zig["SPDXID"]
               for r in doc["relationships"])


# --- pushed with the image, read back from the registry ----------------------------------------------------------

registry, names = test_push.registry, test_push.names  # the same fixtures: a loopback registry, unique names in it


def _get(url: str, accept: str = "") -> bytes:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return bytes(answer.read())


def _sbom_of(host: str, repo: str, subject: dict[str, Any]) -> dict[str, Any]:
    """A platform manifest's SBOM, found as a client of a registry without the referrers API finds it."""
    with pytest.raises(urllib.error.HTTPError) as no_api:
        _get(f"http://{host}/v2/{repo}/referrers/{subject['digest']}", INDEX)
    assert no_api.value.code == 404
    tagged = json.loads(_get(f"http://{host}/v2/{repo}/manifests/{subject['digest'].replace(':', '-')}", INDEX))
    assert tagged["mediaType"] == INDEX
    found = [d for d in tagged["manifests"] if d.get("artifactType") == SPDX]
    assert len(found) == 1, tagged
    manifest = json.loads(_get(f"http://{host}/v2/{repo}/manifests/{found[0]['digest']}", MANIFEST))
    assert manifest["subject"]["digest"] == subject["digest"] and manifest["artifactType"] == SPDX
    return spdxcheck.check(_get(f"http://{host}/v2/{repo}/blobs/{manifest['layers'][0]['digest']}"))


def _program_in(host: str, repo: str, subject: dict[str, Any], name: str) -> str:
    """sha256 of /name in the image that manifest describes, read from its layer in the registry."""
    manifest = json.loads(_get(f"http://{host}/v2/{repo}/manifests/{subject['digest']}", MANIFEST))
    layer = _get(f"http://{host}/v2/{repo}/blobs/{manifest['layers'][0]['digest']}")
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        member = tar.extractfile(name)
        assert member is not None
        return hashlib.sha256(member.read()).hexdigest()


def push_two_platforms(name: str, where: Path) -> Any:
    """invoke push of a hello image for amd64 and arm64 (each with its SBOM), made in where; push's result."""
    made = invoke("image", "--tag", name, "--platform", "linux/amd64,linux/arm64", "--toolchain", "native",
                  cwd=where)
    assert made.code == 0, made
    pushed = invoke("push", "--tag", name)
    assert pushed.code == 0, pushed
    return pushed


def test_each_platform_sbom_is_pushed_and_read_back(registry, names, tmp_path):
    name = names(registry)
    repo = name.split("/", 1)[1]
    pushed = push_two_platforms(name, tmp_path)
    assert pushed.out.count("sbom:") == 2 and "(tag sha256-" in pushed.out
    index = json.loads(_get(f"http://{registry}/v2/{repo}/manifests/latest", INDEX))
    libcs = {"amd64": "libc6-dev", "arm64": "libc6-dev-arm64-cross"}
    for subject in index["manifests"]:
        doc = _sbom_of(registry, repo, subject)
        arch = subject["platform"]["architecture"]
        found = _packages(doc)
        assert libcs[arch] in found and found[libcs[arch]]["SPDXID"] in _static_links(doc)
        assert found["hello"]["checksums"][0]["checksumValue"] == _program_in(registry, repo, subject, "hello")
        assert doc["name"] == f"{name}:latest {subject['platform']['os']}/{arch}" + (
            f"/{subject['platform']['variant']}" if "variant" in subject["platform"] else "")
    remote = invoke("sbom", "--tag", name, "--remote")
    assert remote.code == 0, remote
    assert "libc6-dev-arm64-cross" in remote.out and f"from {registry}" in remote.out
    assert remote.out.count("static link: libc.a") == 2
    local = invoke("sbom", "--tag", name, "--json")
    assert local.code == 0, local
    assert [d["name"] for d in json.loads(local.out)] == [f"{name}:latest linux/amd64", f"{name}:latest linux/arm64/v8"]
    again = invoke("push", "--tag", name)  # pushed again: the referrers tag still lists one SBOM per platform
    assert again.code == 0, again
    for subject in index["manifests"]:
        _sbom_of(registry, repo, subject)


def test_a_one_platform_image_in_the_engine_pushes_its_sbom_later(registry, names, tmp_path):
    assert invoke("build-hello", "--tiny", "--toolchain", "native", cwd=tmp_path).code == 0
    name = names(registry)
    made = invoke("image", "--tag", f"{name}:1", cwd=tmp_path)
    assert made.code == 0, made
    digest = next(line.split()[1] for line in made.out.splitlines() if line.startswith("digest:"))
    local = invoke("sbom", "--tag", f"{name}:1")  # kept beside the engine's image, by its ID
    assert local.code == 0 and "kept by invoke image" in local.out, local
    pushed = invoke("push", "--tag", f"{name}:1")
    assert pushed.code == 0 and "sbom:" in pushed.out, pushed
    doc = _sbom_of(registry, name.split("/", 1)[1], {"digest": digest})
    assert "hello-tiny.c" in {f["fileName"].lstrip("./") for f in doc["files"]}
    assert not [r for r in doc["relationships"] if r["relationshipType"] == "STATIC_LINK"]  # -nostdlib: no libc


def test_two_tags_of_one_image_id_each_keep_their_own_sbom(registry, names, tmp_path, monkeypatch):
    """Before: kept SBOMs were keyed by image ID alone, so `image --tag b --sbom none` of the same binary (the same
    image ID) dropped a's, and a kept SBOM named whichever tag was built last. Now each name keeps its own."""
    assert invoke("build-hello", "--tiny", "--toolchain", "native", cwd=tmp_path).code == 0
    a, b, c = (f"{names(registry)}:1" for _ in range(3))
    assert invoke("image", "--tag", a, cwd=tmp_path).code == 0
    assert invoke("image", "--tag", c, cwd=tmp_path).code == 0
    assert invoke("image", "--tag", b, "--sbom", "none", cwd=tmp_path).code == 0
    kept = invoke("sbom", "--tag", a, "--json")
    assert kept.code == 0, kept
    repo = {name: name.split("/", 1)[1].split(":")[0] for name in (a, c)}
    assert repo[a] in kept.out and repo[c] not in kept.out  # a's SBOM names a, not c
    none = invoke("sbom", "--tag", b)
    assert none.code == 1 and "no SBOM is kept" in none.err, none
    pushed = invoke("push", "--tag", a)
    assert pushed.code == 0 and "sbom:" in pushed.out, pushed
    pushed = invoke("push", "--tag", b)
    assert pushed.code == 0 and "sbom:" not in pushed.out, pushed


BAD_DOCS = {"nested 200,000 deep": (b"[" * 200_000 + b"]" * 200_000, "nested more than"),
            "a null relationship": (b'{"spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT", '
                                    b'"relationships": [null]}', "relationships[0] is null, not an object")}


@pytest.mark.parametrize("case", sorted(BAD_DOCS))
@pytest.mark.parametrize("given", ["--sbom FILE", "beside the binary"])
def test_a_bad_sbom_loads_nothing_into_the_engine(docker_client, image_tag, binaries, tmp_path, case, given):
    from toolkit.engine import client as engine

    data, words = BAD_DOCS[case]
    shutil.copy(binaries["static"], tmp_path / "prog")
    bad = tmp_path / ("bad.json" if given == "--sbom FILE" else "prog.spdx.json")
    bad.write_bytes(data)
    tag = image_tag()
    try:
        result = invoke("image", "--tag", tag, "--binary", "prog",
                        *(["--sbom", bad.name] if given == "--sbom FILE" else []), cwd=tmp_path)
        assert result.code == 2 and "Traceback" not in result.err, result
        assert len(result.err.strip().splitlines()) == 1 and words in result.err, result.err
        assert not engine.image_exists(docker_client, tag)
    finally:
        bad.unlink()  # the session's last check validates every *.spdx.json left under its temporary dirs
