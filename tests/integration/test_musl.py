"""musl with gcc: Debian's musl-dev for every target the base's archive ships it for, in the build container;
each hello verified as musl, put in a scratch image and run under QEMU; a target without musl said in one line."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.conftest import invoke
from toolkit import targets
from toolkit.check import elf, verify

pytestmark = pytest.mark.engine

# Debian bookworm (the test base) has no riscv64 archive: riscv64 became a release architecture in trixie.
WITHOUT_MUSL = {"riscv64"}


@pytest.fixture(scope="session")
def musl_hellos(builder_base, tmp_path_factory):
    out = tmp_path_factory.mktemp("musl")
    result = invoke("build-hello", "--libc", "musl", "--arch", "all", "--toolchain", "container", "--jobs", "2",
                    "--builder-base", builder_base, cwd=out, timeout=3600)
    return out, result


def test_a_target_whose_archive_has_no_musl_is_named_with_the_way_out(musl_hellos):
    out, result = musl_hellos
    assert result.code == 1, result
    assert f"{len(WITHOUT_MUSL)} of {len(targets.TARGETS)} targets failed: riscv64" in result.err
    assert "no musl for linux/riscv64: the package archive of" in result.err
    assert "musl-dev:riscv64" in result.err and "--toolchain zig" in result.err
    assert "Traceback" not in result.err
    assert not (out / "hello-riscv64").exists()


@pytest.mark.parametrize("target", [t for t in targets.TARGETS if t.name not in WITHOUT_MUSL], ids=lambda t: t.name)
def test_musl_hello_for_every_target_is_musl_and_runs_in_a_scratch_image(musl_hellos, target, image_tag):
    out, result = musl_hellos
    hello = out / f"hello-{target.name}"
    assert f"built hello-{target.name} for {target.platform} with the container toolchain" in result.out
    facts = elf.read(str(hello))
    verdict = verify.verify(facts, target)
    assert verdict.ok, verdict.failures
    assert facts.libc == "musl"
    assert not any("glibc" in w or "NSS" in w for w in verdict.warnings)
    tag = image_tag("fromscratch-musl")
    made = invoke("image", "--tag", tag, "--binary", str(hello))
    assert made.code == 0, made
    ran = subprocess.run(["docker", "run", "--rm", "--platform", target.platform, tag], capture_output=True,
                         text=True, timeout=120)
    found = re.search(r"built for (\S+) and runs in a FROM scratch image", ran.stdout)
    assert found and targets.lookup(found.group(1)) == target, ran
