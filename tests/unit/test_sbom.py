"""SBOMs from real links with the host's gcc and g++ (no engine): the archives the linker took and only those, by
package and the version dpkg reports, SPDX that spdx-tools and the NTIA checker accept, the same bytes from the
same inputs; the image's SBOM as an OCI artifact in the layouts; bad input refused in one line."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests import spdxcheck
from tests.conftest import assert_clean_failure, invoke
from toolkit.image import oci
from toolkit.sbom import links, records

EMPTY_CONFIG = {"mediaType": "application/vnd.oci.empty.v1+json", "size": 2,
                "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"}


def dpkg_version(package: str) -> str:
    return subprocess.run(["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True, text=True,
                          check=True).stdout


def owner(path: str) -> str:
    """The package dpkg says shipped a file (of a program on PATH: the file it resolves to)."""
    found = shutil.which(path) if "/" not in path else path
    assert found, path
    answer = subprocess.run(["dpkg-query", "-S", os.path.realpath(found)], capture_output=True, text=True, check=True)
    return answer.stdout.split(":", 1)[0].split(",")[0]


def in_gcc(compiler: str, name: str) -> str:
    """The file compiler links for name (libstdc++.a)."""
    return subprocess.run([compiler, f"-print-file-name={name}"], capture_output=True, text=True).stdout.strip()


def packages(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in doc["packages"]}


def related(doc: dict[str, Any], kind: str, element: str | None = None) -> dict[str, str]:
    """relatedSpdxElement -> comment of the relationships of that kind (from element, if given)."""
    return {r["relatedSpdxElement"]: r.get("comment", "") for r in doc["relationships"]
            if r["relationshipType"] == kind and element in (None, r["spdxElementId"])}


def purl(package: dict[str, Any]) -> str:
    return next(r["referenceLocator"] for r in package["externalRefs"] if r["referenceType"] == "purl")


def _write(tmp: Path, name: str, text: str) -> Path:
    (tmp / name).write_text(text)
    return tmp / name


COS = "#include <math.h>\n#include <stdio.h>\nint main(int c, char **v){ printf(\"%f\\n\", cos(c)); return 0; }\n"
PLAIN = '#include <stdio.h>\nint main(void){ puts("plain"); return 0; }\n'


def _link(style: str, driver: str, out: str, record: str, cmd: list[str]) -> subprocess.CompletedProcess:
    """cmd (a compiler that links out) through links.sh's fs_link, then the trace resolved into record, as the
    compiler wrappers and the build script do it."""
    trace = f"{record}.trace"
    done = subprocess.run(links.argv("fs_link", style, driver, out, trace, *cmd), capture_output=True, text=True)
    if done.returncode == 0:
        resolved = subprocess.run(links.argv("fs_resolve", trace), capture_output=True, text=True, check=True)
        Path(record).write_text(resolved.stdout)
    return done


def _record(tmp: Path, source: str, *flags: str) -> records.Record:
    """A real gcc link through fs_link and fs_resolve, as every build runs it."""
    src = _write(tmp, "p.c", source)
    cmd = ["gcc", "-static", str(src), "-o", str(tmp / "p"), *flags]
    done = _link(links.GNU, "gcc", str(tmp / "p"), str(tmp / "record"), cmd)
    assert done.returncode == 0, done
    assert done.stdout == "", done.stdout  # the linker's trace is kept, not printed
    return records.parse((tmp / "record").read_text())


def test_only_the_archives_a_link_took_members_from_are_listed(tmp_path):
    # libm is on both link lines; only the program that calls cos takes a member of it
    uses = {Path(i.real).name for i in _record(tmp_path, COS, "-lm").inputs if i.kind == "archive"}
    searched = {Path(i.real).name for i in _record(tmp_path, PLAIN, "-lm").inputs if i.kind == "archive"}
    assert any(name.startswith("libm") for name in uses), uses
    assert not any(name.startswith("libm") for name in searched), searched
    assert {"libc.a", "libgcc.a"} <= searched


def test_a_glibc_build_lists_libc6_dev_with_the_version_dpkg_reports(tmp_path):
    built = invoke("build-hello", "--toolchain", "native", cwd=tmp_path)
    assert built.code == 0, built
    doc = spdxcheck.check(tmp_path / "hello.spdx.json")
    found = packages(doc)
    libc = found["libc6-dev"]
    assert libc["versionInfo"] == dpkg_version("libc6-dev:amd64")
    assert purl(libc).startswith(f"pkg:deb/debian/libc6-dev@{libc['versionInfo'].replace('+', '%2B')}?arch=amd64")
    assert libc["supplier"].startswith("Organization: GNU Libc Maintainers")
    program = found["hello"]
    assert program["checksums"] == [{"algorithm": "SHA256", "checksumValue": _sha256(tmp_path / "hello")}]
    assert "linux/amd64" in program["summary"]
    static = related(doc, "STATIC_LINK", program["SPDXID"])
    assert "/libc.a (sha256 " in static[libc["SPDXID"]]
    gcc = found[owner("gcc")]  # gcc-12 on bookworm
    tools = {r["spdxElementId"] for r in doc["relationships"] if r["relationshipType"] == "BUILD_TOOL_OF"}
    assert tools == {gcc["SPDXID"]}
    assert gcc["versionInfo"] == dpkg_version(owner("gcc"))
    assert [f["fileName"] for f in doc["files"]] == ["./hello.c"]
    assert set(related(doc, "GENERATED_FROM", program["SPDXID"])) == {doc["files"][0]["SPDXID"]}
    assert doc["creationInfo"]["created"] == "1970-01-01T00:00:00Z"


def test_what_dpkg_answered_is_kept_while_its_status_file_is_the_same(tmp_path):
    cache = tmp_path / "owners"
    trace = _write(tmp_path, "trace", "output /x\nlinker gnu\ndriver gcc\n")
    env = {**os.environ, "FROMSCRATCH_DPKG_CACHE": str(cache)}

    def resolve() -> str:
        return subprocess.run(links.argv("fs_resolve", str(trace)), capture_output=True, text=True, check=True,
                              env=env).stdout

    first = resolve()
    assert f"owner\t{owner('gcc')}\t" in first
    [kept] = [p for p in cache.iterdir() if p.is_file()]
    assert [line for line in first.splitlines() if line.startswith(("owner", "package"))] == \
        kept.read_text().splitlines()
    kept.write_text("owner\tkept-answer\t/x\n")  # answered from the file, dpkg not asked again
    shutil.rmtree(cache / "records")  # (not from the whole record fs_resolve kept)
    assert "owner\tkept-answer\t/x" in resolve()
    # another status file (dpkg installed or removed something): another name, the old answers go
    admin = tmp_path / "admin"
    admin.mkdir()
    (admin / "status").write_text("Package: x\n")
    asked = _write(tmp_path, "asked", "/usr/bin/gcc\n")
    path = subprocess.run(links.argv("fs_owners_kept", str(asked)), capture_output=True, text=True, check=True,
                          env={**env, "DPKG_ADMINDIR": str(admin)}).stdout.strip()
    (admin / "status").write_text("Package: x\nStatus: install ok installed\n")
    other = subprocess.run(links.argv("fs_owners_kept", str(asked)), capture_output=True, text=True, check=True,
                           env={**env, "DPKG_ADMINDIR": str(admin)}).stdout.strip()
    assert path.startswith(f"{cache}/") and other.startswith(f"{cache}/") and path != other
    subprocess.run(links.argv("fs_keep_owners", str(asked), other), check=True, env=env)
    assert sorted(p.name for p in cache.iterdir() if p.is_file()) == [Path(other).name]


def test_a_record_is_kept_while_nothing_it_read_changed(tmp_path):
    cache, own = tmp_path / "owners", tmp_path / "own"
    own.mkdir()
    archive = _write(tmp_path, "libx.a", "!<arch>\n")
    mine = _write(own, "libown.a", "!<arch>\n")
    env = {**os.environ, "FROMSCRATCH_DPKG_CACHE": str(cache)}

    def resolve(output: str) -> str:
        trace = _write(tmp_path, "trace", f"output {output}\nlinker gnu\ndriver gcc\narchive {archive}\n"
                                          f"archive {mine}\nobject /tmp/gone-{output[-1]}.o\n")
        return subprocess.run(links.argv("fs_resolve", str(trace), str(own)), capture_output=True, text=True,
                              check=True, env=env).stdout

    first = resolve("/out/a")
    [kept] = (cache / "records").iterdir()
    assert "output\t/out/a" in first and "output" not in kept.read_text()
    second = resolve("/out/b")  # another program, a temporary object that is gone: the same record
    assert sorted(second.replace("/out/b", "/out/a").splitlines()) == sorted(first.splitlines())
    assert records.parse(second).output == "/out/b" and len(list((cache / "records").iterdir())) == 1
    mine.write_text("!<arch>\nchanged, and left out of the record\n")
    assert len(resolve("/out/a")) and len(list((cache / "records").iterdir())) == 1
    archive.write_text("!<arch>\nchanged\n")
    changed = resolve("/out/a")
    assert len(list((cache / "records").iterdir())) == 2 and changed != first
    assert hashlib.sha256(archive.read_bytes()).hexdigest() in changed


def test_the_sums_of_a_links_inputs_are_kept_while_no_input_changed(tmp_path):
    cache = tmp_path / "owners"
    inputs = []
    for name in ["libc.a", "-n", "a b", "$(touch pwned)", "x'y"]:
        inputs.append(_write(tmp_path, name, f"{name}\n"))
    listed = _write(tmp_path, "listed", "".join(f"{p}\n" for p in inputs))
    env = {**os.environ, "FROMSCRATCH_DPKG_CACHE": str(cache)}

    def sums() -> str:
        return subprocess.run(links.argv("fs_sums", str(listed)), capture_output=True, text=True, check=True,
                              env=env, cwd=tmp_path).stdout

    first = sums()
    assert first == subprocess.run(["sha256sum", "--", *map(str, inputs)], capture_output=True, text=True,
                                   check=True).stdout
    [kept] = (cache / "sums").iterdir()
    kept.write_text("kept\n")  # answered from the file: nothing read again
    assert sums() == "kept\n"
    inputs[0].write_text("libc.a, changed\n")  # another size and time: read again
    assert sums() != "kept\n" and len(list((cache / "sums").iterdir())) == 2
    assert not (tmp_path / "pwned").exists()
    assert subprocess.run(links.argv("fs_sums", str(listed)), capture_output=True, text=True, check=True,
                          env={k: v for k, v in env.items() if k != "FROMSCRATCH_DPKG_CACHE"}).stdout == \
        subprocess.run(["sha256sum", "--", *map(str, inputs)], capture_output=True, text=True, check=True).stdout


def test_a_cpp_program_lists_libstdcxx(tmp_path):
    _write(tmp_path, "hi.cc", '#include <iostream>\nint main(){ std::cout << "hi" << std::endl; }\n')
    built = invoke("build", "--src", "hi.cc", "--out", "hi", "--toolchain", "native", cwd=tmp_path)
    assert built.code == 0, built
    doc = spdxcheck.check(tmp_path / "hi.spdx.json")
    cxx = packages(doc)[owner(in_gcc("g++", "libstdc++.a"))]  # libstdc++-12-dev on bookworm
    assert cxx["versionInfo"] == dpkg_version(f"{cxx['name']}:amd64")
    assert "libstdc++.a" in related(doc, "STATIC_LINK")[cxx["SPDXID"]]
    assert owner("g++") in packages(doc)


def test_a_musl_build_lists_musl_dev(tmp_path):
    built = invoke("build-hello", "--libc", "musl", "--toolchain", "native", cwd=tmp_path)
    assert built.code == 0, built
    doc = spdxcheck.check(tmp_path / "hello.spdx.json")
    musl = packages(doc)["musl-dev"]
    assert musl["versionInfo"] == dpkg_version("musl-dev:amd64") and "libc6-dev" not in packages(doc)
    assert "/libc.a (sha256 " in related(doc, "STATIC_LINK")[musl["SPDXID"]]
    assert owner("gcc") in packages(doc)  # the gcc that <musl>-gcc runs, not the wrapper script


def test_a_project_build_traces_each_program_through_the_wrappers(tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    _write(proj, "cosine.c", COS)
    _write(proj, "plain.c", PLAIN)
    _write(proj, "Makefile", "all: cosine plain\n%: %.c\n\t$(CC) $(CFLAGS) $< -o $@ $(LDFLAGS) -lm\n"
                             "install:\n\tmkdir -p $(DESTDIR)/usr/local/bin\n"
                             "\tinstall -s cosine plain $(DESTDIR)/usr/local/bin/\n")
    # make, then make install's stripped copies: each program is matched to its link by name and content
    built = invoke("build", "--project", str(proj), "--run", 'make && make install DESTDIR="$W/stage"',
                   "--toolchain", "native", "--out", str(tmp_path / "dist"), cwd=tmp_path)
    assert built.code == 0, built
    for name in ("cosine", "plain"):
        doc = spdxcheck.check(tmp_path / "dist" / f"{name}.spdx.json")
        assert "libc6-dev" in packages(doc)
        static = " ".join(related(doc, "STATIC_LINK").values())
        assert ("libm-" in static) == (name == "cosine"), static  # -lm on both links, used by one
        source = packages(doc)["proj"]
        assert source["primaryPackagePurpose"] == "SOURCE" and source["versionInfo"].startswith("sha256:")


def test_the_same_inputs_give_the_same_bytes(tmp_path):
    first = tmp_path / "one"
    second = tmp_path / "two"
    for where in (first, second):
        where.mkdir()
        _write(where, "app.c", PLAIN)
        assert invoke("build", "--src", "app.c", "--out", "app", "--toolchain", "native", cwd=where).code == 0
    assert (first / "app.spdx.json").read_bytes() == (second / "app.spdx.json").read_bytes()
    again = invoke("build", "--src", "app.c", "--out", "app", "--toolchain", "native", cwd=first,
                   env={"SOURCE_DATE_EPOCH": "1700000000"})
    assert again.code == 0, again
    dated = json.loads((first / "app.spdx.json").read_bytes())
    assert dated["creationInfo"]["created"] == "2023-11-14T22:13:20Z"
    assert dated["documentNamespace"] != json.loads((second / "app.spdx.json").read_bytes())["documentNamespace"]


def test_without_a_supplier_the_checker_misses_only_the_programs(tmp_path):
    built = invoke("build-hello", "--toolchain", "native", cwd=tmp_path, env={"FROMSCRATCH_SBOM_SUPPLIER": ""})
    assert built.code == 0, built
    spdxcheck.check(tmp_path / "hello.spdx.json", ntia=False)
    assert spdxcheck.ntia_gaps(tmp_path / "hello.spdx.json") == [("supplier", ["hello"])]
    (tmp_path / "hello.spdx.json").unlink()  # known to lack a supplier: not for the session's check of all SBOMs
    bad = invoke("build-hello", "--toolchain", "native", "--out", "other", cwd=tmp_path,
                 env={"FROMSCRATCH_SBOM_SUPPLIER": "ACME"})
    assert_clean_failure(bad, 2)
    assert "FROMSCRATCH_SBOM_SUPPLIER" in bad.err and len(bad.err.strip().splitlines()) == 1
    assert not (tmp_path / "other").exists() and not (tmp_path / "other.spdx.json").exists()


ENV = "FROMSCRATCH_SBOM_SUPPLIER"
ACME = "Organization: ACME (security@acme.example)"
JANE = "Person: Jane Doe (jane@example.org)"


def test_the_supplier_is_named_once_by_flag_config_key_or_environment(tmp_path, monkeypatch):
    """--supplier, else the config key sbom.supplier, else FROMSCRATCH_SBOM_SUPPLIER names the programs' supplier
    (and a project's sources', which the user gave too). Under `fromscratch` the variable is the key's own, so it
    beats the files, as FROMSCRATCH_BUILDER_BASE does; `invoke` reads its own files before it."""
    from tests.unit.test_command_line import fromscratch

    env = {"HOME": str(tmp_path), ENV: "Organization: the environment"}
    (tmp_path / "fromscratch.yaml").write_text(f'sbom:\n  supplier: "{JANE}"\n')
    (tmp_path / ".invoke.yaml").write_text(f'sbom:\n  supplier: "{JANE}"\n')
    runs = (("by-flag", fromscratch, ["--supplier", ACME], ACME), ("by-env", fromscratch, [], env[ENV]),
            ("by-invoke-file", invoke, [], JANE), ("by-file", fromscratch, [], JANE))
    for out, run, flag, expected in runs:
        if out == "by-file":
            monkeypatch.delenv(ENV)
            del env[ENV]
        built = run("build-hello", "--toolchain", "native", "--out", out, *flag, cwd=tmp_path, env=env)
        assert built.code == 0, built
        assert packages(spdxcheck.check(tmp_path / f"{out}.spdx.json"))[out]["supplier"] == expected, out
    _write(tmp_path, "app.c", PLAIN)
    built = invoke("build", "--src", "app.c", "--out", "app", "--toolchain", "native", "--supplier", JANE,
                   cwd=tmp_path)
    assert built.code == 0, built
    assert packages(spdxcheck.check(tmp_path / "app.spdx.json"))["app"]["supplier"] == JANE
    proj = tmp_path / "proj"
    proj.mkdir()
    _write(proj, "app.c", PLAIN)
    built = invoke("build", "--project", str(proj), "--run", "$CC app.c -o app", "--artifact", "app", "--toolchain",
                   "native", "--out", str(tmp_path / "dist"), "--supplier", ACME, cwd=tmp_path)
    assert built.code == 0, built
    found = packages(spdxcheck.check(tmp_path / "dist" / "app.spdx.json"))
    assert found["app"]["supplier"] == found["proj"]["supplier"] == ACME


def test_the_image_names_the_supplier_it_is_given(tmp_path):
    assert invoke("build-hello", "--toolchain", "native", "--supplier", ACME, cwd=tmp_path).code == 0
    _write(tmp_path, "app.conf", "greeting = hi\n")
    made = invoke("image", "--tag", "supplied", "--add", "app.conf:/etc/", "--output", "oci:layout", "--supplier",
                  JANE, cwd=tmp_path)
    assert made.code == 0, made
    found = packages(spdxcheck.check(_layout_sbom(tmp_path / "layout")[2]))
    assert found["supplied"]["supplier"] == found["/etc/app.conf"]["supplier"] == JANE
    assert found["hello"]["supplier"] == ACME  # the program's SBOM, as the build wrote it


HOSTILE_SUPPLIERS = ["Organization: ACME\nPerson: Mallory", 'Organization: ACME", "supplier": "Person: Mallory',
                     "ACME", "Organization: ACME (a@b) and more", "Person: \x1b[31mred", "Organization: " + "A" * 300]


@pytest.mark.parametrize("value", HOSTILE_SUPPLIERS, ids=range(len(HOSTILE_SUPPLIERS)))
def test_a_supplier_that_is_not_one_is_refused_in_one_line(tmp_path, monkeypatch, value):
    from tests.unit.test_command_line import fromscratch, one_line

    _write(tmp_path, "app.c", PLAIN)
    for args in (["build-hello", "--toolchain", "native", "--out", "out"],
                 ["build", "--src", "app.c", "--out", "out", "--toolchain", "native"],
                 ["image", "--tag", "refused", "--binary", "app.c", "--output", "oci:out"]):
        refused = invoke(*args, "--supplier", value, cwd=tmp_path)
        assert_clean_failure(refused, 2)
        assert one_line(refused).startswith("error: --supplier ") and "is not an SPDX supplier" in refused.err
    (tmp_path / "fromscratch.yaml").write_text(json.dumps({"sbom": {"supplier": value}}))
    monkeypatch.delenv(ENV)  # under `fromscratch` the variable would beat the file
    refused = fromscratch("build-hello", "--toolchain", "native", "--out", "out", cwd=tmp_path,
                          env={"HOME": str(tmp_path)})
    assert_clean_failure(refused, 2)
    assert "the config key sbom.supplier" in one_line(refused)
    assert sorted(os.listdir(tmp_path)) == ["app.c", "fromscratch.yaml"]


def test_a_supplier_key_outside_its_section_is_one_line(tmp_path):
    from tests.unit.test_command_line import fromscratch, one_line

    (tmp_path / "fromscratch.yaml").write_text(f'sbom: "{ACME}"\n')
    refused = fromscratch("build-hello", "--toolchain", "native", "--out", "out", cwd=tmp_path,
                          env={"HOME": str(tmp_path)})
    assert_clean_failure(refused, 2)
    assert "sbom.supplier goes in a section" in one_line(refused)


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- the image's SBOM ------------------------------------------------------------------------------------------

def _layout_sbom(layout: Path) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    """(index.json, the artifact's manifest, the SBOM's bytes) of an oci: layout."""
    index = json.loads((layout / "index.json").read_bytes())
    art = next(m for m in index["manifests"] if m.get("artifactType"))
    manifest = json.loads((layout / "blobs" / "sha256" / art["digest"].split(":")[1]).read_bytes())
    blob = (layout / "blobs" / "sha256" / manifest["layers"][0]["digest"].split(":")[1]).read_bytes()
    return index, manifest, blob


def test_the_image_carries_its_sbom_as_an_oci_artifact(tmp_path):
    assert invoke("build-hello", "--toolchain", "native", cwd=tmp_path).code == 0
    _write(tmp_path, "app.conf", "greeting = hi\n")
    args = ["image", "--tag", "localhost:5000/sbom-test:1", "--ca-certs", "--tzdata", "--add", "app.conf:/etc/",
            "--output", "oci:one", "--output", "oci-archive:one.tar", "--output", "docker-archive:docker.tar"]
    made = invoke(*args, cwd=tmp_path)
    assert made.code == 0, made
    index, manifest, blob = _layout_sbom(tmp_path / "one")
    image, listed = index["manifests"]
    assert "artifactType" not in image and image["annotations"]["org.opencontainers.image.ref.name"] == "1"
    assert listed["artifactType"] == manifest["artifactType"] == "application/spdx+json"
    assert manifest["config"] == EMPTY_CONFIG
    assert (tmp_path / "one" / "blobs" / "sha256" / EMPTY_CONFIG["digest"].split(":")[1]).read_bytes() == b"{}"
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["subject"] == {k: image[k] for k in ("mediaType", "digest", "size")}
    assert [layer["mediaType"] for layer in manifest["layers"]] == ["application/spdx+json"]
    assert f"sbom:   {listed['digest']}" in made.out
    doc = spdxcheck.check(blob)
    found = packages(doc)
    top = found["localhost:5000/sbom-test"]
    assert top["primaryPackagePurpose"] == "CONTAINER" and top["versionInfo"] == "1"
    assert purl(top).startswith(f"pkg:oci/sbom-test@{image['digest'].replace(':', '%3A')}?arch=amd64")
    contains = related(doc, "CONTAINS", top["SPDXID"])
    assert contains[found["hello"]["SPDXID"]] == "the program"
    assert found["ca-certificates"]["versionInfo"] == dpkg_version("ca-certificates")
    assert "/etc/ssl/certs/ca-certificates.crt" in contains[found["ca-certificates"]["SPDXID"]]
    assert found["tzdata"]["versionInfo"] == dpkg_version("tzdata")
    assert found["/etc/app.conf"]["checksums"][0]["checksumValue"] == _sha256(tmp_path / "app.conf")
    assert "libc6-dev" in found and "hello.c" in {f["fileName"].lstrip("./") for f in doc["files"]}
    # the archive lists the same artifact; docker load's manifest.json names only the image
    with tarfile.open(tmp_path / "one.tar") as tar:
        assert json.load(tar.extractfile("index.json")) == index  # type: ignore[arg-type]
        loaded = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert len(loaded) == 1 and loaded[0]["Config"] == f"blobs/sha256/{_config_hex(tmp_path / 'one', image)}"
    with tarfile.open(tmp_path / "docker.tar") as tar:
        docker_index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
    assert [m.get("artifactType") for m in docker_index["manifests"]] == [None]
    # the same inputs again: the same image, the same SBOM, the same artifact
    again = invoke(*[a.replace("one", "two").replace("docker.tar", "d2.tar") for a in args], cwd=tmp_path)
    assert again.code == 0, again
    assert _layout_sbom(tmp_path / "two") == (json.loads(json.dumps(index)), manifest, blob)
    assert oci.read_layout(tmp_path / "one")[0].manifest_desc.digest == image["digest"]
    assert [a.descriptor.digest for a in oci.read_artifacts(tmp_path / "one.tar")] == [listed["digest"]]
    none = invoke("image", "--tag", "sbom-none", "--sbom", "none", "--output", "oci:none", cwd=tmp_path)
    assert none.code == 0 and "sbom:" not in none.out, none
    assert [m.get("artifactType") for m in json.loads((tmp_path / "none" / "index.json").read_bytes())
            ["manifests"]] == [None]


def _config_hex(layout: Path, image: dict[str, Any]) -> str:
    manifest = json.loads((layout / "blobs" / "sha256" / image["digest"].split(":")[1]).read_bytes())
    return str(manifest["config"]["digest"].split(":")[1])


def test_a_binary_built_elsewhere_gets_an_sbom_from_what_it_shows(tmp_path, binaries):
    shown = invoke("sbom", "--binary", str(binaries["static"]))
    assert shown.code == 0, shown
    assert "made from the binary" in shown.out and "glibc" in shown.out and "build tool" in shown.out
    as_json = invoke("sbom", "--binary", str(binaries["static"]), "--json")
    (tmp_path / "made.json").write_text(as_json.out)
    found = packages(spdxcheck.check(tmp_path / "made.json"))
    gcc_version = subprocess.run(["gcc", "-dumpfullversion"], capture_output=True, text=True).stdout.strip()
    assert found["gcc"]["versionInfo"] == gcc_version  # from the binary's .comment
    assert found["static"]["checksums"][0]["checksumValue"] == _sha256(binaries["static"])
    # glibc's version is not in this binary; its supplier is the distribution whose gcc the .comment names
    assert found["glibc"]["versionInfo"] == "NOASSERTION"
    distribution = subprocess.run(["gcc", "--version"], capture_output=True, text=True).stdout.split("(")[1].split()[0]
    assert found["glibc"]["supplier"] == f"Organization: {distribution}"
    made = invoke("image", "--tag", "elsewhere", "--binary", str(binaries["static"]), "--output", "oci:l",
                  cwd=tmp_path)
    assert made.code == 0 and "made from the binary" in made.out, made
    assert "glibc" in packages(json.loads(_layout_sbom(tmp_path / "l")[2]))


def test_sbom_shows_a_table_and_json(tmp_path):
    assert invoke("build-hello", "--toolchain", "native", cwd=tmp_path).code == 0
    table = invoke("sbom", "--binary", "hello", cwd=tmp_path)
    assert table.code == 0, table
    rows = {line.split()[0]: line for line in table.out.splitlines()[1:]}
    assert rows["PACKAGE"].split() == ["PACKAGE", "VERSION", "HOW", "IT", "GOT", "IN"]
    assert "static link: libc.a" in rows["libc6-dev"] and dpkg_version("libc6-dev:amd64") in rows["libc6-dev"]
    assert rows[owner("gcc")].endswith("build tool") and rows["hello.c"].endswith("source")
    as_json = invoke("sbom", "--binary", "hello", "--json", cwd=tmp_path)
    assert json.loads(as_json.out) == json.loads((tmp_path / "hello.spdx.json").read_bytes())


def test_bad_sbom_input_is_one_line_and_writes_nothing(tmp_path):
    assert invoke("build-hello", "--toolchain", "native", cwd=tmp_path).code == 0
    other = tmp_path / "other"
    other.mkdir()
    assert invoke("build-hello", "--tiny", "--toolchain", "native", cwd=other).code == 0
    _write(tmp_path, "not.json", "{ not json")
    _write(tmp_path, "cyclonedx.json", '{"bomFormat": "CycloneDX", "specVersion": "1.5"}')
    cases = {("--sbom", "missing.json"): "no such SPDX document",
             ("--sbom", "not.json"): "not an SPDX JSON document",
             ("--sbom", "cyclonedx.json"): "not an SPDX 2 JSON document",
             ("--sbom", str(other / "hello.spdx.json")): "describes another file",
             ("--sbom", "hello.spdx.json", "--platform", "linux/amd64,linux/arm64"): "one binary's SBOM"}
    for args, words in cases.items():
        result = invoke("image", "--tag", "bad-sbom", *args, "--output", "oci-archive:out.tar", cwd=tmp_path)
        assert_clean_failure(result, 2)
        assert words in result.err and len(result.err.strip().splitlines()) == 1, result.err
    # the SBOM beside the binary describes another build: refused too, naming the way out
    (tmp_path / "hello.spdx.json").write_bytes((other / "hello.spdx.json").read_bytes())
    stale = invoke("image", "--tag", "bad-sbom", "--output", "oci-archive:out.tar", cwd=tmp_path)
    assert_clean_failure(stale, 2)
    assert "describes another file" in stale.err and "--sbom none" in stale.err
    assert not (tmp_path / "out.tar").exists()
    for args in ([], ["--binary", "hello", "--tag", "x"], ["--binary", "hello", "--remote"]):
        result = invoke("sbom", *args, cwd=tmp_path)
        assert_clean_failure(result, 2)
        assert len(result.err.strip().splitlines()) == 1, result.err


@pytest.mark.parametrize(("libc", "shown", "supplier"), [
    ("glibc", b"GNU C Library (Ubuntu GLIBC 2.39-0ubuntu8) stable release version 2.39.\0"
              b"GCC: (Debian 12.2.0-14) 12.2.0", "Organization: Ubuntu"),  # the banner outranks the compiler
    ("glibc", b"GCC: (Debian 12.2.0-14+deb12u1) 12.2.0", "Organization: Debian"),
    ("musl", b"GCC: (Ubuntu 13.2.0-23ubuntu4) 13.2.0", "Organization: Ubuntu"),
    ("glibc", b"GCC: (GNU) 14.1.0", "Organization: GNU Project"),
    ("musl", b"clang version 18.1.6", "Organization: musl libc project"),
])
def test_a_libc_supplier_is_the_distribution_the_binary_names_else_its_upstream(libc, shown, supplier):
    from toolkit.sbom import shown as sbom_shown

    who, why = sbom_shown._libc_supplier(libc, sbom_shown._GLIBC_BANNER.search(shown),
                                         sbom_shown._GCC_COMMENT.search(shown))
    assert who == supplier and why


# --- an SBOM read back: bounded, and checked in every field the toolkit reads -----------------------------------

CAP = 4 << 20  # the cap the README names for an SBOM read back


@pytest.fixture(scope="module")
def hello(tmp_path_factory) -> Path:
    """hello built natively, its own SBOM beside it: the document the bad ones are made from."""
    where = tmp_path_factory.mktemp("hello")
    assert invoke("build-hello", "--toolchain", "native", cwd=where).code == 0
    return where / "hello"


def _edited(hello: Path, edit: Any) -> bytes:
    doc = json.loads(hello.with_name("hello.spdx.json").read_bytes())
    edit(doc)
    return json.dumps(doc).encode()


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


# name -> (the file's bytes from hello's own document, words the one line must hold)
BAD_SBOMS: dict[str, tuple[Any, str]] = {
    "nested 200,000 deep": (lambda h: b"[" * 200_000 + b"]" * 200_000, "nested more than"),
    # json.loads takes 600 levels; copying the document and printing it indented would not
    "nested 600 deep in a field": (lambda h: _edited(h, lambda d: d.update(annotations=_nested(600))),
                                   "nested more than"),
    "a null relationship": (lambda h: _edited(h, lambda d: d.update(relationships=[None])),
                            "relationships[0] is null, not an object"),
    "a relationship's comment a number": (
        lambda h: _edited(h, lambda d: d["relationships"][0].update(comment=7)),
        "relationships[0].comment is a number, not a string"),
    "a package's SPDXID a number": (lambda h: _edited(h, lambda d: d["packages"][0].update(SPDXID=5)),
                                    "packages[0].SPDXID is a number, not a string"),
    "a package without an SPDXID": (lambda h: _edited(h, lambda d: d["packages"][1].pop("SPDXID")),
                                    "packages[1].SPDXID is missing"),
    "a package's version null": (lambda h: _edited(h, lambda d: d["packages"][1].update(versionInfo=None)),
                                 "packages[1].versionInfo is null, not a string"),
    "a package's checksums an object": (
        lambda h: _edited(h, lambda d: d["packages"][0].update(checksums={"SHA256": "00"})),
        "packages[0].checksums is an object, not an array"),
    "packages an object": (lambda h: _edited(h, lambda d: d.update(packages={})),
                           "packages is an object, not an array"),
    "documentDescribes a string": (lambda h: _edited(h, lambda d: d.update(documentDescribes="SPDXRef-x")),
                                   "documentDescribes is a string, not an array"),
    "a file's checksum a number": (
        lambda h: _edited(h, lambda d: d["files"][0]["checksums"][0].update(checksumValue=1)),
        "files[0].checksums[0].checksumValue is a number, not a string"),
    "an array at the top": (lambda h: b"[1, 2]", "its top level is an array, not an object"),
    "NaN, which JSON has not": (lambda h: _edited(h, lambda d: d.update(comment=float("nan"))), "NaN"),
    "a lone surrogate": (lambda h: _edited(h, lambda d: d["packages"][1].update(name="\ud800")), "surrogate"),
    "Latin-1": (lambda h: _edited(h, lambda d: d.update(comment="caf\xe9")).replace(b"\\u00e9", b"\xe9"),
                "not UTF-8"),
    "UTF-16": (lambda h: _edited(h, lambda d: None).decode().encode("utf-16"), "not UTF-8"),
}


def _bad(tmp: Path, hello: Path, case: str, name: str = "bad.json") -> tuple[Path, str]:
    make, words = BAD_SBOMS[case]
    path = tmp / name
    path.write_bytes(make(hello))
    return path, words


def _over_cap(path: Path) -> Path:
    """A file one byte over the cap that takes no disk (sparse): refused from its size, never read."""
    subprocess.run(["truncate", "-s", str(CAP + 1), str(path)], check=True)
    return path


def _refused(result: Any, words: str) -> None:
    assert_clean_failure(result, 2)
    assert len(result.err.strip().splitlines()) == 1 and result.err.startswith("error: "), result.err
    assert words in result.err, result.err


@pytest.mark.parametrize("case", sorted(BAD_SBOMS))
def test_a_bad_sbom_file_is_one_line_and_nothing_is_written(tmp_path, hello, case):
    path, words = _bad(tmp_path, hello, case)
    result = invoke("image", "--tag", "bad-sbom", "--binary", str(hello), "--sbom", str(path),
                    "--output", "oci-archive:out.tar", cwd=tmp_path)
    _refused(result, words)
    assert sorted(os.listdir(tmp_path)) == ["bad.json"]  # no out.tar, no temporary left behind


def test_an_sbom_over_the_cap_is_refused_from_its_size(tmp_path, hello):
    big = _over_cap(tmp_path / "big.json")
    result = invoke("image", "--tag", "bad-sbom", "--binary", str(hello), "--sbom", str(big),
                    "--output", "oci-archive:out.tar", cwd=tmp_path)
    _refused(result, "over the 4 MiB")
    assert sorted(os.listdir(tmp_path)) == ["big.json"]


def test_an_sbom_of_exactly_the_cap_is_read(tmp_path, hello):
    data = hello.with_name("hello.spdx.json").read_bytes()
    (tmp_path / "full.json").write_bytes(data + b" " * (CAP - len(data)))  # JSON allows trailing blanks
    made = invoke("image", "--tag", "full-sbom", "--binary", str(hello), "--sbom", "full.json",
                  "--output", "oci-archive:out.tar", cwd=tmp_path)
    assert made.code == 0, made
    assert (tmp_path / "out.tar").is_file()


@pytest.mark.parametrize("case", ["nested 200,000 deep", "a null relationship", "a file's checksum a number",
                                  "a lone surrogate", "over the cap"])
def test_a_bad_sbom_beside_the_binary_is_refused_by_image_and_sbom(tmp_path, hello, case):
    shutil.copy(hello, tmp_path / "hello")
    beside = tmp_path / "hello.spdx.json"
    try:
        if case == "over the cap":
            _over_cap(beside)
            words = "over the 4 MiB"
        else:
            words = _bad(tmp_path, hello, case, beside.name)[1]
        before = sorted(os.listdir(tmp_path))
        made = invoke("image", "--tag", "bad-sbom", "--binary", "hello", "--output", "oci-archive:out.tar",
                      cwd=tmp_path)
        _refused(made, words)
        for args in (["--binary", "hello"], ["--binary", "hello", "--json"]):
            _refused(invoke("sbom", *args, cwd=tmp_path), words)
        assert sorted(os.listdir(tmp_path)) == before
    finally:
        beside.unlink()  # the session's last check validates every *.spdx.json left under its temporary dirs


@pytest.mark.parametrize("case", ["nested 200,000 deep", "nested 600 deep in a field", "a null relationship",
                                  "a package's SPDXID a number"])
def test_a_bad_sbom_artifact_is_an_input_error(tmp_path, hello, case):
    from toolkit.errors import InputError
    from toolkit.image import sbom as sboms

    data = BAD_SBOMS[case][0](hello)
    subject = oci.blob_bytes(b"{}", "application/vnd.oci.image.manifest.v1+json")
    artifact = oci.artifact(subject, sboms.ARTIFACT_TYPE, data, "hello.spdx.json")
    with pytest.raises(InputError, match=re.escape(BAD_SBOMS[case][1])):
        sboms.from_artifacts([artifact], "kept by invoke image")


def test_a_zig_link_lists_the_objects_of_the_programs_own_link_once(tmp_path):
    """On a target's first build zig also runs ld.lld -r to make its crt1.o from another one: that link's input
    and output are not the program's, so crt1.o is listed once, the one the program's link took."""
    made, final = tmp_path / "cache" / "made" / "crt1.o", tmp_path / "cache" / "final" / "crt1.o"
    libc = tmp_path / "cache" / "libc" / "libc.a"
    for path, data in ((made, "made"), (final, "final"), (libc, "archive")):
        path.parent.mkdir(parents=True)
        path.write_text(data)
    out = tmp_path / "prog"
    zig = _write(tmp_path, "zig", "#!/bin/sh\n"  # what `zig cc` prints with ZIG_VERBOSE_LINK=1, cold
                 f"echo 'ld.lld -r --error-limit=0 -static -o {final} {made}' >&2\n"
                 f"echo 'ld.lld --error-limit=0 -static -o {out} {final} {libc}' >&2\n"
                 f"echo 'ld.lld --error-limit=0 -static -o {out} {final} {libc}' >&2\n"
                 f": > {out}\n")
    zig.chmod(0o755)
    done = _link(links.ZIG, "zig", str(out), str(tmp_path / "record"), [str(zig)])
    assert done.returncode == 0, done
    inputs = records.parse((tmp_path / "record").read_text()).inputs
    assert [(i.kind, i.path) for i in inputs] == [("object", str(final)), ("archive", str(libc))], inputs
