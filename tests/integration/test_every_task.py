"""Every task in the collection, given bad arguments: no traceback, a non-zero exit, and a message that names the
bad argument. The tasks are enumerated from toolkit.cli.ns, so a task added later fails here until its bad
arguments are in the table below."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import assert_clean_failure, invoke
from toolkit.cli import ns

pytestmark = pytest.mark.engine

MISSING = f"no-such-{uuid.uuid4().hex[:8]}"
BAD_TAG = "Bad Tag!"

# task -> [(arguments, the text the error must name)]; {static} is a real static binary, {dir} a directory.
BAD_ARGUMENTS: dict[str, list[tuple[tuple[str, ...], str]]] = {
    "build-hello": [(("--arch", "sparc"), "sparc"), (("--toolchain", "clang"), "clang")],
    "build": [(("--src", f"{MISSING}.c", "--out", "app"), f"{MISSING}.c"),
              (("--src", "{dir}", "--out", "app"), "{dir}"),
              (("--src", f"{MISSING}.c"), "--out"),
              (("--src", f"{MISSING}.c", "--out", "app", "--cflags", "'-O2"), "--cflags")],
    "verify": [((MISSING,), MISSING), (("{static}", "--arch", "sparc"), "sparc")],
    "verify-image": [(("--tag", f"fromscratch-test-{MISSING}"), f"fromscratch-test-{MISSING}"),
                     (("--tag", BAD_TAG), BAD_TAG)],
    "image": [(("--tag", BAD_TAG, "--binary", "{static}"), BAD_TAG),
              (("--tag", "fromscratch-test-never", "--binary", MISSING), MISSING),
              (("--tag", "fromscratch-test-never", "--binary", "{static}", "--cmd", "'/x"), "--cmd"),
              (("--tag", "fromscratch-test-never", "--binary", "{static}", "--arch", "sparc"), "sparc"),
              (("--tag", "fromscratch-test-never", "--binary", "{static}", "--backend", "bogus"), "bogus"),
              (("--tag", "fromscratch-test-never", "--binary", "{static}", "--output", "nokind"), "nokind"),
              (("--tag", "fromscratch-test-never", "--binary", "{static}", "--sbom", f"{MISSING}.json"),
               f"{MISSING}.json")],
    "inspect": [(("--tag", f"fromscratch-test-{MISSING}"), f"fromscratch-test-{MISSING}"),
                (("--tag", BAD_TAG), BAD_TAG)],
    "push": [(("--tag", BAD_TAG), BAD_TAG),
             (("--tag", f"localhost:5999/fromscratch-test-{MISSING}"), f"fromscratch-test-{MISSING}")],
    "sbom": [(("--binary", MISSING), MISSING), (("--tag", BAD_TAG), BAD_TAG),
             (("--binary", "{static}", "--remote"), "--remote")],
    "binfmt": [(("--arch", "sparc"), "sparc"), (("--check", "--arch", "sparc"), "sparc")],
    "clean": [(("--older-than", "soon"), "soon"), (("--older-than", "-3"), "-3")],
    "run": [(("--tag", f"fromscratch-test-{MISSING}"), f"fromscratch-test-{MISSING}"),
            (("--tag", BAD_TAG), BAD_TAG)],
    "rootfs": [(("--suite", "bookworm", "--tag", BAD_TAG), BAD_TAG)],
    "census": [(("--debian", "pv,$(id)"), "$(id)"), (("--debian", f"./{MISSING}"), MISSING),
               (("--debian", "pv", "--arch", "sparc"), "sparc")],
    "import-rootfs": [((MISSING, "--tag", "fromscratch-test-never"), MISSING),
                      (("{dir}", "--tag", BAD_TAG), BAD_TAG)],
}


def test_the_table_covers_every_task():
    missing = sorted(set(ns.task_names) - set(BAD_ARGUMENTS))
    assert not missing, f"add bad arguments for {missing} to BAD_ARGUMENTS"
    stale = sorted(set(BAD_ARGUMENTS) - set(ns.task_names))
    assert not stale, f"BAD_ARGUMENTS names tasks that no longer exist: {stale}"


@pytest.mark.parametrize("name", sorted(ns.task_names))
def test_bad_arguments(name, tmp_path, binaries, docker_client):
    (tmp_path / "adir").mkdir()
    fill = {"{static}": str(binaries["static"]), "{dir}": str(tmp_path / "adir")}
    cases = BAD_ARGUMENTS.get(name)
    assert cases, f"no bad arguments for {name!r} in BAD_ARGUMENTS"
    for args, named in cases:
        args = tuple(fill.get(a, a) for a in args)
        named = fill.get(named, named)
        result = invoke(name, *args, cwd=tmp_path, timeout=300)
        assert_clean_failure(result)
        assert named in result.err, (name, args, result.err)
    # Invoke's own parsing errors: an unknown flag (after the required arguments, or Invoke would take it
    # for one of them), and each missing required argument.
    task = ns[name]
    given = [word for arg in task.positional for word in (f"--{arg.replace('_', '-')}", "x")]
    result = invoke(name, *given, "--no-such-flag", cwd=tmp_path)
    assert_clean_failure(result)
    assert "--no-such-flag" in result.err, result.err
    if task.positional:
        result = invoke(name, cwd=tmp_path)
        assert_clean_failure(result)
        for arg in task.positional:
            assert arg in result.err, (name, result.err)
