"""Files the toolkit writes belong to the user who ran it, also when gcc ran in a build container: the binary
comes out through the engine's archive API and is written by the toolkit itself, never by the engine."""

from __future__ import annotations

import os
import stat

import pytest

from tests.faults import NOBODY, as_other_user

pytestmark = pytest.mark.engine


def test_a_container_build_by_an_ordinary_user_gives_that_user_the_files(sandbox, builder_base):
    prefix = as_other_user()
    uid = NOBODY if prefix else os.geteuid()
    result = sandbox.run("build-hello", "--toolchain", "container", "--builder-base", builder_base,
                         "--out", "new/dir/hello", prefix=prefix, env=sandbox.env(HOME=str(sandbox.work)))
    assert result.code == 0, result
    for path in (sandbox.work / "new", sandbox.work / "new/dir", sandbox.work / "new/dir/hello"):
        assert path.stat().st_uid == uid, (path, path.stat().st_uid)
    hello = sandbox.work / "new/dir/hello"
    assert stat.S_IMODE(hello.stat().st_mode) == 0o755
    assert os.access(hello, os.X_OK)
    sandbox.assert_clean()
