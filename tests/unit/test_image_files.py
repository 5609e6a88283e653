"""`invoke image --output` with no engine at all: reproducible files, the options' contents, bad input refused,
and the tiny hello that beats hello-world's size."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.conftest import assert_clean_failure, invoke
from tests.image_helpers import HELLO_WORLD_BYTES, layer_names, tiny_for
from toolkit import targets
from toolkit.check import elf, verify

NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/fromscratch-no-engine.sock"}


@pytest.fixture(scope="module")
def hello(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("hello")
    built = invoke("build-hello", "--toolchain", "native", cwd=tmp)
    assert built.code == 0, built
    return tmp / "hello"


def _layout(directory: Path) -> tuple[dict, dict, Path]:
    """index.json -> manifest -> (config, manifest, layer path) of a one-platform OCI layout."""
    blobs = directory / "blobs" / "sha256"
    index = json.loads((directory / "index.json").read_text())
    manifest = json.loads((blobs / index["manifests"][0]["digest"].split(":")[1]).read_text())
    config = json.loads((blobs / manifest["config"]["digest"].split(":")[1]).read_text())
    return config, manifest, blobs / manifest["layers"][0]["digest"].split(":")[1]


def _field(out: str, name: str) -> str:
    return next(line.split(None, 1)[1] for line in map(str.strip, out.splitlines()) if line.startswith(f"{name}:"))


def test_output_without_an_engine_is_reproducible(hello, tmp_path):
    runs = []
    for i, mtime in enumerate((1, 1_900_000_000)):
        d = tmp_path / f"run{i}"
        d.mkdir()
        shutil.copy(hello, d / "hello")
        os.utime(d / "hello", (mtime, mtime))
        made = invoke("image", "--tag", "repro", "--output", "oci-archive:img.tar", cwd=d, env=NO_ENGINE)
        assert made.code == 0, made
        assert "docker load -i img.tar" in made.out
        runs.append((_field(made.out, "id"), _field(made.out, "digest"),
                     hashlib.sha256((d / "img.tar").read_bytes()).hexdigest()))
    assert runs[0] == runs[1]
    dated = invoke("image", "--tag", "repro", "--output", "oci:layout", cwd=tmp_path / "run0",
                   env={**NO_ENGINE, "SOURCE_DATE_EPOCH": "1700000000"})
    assert dated.code == 0, dated
    assert _field(dated.out, "digest") != runs[0][1]
    config, _, _ = _layout(tmp_path / "run0" / "layout")
    assert config["created"] == "2023-11-14T22:13:20Z"


def test_no_options_means_exactly_one_file(hello, tmp_path):
    made = invoke("image", "--tag", "one", "--binary", str(hello), "--output", f"oci:{tmp_path}/l", env=NO_ENGINE)
    assert made.code == 0, made
    assert "1 file;" in made.out and "1 layer" in made.out
    config, manifest, layer = _layout(tmp_path / "l")
    assert layer_names(layer) == ["hello"]
    assert config["config"]["Cmd"] == ["/hello"] and config["architecture"] == "amd64"
    assert len(manifest["layers"]) == 1 and config["created"] == "1970-01-01T00:00:00Z"
    # the layout directory is also what `docker load` reads once tarred
    assert json.loads((tmp_path / "l" / "manifest.json").read_text())[0]["RepoTags"] == ["one:latest"]


def test_options_shape_the_files_and_config(hello, tmp_path):
    extra = tmp_path / "extra"
    (extra / "sub").mkdir(parents=True)
    (extra / "sub" / "data.txt").write_text("data\n")
    (extra / "run.sh").write_text("#!/bin/false\n")
    (extra / "run.sh").chmod(0o700)
    (extra / "link").symlink_to("sub/data.txt")
    made = invoke("image", "--tag", "opts", "--binary", str(hello), "--output", f"oci:{tmp_path}/l",
                  "--nonroot", "--tmp", "--ca-certs", "--tzdata", "--workdir", "/work/dir",
                  "--env", "A=1", "--env", "B=x=y", "--label", "org.opencontainers.image.title=hello",
                  "--entrypoint", "/hello --flag", "--cmd", "'two words'",
                  "--add", f"{extra}:/opt/extra", "--add", f"{extra}/sub/data.txt:/etc/", env=NO_ENGINE)
    assert made.code == 0, made
    config, _, layer = _layout(tmp_path / "l")
    cfg = config["config"]
    assert cfg["User"] == "65532:65532" and cfg["WorkingDir"] == "/work/dir"
    assert cfg["Env"][1:] == ["A=1", "B=x=y"] and cfg["Env"][0].startswith("PATH=")
    assert cfg["Labels"] == {"org.opencontainers.image.title": "hello"}
    assert cfg["Entrypoint"] == ["/hello", "--flag"] and cfg["Cmd"] == ["two words"]
    with tarfile.open(layer) as tar:
        members = {m.name: m for m in tar}
        passwd = tar.extractfile("etc/passwd").read().decode()  # type: ignore[union-attr]
    assert "nonroot:x:65532:65532:" in passwd
    assert members["tmp"].isdir() and members["tmp"].mode == 0o1777
    assert members["etc/ssl/certs/ca-certificates.crt"].size > 10_000
    assert members["usr/share/zoneinfo/UTC"].isfile() or members["usr/share/zoneinfo/UTC"].issym()
    assert members["work/dir"].isdir() and members["etc/data.txt"].size == 5
    assert members["opt/extra/run.sh"].mode == 0o755 and members["opt/extra/sub/data.txt"].mode == 0o644
    assert members["opt/extra/link"].issym() and members["opt/extra/link"].linkname == "sub/data.txt"
    assert {m.uid for m in members.values()} == {0}


@pytest.mark.parametrize("args, words", [
    (("--add", "missing.conf:/etc/app.conf"), "missing.conf"),
    (("--add", "app.conf:../../etc/passwd"), "leaves the image's root"),
    (("--add", "app.conf:/etc/../../x"), "leaves the image's root"),
    (("--add", "app.conf"), "SRC:DEST"),
    (("--add", "app.conf:/hello"), "two files for /hello"),
    (("--add", "app.conf:/hello/x"), "inside /hello"),
    (("--env", "NOEQUALS"), "KEY=VALUE"),
    (("--env", "=value"), "KEY=VALUE"),
    (("--label", "x"), "KEY=VALUE"),
    (("--user", "nobody"), "numeric"),
    (("--user", "1000:staff"), "numeric"),
    (("--user", "1", "--nonroot"), "--nonroot"),
    (("--workdir", "relative"), "absolute"),
    (("--output", "tarball:x.tar"), "KIND:PATH"),
    (("--output", "oci:app.conf"), "not a directory"),
    (("--backend", "kaniko"), "kaniko"),
    (("--cmd", "'unclosed"), "does not parse"),
    (("--tag", "Bad Name"), "not a valid image name"),
])
def test_bad_input_is_one_line_and_writes_nothing(hello, tmp_path, args, words):
    shutil.copy(hello, tmp_path / "hello")
    (tmp_path / "app.conf").write_text("x\n")
    before = sorted(p.name for p in tmp_path.iterdir())
    all_args = ["--tag", "bad", *args] if "--tag" not in args else list(args)
    if "--output" not in args:
        all_args += ["--output", "oci-archive:out.tar"]
    scratch = tmp_path.parent / f"{tmp_path.name}-scratch"
    scratch.mkdir()
    result = invoke("image", *all_args, cwd=tmp_path, env={**NO_ENGINE, "TMPDIR": str(scratch)})
    assert_clean_failure(result, 2)
    assert words in result.err, result.err
    assert len(result.err.strip().splitlines()) == 1, result.err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert list(scratch.iterdir()) == []


def test_no_engine_and_no_output_says_what_to_do(hello, tmp_path):
    result = invoke("image", "--tag", "x", "--binary", str(hello), cwd=tmp_path, env=NO_ENGINE)
    assert_clean_failure(result, 2)
    assert "no Docker engine answered" in result.err and "--output oci-archive:" in result.err
    assert list(tmp_path.iterdir()) == []


def test_a_dynamic_binary_writes_no_output(binaries, tmp_path):
    result = invoke("image", "--tag", "x", "--binary", str(binaries["dynamic"]), "--output",
                    "docker-archive:x.tar", cwd=tmp_path, env=NO_ENGINE)
    assert_clean_failure(result, 1)
    assert list(tmp_path.iterdir()) == []


def test_tiny_hello_beats_hello_world_on_amd64(tmp_path):
    built = invoke("build-hello", "--tiny", "--toolchain", "native", cwd=tmp_path)
    assert built.code == 0, built
    tiny = tmp_path / "hello"
    facts = elf.read(str(tiny))
    assert verify.verify(facts, targets.lookup("amd64")).ok
    assert facts.stripped and facts.build_id is None and facts.interpreter is None
    assert tiny.stat().st_size < HELLO_WORLD_BYTES["amd64"]
    run = subprocess.run([str(tiny)], capture_output=True, text=True)
    assert run.returncode == 0 and "built for linux/amd64" in run.stdout


def test_tiny_hello_beats_hello_world_on_arm64(tmp_path):
    tiny = tiny_for("arm64", tmp_path / "hello")
    assert verify.verify(elf.read(str(tiny)), targets.lookup("arm64")).ok
    assert tiny.stat().st_size < HELLO_WORLD_BYTES["arm64"]
    qemu = shutil.which("qemu-aarch64-static") or shutil.which("qemu-aarch64")
    assert qemu, "qemu-user-static is needed to run arm64 binaries (scripts/dev installs it)"
    run = subprocess.run([qemu, str(tiny)], capture_output=True, text=True)
    assert run.returncode == 0 and "built for linux/arm64" in run.stdout, run


def test_strip_strips_any_build(tmp_path):
    (tmp_path / "app.c").write_text('#include <stdio.h>\nint main(void){ puts("app"); return 0; }\n')
    for extra, stripped in (((), False), (("--strip",), True)):
        result = invoke("build", "--src", "app.c", "--out", "app", "--toolchain", "native", *extra, cwd=tmp_path)
        assert result.code == 0, result
        assert elf.read(str(tmp_path / "app")).stripped is stripped
    kept = invoke("build-hello", "--no-strip", "--toolchain", "native", "--out", "h", cwd=tmp_path)
    assert kept.code == 0 and elf.read(str(tmp_path / "h")).stripped is False


@pytest.mark.parametrize("where", ["/dev/full", "/dev/null", "link-to-full"])
def test_an_output_that_is_a_device_is_refused_before_any_work(hello, tmp_path, where):
    """Before: --output oci-archive:/dev/full was refused only after the image summary was printed."""
    (tmp_path / "link-to-full").symlink_to("/dev/full")
    result = invoke("image", "--tag", "x", "--binary", str(hello), "--output", f"oci-archive:{where}",
                    cwd=tmp_path, env=NO_ENGINE)
    assert_clean_failure(result, 2)
    assert result.out == "", result.out  # no summary: nothing was built
    assert "is a character device" in result.err and len(result.err.strip().splitlines()) == 1, result.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link-to-full"]
