"""build --debian against the real archive and engine: small real source packages fetched by apt, their
Build-Depends installed by apt-get build-dep (cross for arm64), built, verified static, the source package named in
the SBOM; hostile names refused in one line, leaving nothing behind."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.conftest import Result, assert_clean_failure, invoke
from toolkit import targets
from toolkit.check import verify
from toolkit.engine import client as engine

pytestmark = pytest.mark.engine


def _cache() -> Path:
    """The user's cache for these builds (sources, apt's lists, Contents indexes): kept across test runs, as
    tests/debsrc.py keeps its trees."""
    root = os.environ.get("FROMSCRATCH_TEST_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "fromscratch-tests") / "xdg"


def _build(tmp_path: Path, base: str, *args: str, env: dict[str, str] | None = None) -> Result:
    return invoke("build", "--out", str(tmp_path / "dist"), "--builder-base", base, *args, cwd=tmp_path,
                  timeout=3600, env={"XDG_CACHE_HOME": str(_cache()), **(env or {})})


def _source_of(sbom: Path) -> dict:
    doc = json.loads(sbom.read_text())
    [src] = [p for p in doc["packages"] if p.get("primaryPackagePurpose") == "SOURCE"]
    return src


def test_pv_builds_static_with_its_source_package_in_the_sbom(tmp_path, builder_base):
    done = _build(tmp_path, builder_base, "--debian", "pv", "--arch", "amd64")
    assert done.code == 0, done.err
    pv = tmp_path / "dist" / "pv"
    verify.require(pv, targets.lookup("amd64"))
    assert sorted(p.name for p in pv.parent.iterdir()) == ["pv", "pv.spdx.json"]
    src = _source_of(tmp_path / "dist" / "pv.spdx.json")
    assert src["name"] == "pv" and src["versionInfo"].startswith("1.6")
    assert src["externalRefs"][0]["referenceLocator"] == f"pkg:deb/debian/pv@{src['versionInfo']}?arch=source"
    assert "with Debian's patches applied" in src["comment"]
    ran = subprocess.run([str(pv), "--version"], capture_output=True, text=True, timeout=30)
    assert ran.returncode == 0 and "pv 1.6" in ran.stdout


def test_hexedit_builds_with_ncurses_from_its_build_depends(tmp_path, builder_base):
    """The mirror answers 404 for hexedit's Debian part: the upstream tree is built, said in one line."""
    done = _build(tmp_path, builder_base, "--debian", "hexedit", "--arch", "amd64", "--program", "hexedit")
    assert done.code == 0, done.err
    said = [line for line in done.out.splitlines() if "without Debian's patches" in line]
    assert len(said) == 1 and "404" in said[0], done.out
    facts = verify.require(tmp_path / "dist" / "hexedit", targets.lookup("amd64"))
    assert facts.interpreter is None
    doc = (tmp_path / "dist" / "hexedit.spdx.json").read_text()
    assert "ncurses" in doc  # the static archive the link took, by package


def test_pv_cross_builds_for_arm64_with_build_dep_a(tmp_path, builder_base):
    done = _build(tmp_path, builder_base, "--debian", "pv", "--arch", "arm64")
    assert done.code == 0, done.err
    verify.require(tmp_path / "dist" / "pv", targets.lookup("arm64"))
    assert _source_of(tmp_path / "dist" / "pv.spdx.json")["name"] == "pv"


def test_lua_whose_own_rules_name_its_build_is_built_by_them(tmp_path, builder_base):
    """lua5.4's debian/rules builds with `make linux-readline` and a libtool of its own: the Makefile's default
    target makes no program, so the build is done again with the package's debian/rules, said in one line."""
    done = _build(tmp_path, builder_base, "--debian", "lua5.4", "--arch", "amd64")
    assert done.code == 0, done.err
    said = [line for line in done.out.splitlines() if "with its own debian/rules" in line]
    assert len(said) == 1 and "made no program" in said[0], done.out
    lua = tmp_path / "dist" / "lua5.4"
    assert verify.require(lua, targets.lookup("amd64")).interpreter is None
    ran = subprocess.run([str(lua), "-e", "print(6 * 7)"], capture_output=True, text=True, timeout=30)
    assert ran.returncode == 0 and ran.stdout == "42\n", ran
    names = {p["name"] for p in json.loads((tmp_path / "dist" / "lua5.4.spdx.json").read_text())["packages"]}
    assert "libreadline-dev" in names  # linux-readline's link, recorded by the wrappers under debian/rules too


@pytest.mark.parametrize(("given", "said"), [
    ("pv'", "is not a Debian source package name"), ("$(touch pwned)", "is not a Debian source package name"),
    ("pv\nRUN touch pwned", "is not a Debian source package name"), ("-o", "is not a Debian source package name"),
    ("--help", "is not a Debian source package name"), ("pv=$(id)", "is not a Debian version"),
    ("pv=1;id", "is not a Debian version"), ("nosuchpackage", "no source package nosuchpackage in bookworm"),
    ("pv=9.9-9", "no source package pv=9.9-9 in bookworm"),
])
def test_bad_names_fail_in_one_line_leaving_nothing(tmp_path, builder_base, docker_client, given, said):
    session = uuid.uuid4().hex[:16]
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    src = _cache() / "fromscratch" / "debian" / "src"
    before = sorted(src.iterdir()) if src.is_dir() else []
    done = _build(tmp_path, builder_base, f"--debian={given}", "--arch", "amd64",
                  env={"FROMSCRATCH_SESSION": session, "TMPDIR": str(scratch)})
    assert_clean_failure(done, 2)
    errors = [line for line in done.err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and said in errors[0], done.err
    assert not (tmp_path / "dist").exists() and not (tmp_path / "pwned").exists()
    assert [p for p in scratch.iterdir() if p.name != "fromscratch-locks"] == []
    assert (sorted(src.iterdir()) if src.is_dir() else []) == before
    label = {"label": f"{engine.SESSION}={session}"}
    assert docker_client.containers.list(all=True, filters=label) == []
    assert docker_client.images.list(filters=label) == []


def test_image_of_a_debian_package_runs(tmp_path, builder_base, docker_client, image_tag):
    tag = image_tag()
    made = invoke("image", "--tag", tag, "--debian", "pv", "--arch", "amd64", "--builder-base", builder_base,
                  cwd=tmp_path, timeout=3600, env={"XDG_CACHE_HOME": str(_cache())})
    assert made.code == 0, made.err
    ran = docker_client.containers.run(tag, ["/pv", "--version"], remove=True)
    assert ran.decode().startswith("pv 1.6")
    assert list(tmp_path.iterdir()) == []  # the program was built in a temporary directory, now gone


def test_image_takes_one_of_debian_or_binary(tmp_path):
    refused = invoke("image", "--tag", "x", "--debian", "pv", "--binary", "hello", cwd=tmp_path)
    assert_clean_failure(refused, 2)
    assert "--binary and --debian each say what the image holds" in refused.err
