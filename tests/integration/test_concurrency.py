"""Runs at the same time: several builds writing one output path, and two processes that both need a build image
nobody has made yet. Each ends with one complete, correct result, never a corrupt file or a half-built image."""

from __future__ import annotations

import hashlib
import json
import subprocess

import pytest

from tests.faults import descendants
from toolkit import targets
from toolkit.check import elf, verify

pytestmark = pytest.mark.engine


def _sources(box, n: int) -> list[str]:
    names = []
    for i in range(n):
        (box.work / f"v{i}.c").write_text(f'#include <stdio.h>\nint main(void){{ puts("version {i}"); return 0; }}\n')
        names.append(f"v{i}.c")
    return names


@pytest.mark.parametrize("toolchain", ["native", "container"])
def test_builds_writing_the_same_output_at_once(toolchain, sandbox, builder_base):
    sources = _sources(sandbox, 3)
    base = ("--builder-base", builder_base) if toolchain == "container" else ()  # native runs no container
    runs = [sandbox.start("build", "--src", src, "--out", "out/app", "--toolchain", toolchain, *base)
            for src in sources]
    results = [run.finish() for run in runs]
    assert all(r.code == 0 for r in results), results
    app = sandbox.work / "out" / "app"
    assert verify.verify(elf.read(str(app)), targets.lookup("amd64")).ok
    printed = subprocess.run([str(app)], capture_output=True, text=True, check=True).stdout
    assert printed in {f"version {i}\n" for i in range(3)}  # one whole build won, whichever finished last
    assert sorted(p.name for p in app.parent.iterdir()) == ["app", "app.spdx.json"]
    # the SBOM beside it describes the build that won, not another one
    described = json.loads((app.parent / "app.spdx.json").read_text())["packages"]
    assert hashlib.sha256(app.read_bytes()).hexdigest() in {c["checksumValue"] for p in described
                                                            for c in p.get("checksums", [])}
    sandbox.assert_clean()


def test_two_processes_creating_the_same_build_image(sandbox, fresh_base, docker_client):
    """Both need the build image on a base nobody has built on: one builds it while the other waits for it, then
    both compile with it. One image, no half-built or duplicate one beside it."""
    base_id = docker_client.images.get(fresh_base).id
    runs = [sandbox.start("build-hello", "--toolchain", "container", "--builder-base", fresh_base,
                          "--out", f"hello-{i}") for i in range(2)]
    results = [run.finish(timeout=900) for run in runs]
    assert all(r.code == 0 for r in results), results
    assert sum("waiting for another fromscratch process" in r.err for r in results) == 1, [r.err for r in results]
    assert sum("(first use;" in r.err for r in results) == 1  # only one ran apt-get
    for i in range(2):
        assert verify.verify(elf.read(str(sandbox.work / f"hello-{i}")), targets.lookup("amd64")).ok
    built = descendants(docker_client, base_id)
    tagged = [a for a in built if [t for t in a.get("RepoTags") or [] if t != "<none>:<none>"]]
    assert len(tagged) == 1 and tagged[0]["RepoTags"][0].startswith("fromscratch/builder:"), built
    parents = {a.get("ParentId") for a in built}
    leaves = [a["Id"] for a in built if a["Id"] not in parents]
    assert leaves == [tagged[0]["Id"]], "a dangling image beside the build image"
    assert not sandbox.containers() and not sandbox.temp_leftovers() and not sandbox.partial_files()
