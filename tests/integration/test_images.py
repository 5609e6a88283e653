"""Images on the real engine: loaded by default with the ID we computed, both backends alike, archives that
`docker load` takes, the tiny hello on amd64 and arm64, and `invoke inspect`."""

from __future__ import annotations

import json
import subprocess
import tarfile

import pytest

from tests.conftest import invoke
from tests.image_helpers import HELLO_WORLD_BYTES, probe, tiny_for

pytestmark = pytest.mark.engine

OPTIONS = ["--nonroot", "--tmp", "--ca-certs", "--tzdata", "--workdir", "/work", "--env", "GREETING=hi $USER",
           "--label", "org.opencontainers.image.title=probe", "--entrypoint", "/probe", "--cmd", "one 'two words'"]


def _run(docker_client, tag: str, platform: str | None = None) -> str:
    kwargs = {"platform": platform} if platform else {}
    return docker_client.containers.run(tag, remove=True, **kwargs).decode()


def _inspect(tag: str) -> dict:
    result = invoke("inspect", "--tag", tag, "--json")
    assert result.code == 0, result
    return json.loads(result.out)


def test_default_loads_into_the_engine_with_the_computed_id(tmp_path, docker_client, image_tag):
    assert invoke("build-hello", "--toolchain", "native", cwd=tmp_path).code == 0
    tag = image_tag()
    made = invoke("image", "--tag", tag, cwd=tmp_path)
    assert made.code == 0, made
    computed = next(line.split()[1] for line in map(str.strip, made.out.splitlines()) if line.startswith("id:"))
    assert docker_client.images.get(tag).id == computed
    assert "1 file;" in made.out and "1 layer" in made.out and "into the engine as" in made.out
    assert "Hello from fromscratch!" in _run(docker_client, tag)
    shown = invoke("inspect", "--tag", tag)
    assert shown.code == 0, shown
    assert '"/hello"' in shown.out and "1 regular" in shown.out and "/hello" in shown.out.splitlines()[-1]
    info = _inspect(tag)
    assert [f["path"] for f in info["files"]] == ["/hello"]
    assert info["files"][0]["size"] == (tmp_path / "hello").stat().st_size
    assert info["created"].startswith("1970-01-01")


def test_both_backends_give_the_same_files_and_config_and_both_run(tmp_path, docker_client, image_tag):
    binary = probe(tmp_path)
    outputs, infos = [], []
    for backend in ("python", "dockerfile"):
        tag = image_tag(f"fromscratch-test-{backend}")
        made = invoke("image", "--tag", tag, "--binary", str(binary), "--backend", backend, *OPTIONS)
        assert made.code == 0, made
        infos.append(_inspect(tag))
        outputs.append(_run(docker_client, tag))
    assert "FROM scratch" in made.out and "COPY rootfs/ /" in made.out
    python, dockerfile = infos
    assert python["config"] == dockerfile["config"]
    assert python["files"] == dockerfile["files"]
    assert python["platform"] == dockerfile["platform"] == "linux/amd64"
    assert outputs[0] == outputs[1]
    seen = outputs[0]
    for line in ("uid=65532 gid=65532", "cwd=/work", "GREETING=hi $USER", "tmp=1777:", "arg=one",
                 "arg=two words"):
        assert line in seen, seen
    assert "certs=644:" in seen and "utc=644:" in seen and "passwd=644:" in seen


def test_archives_and_layouts_load_with_docker_load(tmp_path, docker_client, image_tag):
    assert invoke("build-hello", "--toolchain", "native", cwd=tmp_path).code == 0
    tag = image_tag()
    made = invoke("image", "--tag", tag, "--output", "docker-archive:d.tar", "--output", "oci:layout",
                  "--output", "oci-archive:o.tar", cwd=tmp_path)
    assert made.code == 0, made
    assert not [i for i in docker_client.api.images() if tag in (i.get("RepoTags") or [])]  # --output alone: no load
    computed = next(line.split()[1] for line in map(str.strip, made.out.splitlines()) if line.startswith("id:"))
    for archive in ("d.tar", "o.tar"):
        with open(tmp_path / archive, "rb") as fh:
            loaded = docker_client.images.load(fh)
        assert loaded[0].id == computed
        docker_client.images.remove(tag, force=True)
    tarred = subprocess.run(f"tar -C {tmp_path / 'layout'} -c . | docker load", shell=True, capture_output=True,
                            text=True)
    assert tarred.returncode == 0, tarred.stderr
    assert docker_client.images.get(tag).id == computed
    assert "Hello from fromscratch!" in _run(docker_client, tag)


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_tiny_image_is_smaller_than_hello_world_and_runs(arch, tmp_path, docker_client, image_tag):
    if arch == "amd64":
        assert invoke("build-hello", "--tiny", "--toolchain", "native", cwd=tmp_path).code == 0
    else:
        tiny_for(arch, tmp_path / "hello")
    tag = image_tag(f"fromscratch-test-tiny-{arch}")
    made = invoke("image", "--tag", tag, "--binary", str(tmp_path / "hello"), cwd=tmp_path)
    assert made.code == 0, made
    attrs = docker_client.images.get(tag).attrs
    assert attrs["Architecture"] == arch
    assert attrs["Size"] < HELLO_WORLD_BYTES[arch]
    assert [f["path"] for f in _inspect(tag)["files"]] == ["/hello"]
    assert f"built for linux/{arch}" in _run(docker_client, tag, platform=f"linux/{arch}")


def test_inspect_of_a_missing_image_is_one_line(docker_client):
    result = invoke("inspect", "--tag", "fromscratch-test-no-such-image:never")
    assert result.code == 2 and "no image" in result.err and "Traceback" not in result.err


@pytest.mark.slow
def test_a_1gib_binary_streams_through_in_bounded_memory(tmp_path, docker_client, image_tag):
    """verify, the layer, an archive and the load into the engine each stream: peak RSS stays under 100 MiB."""
    assert invoke("build-hello", "--toolchain", "native", cwd=tmp_path).code == 0
    big = tmp_path / "big"
    with open(tmp_path / "hello", "rb") as src, open(big, "wb") as dst:
        dst.write(src.read())
        dst.truncate(1 << 30)  # zeros after the ELF's last segment: still the same program, now 1 GiB
    big.chmod(0o755)
    tag = image_tag("fromscratch-test-big")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    for args in (["--output", f"oci-archive:{tmp_path}/big.tar"], []):
        peak = _peak_rss_mib(["image", "--tag", tag, "--binary", str(big), *args], {"TMPDIR": str(scratch)})
        assert peak < 100, f"peak RSS {peak:.0f} MiB for invoke image {' '.join(args)}"
    with tarfile.open(tmp_path / "big.tar") as tar:
        assert max(m.size for m in tar) > 1 << 30
    assert docker_client.images.get(tag).attrs["Size"] == 1 << 30
    assert list(scratch.iterdir()) == []


def _peak_rss_mib(args: list[str], env: dict[str, str]) -> float:
    """Run invoke in a fresh interpreter and return the peak RSS of that process alone, in MiB."""
    import os
    import sys

    from tests.conftest import REPO

    code = ("import resource, subprocess, sys; "
            "p = subprocess.run(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(p.returncode)")
    proc = subprocess.run([sys.executable, "-c", code, sys.executable, "-m", "invoke", "--search-root", str(REPO),
                           *args], capture_output=True, text=True, env={**os.environ, **env}, timeout=900)
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout.strip().splitlines()[-1]) / 1024
