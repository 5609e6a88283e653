"""A 1 GiB binary is verified and imaged by streaming it: the process never holds it whole. (Peak memory figures
are the benchmark's business; the bound here only tells streaming from reading the file in.)"""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.faults import invoke_cmd, sparse_binary

pytestmark = [pytest.mark.engine, pytest.mark.slow]

GIB = 1 << 30
STREAMING_BOUND = 256 << 20  # a quarter of the input: reading the file in whole could not stay under it


def _peak_rss(args: list[str], box) -> tuple[subprocess.CompletedProcess, int]:
    with open(box.logs / "out", "w+") as out, open(box.logs / "err", "w+") as err:
        proc = subprocess.Popen(args, cwd=box.work, env=box.env(), stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        done = subprocess.CompletedProcess(args, proc.returncode, out.read(), err.read())
    return done, usage.ru_maxrss * 1024  # Linux reports KiB


def test_verify_and_image_a_1_gib_binary(sandbox, binaries, docker_client, image_tag):
    big = sparse_binary(binaries["static"], sandbox.root / "big", GIB)
    checked, verify_peak = _peak_rss(invoke_cmd("verify", str(big), "--arch", "amd64"), sandbox)
    assert checked.returncode == 0, checked
    assert verify_peak < STREAMING_BOUND, verify_peak
    tag = image_tag()
    made, image_peak = _peak_rss(invoke_cmd("image", "--tag", tag, "--binary", str(big)), sandbox)
    assert made.returncode == 0, made
    assert image_peak < STREAMING_BOUND, image_peak
    attrs = docker_client.images.get(tag).attrs
    assert attrs["Size"] == GIB and len(attrs["RootFS"]["Layers"]) == 1
    print(f"peak RSS: verify {verify_peak / 2**20:.0f} MiB, image {image_peak / 2**20:.0f} MiB")
    sandbox.assert_clean()
