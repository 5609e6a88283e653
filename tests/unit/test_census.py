"""census without an engine: what --debian NAMES|FILE accepts (Debian's grammar, hostile lists refused in one line),
how a failed build's output is classed, the result cache, and the report's Markdown and JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.unit.test_debian import HOSTILE
from toolkit import census
from toolkit.errors import InputError


def test_names_from_a_comma_list_and_a_file(tmp_path: Path) -> None:
    assert census.parse_names("pv,tree, lua5.4 ,pv=1.6.20-1,pv") == ["pv", "tree", "lua5.4", "pv=1.6.20-1"]
    listed = tmp_path / "names"
    listed.write_text("# small ones\npv tree\n\nbc=1.07.1-3 # with a version\nxz-utils,pv\n")
    assert census.parse_names(str(listed)) == ["pv", "tree", "bc=1.07.1-3", "xz-utils"]


@pytest.mark.parametrize("text", [t for t in HOSTILE if "," not in t and t.strip() == t and "/" not in t])
def test_hostile_names_are_refused_in_one_line(text: str) -> None:
    with pytest.raises(InputError) as caught:
        census.parse_names(f"pv,{text}")
    assert "\n" not in str(caught.value).replace(repr(text), "") and caught.value.exit_code == 2


@pytest.mark.parametrize(("body", "said"), [
    (b"pv\n$(id)\n", "line 2: --debian '$(id)' is not a Debian source package name"),
    (b"pv=1;id\n", "line 1: --debian version '1;id' is not a Debian version"),
    (b"\xff\xfe", "is not UTF-8 text"),
    (b"pv " * 400_000, "more than a list of source packages holds"),
    (b"# nothing\n\n", "no source package named"),
])
def test_hostile_files_are_refused_in_one_line(tmp_path: Path, body: bytes, said: str) -> None:
    listed = tmp_path / "names"
    listed.write_bytes(body)
    with pytest.raises(InputError) as caught:
        census.parse_names(str(listed))
    assert said in str(caught.value) and "\n" not in str(caught.value)


def test_a_fifo_or_a_missing_file_is_refused_without_reading(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    for path, said in ((tmp_path / "fifo", "a FIFO"), (tmp_path / "none", "no such list")):
        with pytest.raises(InputError) as caught:
            census.parse_names(str(path))
        assert said in str(caught.value)


@pytest.mark.parametrize(("said", "failure", "named"), [
    ("Err:1 http://deb.debian.org/debian bookworm/main foo 1.0 (tar)\n  404  Not Found [IP: 1.2.3.4 80]", "fetch",
     "404"),
    ("error: no source package nosuch in bookworm", "fetch", "nosuch"),
    ("libonig-dev ships no static archive for oniguruma (configure.ac): not installed", "no-static-archive",
     "libonig-dev"),
    ("/usr/bin/ld: cannot find -lgssapi_krb5: No such file or directory", "no-static-archive", "-lgssapi_krb5"),
    ("foo.c:(.text+0x1): warning: Using 'dlopen' in statically linked applications requires at runtime the shared "
     "libraries", "dlopen", "dlopen"),
    ("error: no program of the build for linux/amd64 is static: file came out dynamic", "dynamic", "file"),
    ("make[2]: *** [Makefile:10: all] Error 1\nautomake-1.14: command not found\nerror: the build failed (exit 2)",
     "build", "automake-1.14"),
])
def test_failures_are_classed_by_what_a_user_can_do(said: str, failure: str, named: str) -> None:
    got, detail = census.classify(said)
    assert (got, named in detail) == (failure, True), detail
    assert got in census.CLASSES


def test_a_build_failure_keeps_the_end_of_its_output() -> None:
    said = "\n".join(["building the build image's layer: " + "x" * 500] * 4 + ["error: the build of screen failed"])
    failure, detail = census.classify(said)
    assert failure == "build" and detail.endswith("error: the build of screen failed") and len(detail) <= 600


def test_cached_results_come_back_marked_and_a_new_build_image_misses(tmp_path: Path) -> None:
    cache = census.Cache(tmp_path)
    done = census.TargetResult("amd64", True, 3.5, programs={"pv": 1000},
                               smoke=[census.Smoke("pv", "amd64", True, "--version")])
    key = census.cache_key("pv", "1.6.20-1", "amd64", "base@sha256:1")
    cache.put("pv", key, done)
    again = cache.get("pv", key)
    assert again is not None and again.cached and again.smoke == done.smoke and again.programs == done.programs
    assert cache.get("pv", census.cache_key("pv", "1.6.20-1", "amd64", "base@sha256:2")) is None
    assert cache.get("pv", census.cache_key("pv", "1.6.20-2", "amd64", "base@sha256:1")) is None
    (tmp_path / "pv" / f"{key}.json").write_text("{not json")
    assert cache.get("pv", key) is None


def test_report_has_a_row_per_package_and_a_summary_by_class(tmp_path: Path) -> None:
    results = [
        census.PackageResult("pv", "1.6.20-1", [
            census.TargetResult("amd64", True, 12.0, programs={"pv": 1_042_320},
                                smoke=[census.Smoke("pv", "amd64", True, "--version")]),
            census.TargetResult("arm64", False, 30.0, "no-static-archive", "libfoo-dev ships no static archive")]),
        census.PackageResult("nosuch", "?", [census.TargetResult("amd64", False, 0.0, "fetch", "404 | Not Found"),
                                             census.TargetResult("arm64", False, 0.0, "fetch", "404 | Not Found")]),
    ]
    md = tmp_path / "census.md"
    census.report(results, ["amd64", "arm64"], md, "Census")
    text = md.read_text()
    assert "1 of 4 builds (package × target) made static programs; 1 of 4 also answered" in text
    assert "| fetch | 2 |" in text and "| nosuch (amd64/arm64) |" in text and "| no-static-archive | 1 |" in text
    assert "| pv | 1.6.20-1 | pv | static | failed: no-static-archive | amd64: pv ok (--version) | 12/30 |" in text
    assert "| amd64, arm64: 404 / Not Found |" in text  # said once for both; a | does not break the table
    doc = json.loads(md.with_suffix(".json").read_text())
    assert [p["package"] for p in doc] == ["pv", "nosuch"] and doc[0]["targets"][0]["programs"] == {"pv": 1042320}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["census.json", "census.md"]
    assert census.load(md.with_suffix(".json")) == results


def test_notes_on_builds_that_worked_are_summed_by_class(tmp_path: Path) -> None:
    notes = ["magic: came out dynamic, left out", "file: glibc static binary calls getpwuid: user lookups read "
             "/etc/passwd", "dlopen: warning: Using 'dlopen' in statically linked applications"]
    results = [census.PackageResult("file", "1:5.44-3", [census.TargetResult(
        "amd64", True, 9.0, programs={"file": 2_000_000}, smoke=[census.Smoke("file", "amd64", True, "--version")],
        notes=notes)])]
    md = tmp_path / "r.md"
    census.report(results, ["amd64"], md)
    text = md.read_text()
    for name in ("partly-dynamic", "nss-iconv", "dlopen-warning"):
        assert f"| {name} | 1 |" in text and name in census.NOTES
    assert "1 of 1 builds (package × target) made static programs; 1 of 1 also answered" in text


def test_the_subprocesses_run_this_toolkit_not_one_in_the_current_directory(tmp_path: Path, monkeypatch) -> None:
    planted = tmp_path / "toolkit"
    planted.mkdir()
    (planted / "__init__.py").write_text("")
    (planted / "__main__.py").write_text(f"open({str(tmp_path / 'pwned')!r}, 'w').close()\n")
    monkeypatch.chdir(tmp_path)
    ran = census._toolkit("--version", timeout=120)
    assert ran.returncode == 0 and "fromscratch" in ran.stdout.lower(), ran
    assert not (tmp_path / "pwned").exists()
