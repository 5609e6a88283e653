"""build --debian for a target whose Build-Depends Debian cannot install cross (hexedit for s390x: bookworm's
security archive has no s390x, so the build machine's security-updated packages cannot be matched for s390x): the
build falls back to a container of s390x itself under QEMU, says so in one line and how much slower it was, and
delivers a static s390x program with its SBOM; riscv64, which bookworm lacks, is one line naming the suite that has
it. Real engine, real archive, real compilers; the emulated base and build images stay cached in the engine (and
the base as a tarball in the tests' cache), so a warm run takes well under three minutes."""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest

from tests.conftest import assert_clean_failure
from tests.integration.test_debian import _build
from toolkit import targets
from toolkit.check import verify
from toolkit.engine import client as engine

pytestmark = pytest.mark.engine

S390X = targets.lookup("s390x")


def test_hexedit_for_s390x_is_built_inside_an_emulated_s390x_container(tmp_path, builder_base, docker_client):
    session = uuid.uuid4().hex[:16]
    done = _build(tmp_path, builder_base, "--debian", "hexedit", "--arch", "s390x", "--program", "hexedit",
                  env={"FROMSCRATCH_SESSION": session})
    assert done.code == 0, done.err
    said = done.out + done.err
    fallback = [line for line in said.splitlines() if line.startswith("cross build-dep failed for s390x (")]
    assert len(fallback) == 1, said
    assert fallback[0].endswith("): building inside an emulated s390x container")
    assert "libncurses5-dev:s390x" in fallback[0] or "earlier" in fallback[0]
    timed = [line for line in said.splitlines() if "for s390x: built inside an emulated s390x container in " in line]
    if "nothing changed since its last build for linux/s390x" not in said:  # else delivered again, no build ran
        assert len(timed) == 1 and ("x the " in timed[0] or "no cross build" in timed[0]), said

    program = tmp_path / "dist" / "hexedit"
    facts = verify.require(program, S390X)
    assert facts.interpreter is None
    doc = json.loads((tmp_path / "dist" / "hexedit.spdx.json").read_text())
    [source] = [p for p in doc["packages"] if p.get("primaryPackagePurpose") == "SOURCE"]
    assert source["name"] == "hexedit"
    assert "ncurses" in json.dumps(doc)  # the static archive the link took, by package, as a cross build's SBOM
    # it runs (binfmt's QEMU, as any s390x program here): hexedit's usage, exit 1
    ran = subprocess.run([str(program), "--help"], capture_output=True, text=True, timeout=60)
    assert "usage: hexedit" in (ran.stdout + ran.stderr)
    label = {"label": f"{engine.SESSION}={session}"}
    assert docker_client.containers.list(all=True, filters=label) == []


def test_riscv64_on_bookworm_is_one_line_naming_trixie(tmp_path, builder_base, docker_client):
    session = uuid.uuid4().hex[:16]
    done = _build(tmp_path, builder_base, "--debian", "hexedit", "--arch", "riscv64",
                  env={"FROMSCRATCH_SESSION": session})
    assert_clean_failure(done, 1)
    errors = [line for line in done.err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, done.err
    assert "Debian bookworm has no riscv64 packages" in errors[0] and "--suite trixie" in errors[0]
    assert not (tmp_path / "dist").exists()
    label = {"label": f"{engine.SESSION}={session}"}
    assert docker_client.containers.list(all=True, filters=label) == []


def test_riscv64_cross_builds_from_trixie_over_its_own_base(tmp_path, builder_base, docker_client):
    """--suite trixie: the source, the base (fromscratch/debian:trixie, debootstrapped on first use) and the
    Build-Depends (ncurses for riscv64, which trixie carries) all from trixie."""
    done = _build(tmp_path, "fromscratch/debian:trixie", "--debian", "less", "--arch", "riscv64", "--suite", "trixie",
                  "--program", "less")
    assert done.code == 0, done.err
    assert "emulated" not in done.out + done.err  # a cross build: trixie has what bookworm lacks
    program = tmp_path / "dist" / "less"
    assert verify.require(program, targets.lookup("riscv64")).interpreter is None
    ran = subprocess.run([str(program), "--version"], capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0 and ran.stdout.startswith("less "), ran.stdout + ran.stderr
    doc = json.loads((tmp_path / "dist" / "less.spdx.json").read_text())
    [source] = [p for p in doc["packages"] if p.get("primaryPackagePurpose") == "SOURCE"]
    assert source["name"] == "less" and "ncurses" in json.dumps(doc)
