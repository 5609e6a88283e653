"""Dependencies found on a real upstream tree: pbzip2 (Debian's source, its own Makefile: `LDLIBS = -lbz2`) built in
the build container with no --package at all, for two targets, and run in its scratch image; with --no-find the
same build fails where bzlib.h is missing, so the one that works does because libbz2-dev was found."""

from __future__ import annotations

import bz2

import pytest

from tests.conftest import assert_clean_failure
from tests.integration.test_projects import TWO, build, run_in_image, sources  # noqa: F401 (fixtures)

pytestmark = pytest.mark.engine
TEXT = b"found, not told\n" * 1000


def test_pbzip2_builds_with_no_package_because_libbz2_is_found(sources, builder_base, tmp_path,  # noqa: F811
                                                                 run_in_image):  # noqa: F811
    tree = sources("pbzip2")
    told = build(tree, tmp_path / "told", "--no-find", "--arch", "amd64", base=builder_base)
    assert_clean_failure(told)
    assert "bzlib.h" in told.err and "--package libbz2-dev" in told.err  # the failed build's hint
    out = tmp_path / "dist"
    result = build(tree, out, "--arch", ",".join(TWO), "--jobs", "2", base=builder_base)
    assert result.code == 0, result
    assert "found libbz2-dev (-lbz2, Makefile:57)" in result.out.splitlines()
    for arch in TWO:
        packed = run_in_image(out / arch / "pbzip2", "-c", stdin=TEXT)
        assert packed.returncode == 0, packed
        assert bz2.decompress(packed.stdout) == TEXT
