"""census against the real archive and engine: tree built by the build --debian path and smoke-run in its scratch
image, a name the archive lacks reported as a fetch failure without stopping the census, a rerun answered from the
result cache; hostile lists refused in one line before anything is fetched or written."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest

from tests.conftest import assert_clean_failure, invoke
from tests.integration.test_debian import _cache
from toolkit.engine import client as engine

pytestmark = pytest.mark.engine


def _census(tmp_path: Path, base: str, *args: str, session: str = "") -> object:
    return invoke("census", "--builder-base", base, *args, cwd=tmp_path, timeout=3600,
                  env={"XDG_CACHE_HOME": str(_cache()), **({"FROMSCRATCH_SESSION": session} if session else {})})


def test_census_builds_smokes_reports_and_reuses_its_results(tmp_path, builder_base, docker_client):
    shutil.rmtree(_cache() / "fromscratch" / "census", ignore_errors=True)
    first = _census(tmp_path, builder_base, "--debian", "tree,nosuchpackage", "--arch", "amd64", "--out",
                    str(tmp_path / "report.md"))
    assert first.code == 0, first.err
    lines = [line for line in first.out.splitlines() if line.startswith("[")]
    assert len(lines) == 2 and any("tree 2.1" in line and "amd64 static, smoke 1/1" in line for line in lines), lines
    assert any("nosuchpackage ?: amd64 failed (fetch)" in line for line in lines), lines
    doc = json.loads((tmp_path / "report.json").read_text())
    tree = doc[0]["targets"][0]
    assert (doc[0]["package"], tree["built"], tree["failure"]) == ("tree", True, "")
    assert tree["programs"]["tree"] > 100_000 and tree["smoke"][0]["how"] == "--version"
    assert doc[1]["targets"][0]["failure"] == "fetch"
    text = (tmp_path / "report.md").read_text()
    assert "| fetch | 1 |" in text and "| tree | 2.1" in text
    assert docker_client.images.list(name="fromscratch-census/tree-tree") == []  # smoke images removed

    again = _census(tmp_path, builder_base, "--debian", "tree", "--arch", "amd64", "--out",
                    str(tmp_path / "again.md"))
    assert again.code == 0, again.err
    assert "amd64 static, smoke 1/1" in again.out and "(cached)" in again.out, again.out


@pytest.mark.parametrize("given", ["pv,$(touch pwned)", "pv,tree;id", "pv=1;id", "-o"])
def test_hostile_names_fail_in_one_line_leaving_nothing(tmp_path, builder_base, docker_client, given):
    session = uuid.uuid4().hex[:16]
    done = _census(tmp_path, builder_base, f"--debian={given}", "--out", str(tmp_path / "r.md"), session=session)
    assert_clean_failure(done, 2)
    errors = [line for line in done.err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "is not a Debian" in errors[0], done.err
    assert list(tmp_path.iterdir()) == []
    label = {"label": f"{engine.SESSION}={session}"}
    assert docker_client.containers.list(all=True, filters=label) == []


def test_a_program_that_answers_only_on_a_terminal_passes_its_smoke_run_there(tmp_path, docker_client):
    """sl draws its train and takes no option: with no terminal it answers nothing, on one it runs and exits 0."""
    from tests.conftest import gcc
    from tests.integration.test_run_io import TTY
    from toolkit import census

    prog = gcc(tmp_path, TTY, "-static", "-O2", name="drawer")
    tag = f"fromscratch-test-smoke-{uuid.uuid4().hex[:10]}:latest"
    removed: list[str] = []
    said = census.smoke(prog, "amd64", tag, removed.append)
    assert said.ok and said.how == "no arguments, on a terminal", said
    assert removed == [tag]
    docker_client.api.remove_image(tag, force=True)
