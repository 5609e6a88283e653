"""Every target with both cross toolchains: build all once, verify each, make its scratch image, run it under QEMU."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import IN_CI, Result, invoke
from toolkit import targets

pytestmark = pytest.mark.engine

GREETING = re.compile(r"built for (\S+) and runs in a FROM scratch image")


@dataclass
class Built:
    toolchain: str
    dir: Path
    result: Result


@pytest.fixture(scope="session", params=["container", "zig"])
def built(request, tmp_path_factory, docker_client) -> Built:
    """`invoke build-hello --arch all --jobs 2`, once per toolchain per session."""
    toolchain = request.param
    extra: list[str] = []
    if toolchain == "container":
        extra = ["--builder-base", request.getfixturevalue("builder_base")]
    elif importlib.util.find_spec("ziglang") is None:
        msg = "the zig toolchain needs ziglang: pip install -e '.[zig]' (scripts/dev does)"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    out = tmp_path_factory.mktemp(f"every-arch-{toolchain}")
    # a cold build image (apt-get of nine cross gcc) or a cold zig cache (musl per target) takes minutes
    result = invoke("build-hello", "--arch", "all", "--toolchain", toolchain, "--jobs", "2", *extra,
                    cwd=out, timeout=3600)
    assert result.code == 0, result
    return Built(toolchain, out, result)


def _greeting_platform(output: str) -> targets.Target:
    found = GREETING.search(output)
    assert found, output
    return targets.lookup(found.group(1))


def test_all_gives_one_file_per_target(built):
    assert sorted(p.name for p in built.dir.iterdir()) == sorted(f"hello-{t.name}{sbom}" for t in targets.TARGETS
                                                                 for sbom in ("", ".spdx.json"))
    for t in targets.TARGETS:
        assert f"built hello-{t.name} for {t.platform} with the {built.toolchain} toolchain" in built.result.out


@pytest.mark.parametrize("target", targets.TARGETS, ids=lambda t: t.name)
def test_each_target_verifies_and_runs_in_its_scratch_image(built, target, docker_client, image_tag):
    binary = built.dir / f"hello-{target.name}"
    checked = invoke("verify", str(binary), "--arch", target.name, "--json")
    assert checked.code == 0, checked
    facts = json.loads(checked.out)
    assert facts["interpreter"] is None and facts["needed"] == []  # zig once emitted PT_INTERP for -static

    # the table's QEMU binary runs it (or the host does)
    qemu = [] if target.runs_natively_on(targets.host()) else [f"/usr/bin/qemu-{target.qemu}-static"]
    direct = subprocess.run([*qemu, str(binary)], capture_output=True, text=True, timeout=60)
    assert direct.returncode == 0 and _greeting_platform(direct.stdout) == target, direct

    tag = image_tag()
    made = invoke("image", "--tag", tag, "--binary", str(binary))
    assert made.code == 0, made
    attrs = docker_client.images.get(tag).attrs
    assert (attrs["Os"], attrs["Architecture"], attrs.get("Variant")) == ("linux", target.architecture,
                                                                          target.variant)
    ran = subprocess.run(["docker", "run", "--rm", "--platform", target.platform, tag],
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran
    assert _greeting_platform(ran.stdout) == target


def test_arm_variants_are_told_apart(built):
    def arch_check(variant: str, want: str) -> int:
        return invoke("verify", str(built.dir / f"hello-arm-{variant}"), "--arch", f"arm-{want}").code

    assert arch_check("v7", "v7") == 0 and arch_check("v7", "v6") == 1 and arch_check("v6", "v5") == 1
    assert arch_check("v5", "v7") == 0 and arch_check("v6", "v7") == 0  # older code runs on newer CPUs
