"""Kept build state (real engine, real gcc): a rebuild sends only what changed and deletes what the project no
longer has, and makes the same program bytes as a clean build of the changed tree; hostile names are data; a
state left mid-build, changed flags and --clean start from nothing; two builds at once do not corrupt it;
`invoke clean` lists and removes it."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import REPO, assert_clean_failure, invoke
from toolkit.compile import kept
from toolkit.engine import client as engine

# every .c of the directory is compiled: a file left behind in the state would change the program
MAKEFILE = "SRCS := $(sort $(wildcard *.c))\napp: $(SRCS:.c=.o)\n\t$(CC) -o app $^\n"
MAIN = ('#include <stdio.h>\nint part(void);\nint extra __attribute__((weak));\n'
        'int main(void){ printf("%d %d\\n", part(), extra); return 0; }\n')


@pytest.fixture
def session() -> str:
    return f"kept-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def states(docker_client, session):
    """The volumes a test's builds keep: its session's, removed at its end."""
    def mine() -> list[dict]:
        found = docker_client.api.volumes(filters={"label": f"{engine.SESSION}={session}"}).get("Volumes") or []
        return [v for v in found if v["Labels"].get(engine.ROLE) == "state"]

    yield mine
    for v in mine():
        docker_client.api.remove_volume(v["Name"], force=True)


def _build(proj: Path, out: Path, base: str, session: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(REPO), "build", "--project",
                           str(proj), "--toolchain", "container", "--builder-base", base, "--out", str(out), *args],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "FROMSCRATCH_SESSION": session})


def _project(tmp: Path, **files: str) -> Path:
    proj = tmp / "proj"
    proj.mkdir()
    for name, text in files.items():
        (proj / name).write_text(text)
    return proj


def _listing(client, volume: str) -> list[str]:
    """The names under src/ in a kept state's volume, as the engine holds them (read through the archive API of
    a container that never runs)."""
    made = client.containers.create("fromscratch/debian:bookworm", ["true"],
                                    volumes={volume: {"bind": "/work", "mode": "ro"}})
    try:
        stream, _ = made.get_archive("/work/src")
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            return sorted(m.name.removeprefix("src/") for m in tar.getmembers() if m.name != "src")
    finally:
        made.remove(force=True)


def test_a_rebuild_sends_the_change_and_matches_a_clean_build(builder_base, tmp_path, session, states,
                                                              docker_client):
    proj = _project(tmp_path, **{"Makefile": MAKEFILE, "main.c": MAIN, "part.c": "int part(void){return 1;}\n",
                                 "extra.c": "int extra = 7;\n"})
    first = _build(proj, tmp_path / "one", builder_base, session)
    assert first.returncode == 0, first.stderr
    [state] = states()
    assert state["Labels"][kept.LABEL + "project"] == str(proj.resolve())
    (proj / "part.c").write_text("int part(void){return 2;}\n")
    # changed at once, and with a time older than the build of it (a checkout of an older revision): still newer
    # than the part.o it replaces, inside the state
    os.utime(proj / "part.c", (1_000_000_000, 1_000_000_000))
    (proj / "extra.c").unlink()
    again = _build(proj, tmp_path / "two", builder_base, session)
    assert again.returncode == 0, again.stderr
    assert [v["Name"] for v in states()] == [state["Name"]]
    left = _listing(docker_client, state["Name"])
    assert "extra.c" not in left and {"main.o", "part.c", "app"} <= set(left), left
    clean = _build(proj, tmp_path / "clean", builder_base, session, "--clean")
    assert clean.returncode == 0, clean.stderr
    assert (tmp_path / "two" / "app").read_bytes() == (tmp_path / "clean" / "app").read_bytes()
    assert (tmp_path / "one" / "app").read_bytes() != (tmp_path / "two" / "app").read_bytes()


def test_hostile_names_are_sent_and_deleted_as_data(builder_base, tmp_path, session, states, docker_client):
    hostile = ["-rf", "$(touch pwned)", "a'b\"c", "new\nline", "--help", "x;rm -rf ..", " lead"]
    proj = _project(tmp_path, **{"Makefile": MAKEFILE, "main.c": MAIN, "part.c": "int part(void){return 1;}\n"})
    (proj / "-d").mkdir()
    for name in hostile:
        (proj / name).write_text("data\n")
        (proj / "-d" / name).write_text("data\n")
    assert _build(proj, tmp_path / "one", builder_base, session).returncode == 0
    [state] = states()
    assert set(hostile) <= set(_listing(docker_client, state["Name"]))
    for name in hostile:
        (proj / name).unlink()
    (proj / "-d" / hostile[0]).unlink()
    for name in hostile[1:]:  # sent again, and touched by name inside the state
        (proj / "-d" / name).write_text("changed\n")
    again = _build(proj, tmp_path / "two", builder_base, session)
    assert again.returncode == 0, again.stderr
    left = _listing(docker_client, state["Name"])
    assert not set(hostile) & set(left), left
    assert "-d/-rf" not in left and "-d/$(touch pwned)" in left
    assert "pwned" not in left and not (tmp_path / "pwned").exists()


def test_changed_flags_are_another_state_and_the_old_one_goes(builder_base, tmp_path, session, states):
    proj = _project(tmp_path, **{"Makefile": MAKEFILE, "main.c": MAIN, "part.c": "int part(void){return 1;}\n"})
    assert _build(proj, tmp_path / "one", builder_base, session).returncode == 0
    [before] = states()
    assert _build(proj, tmp_path / "two", builder_base, session, "--make-args", "V=1").returncode == 0
    [after] = states()
    assert after["Name"] != before["Name"]


def test_a_state_left_mid_build_is_built_from_nothing(builder_base, tmp_path, session, states, docker_client):
    proj = _project(tmp_path, **{"Makefile": MAKEFILE, "main.c": MAIN, "part.c": "int part(void){return 1;}\n"})
    assert _build(proj, tmp_path / "one", builder_base, session).returncode == 0
    [state] = states()
    # what an interrupted rebuild leaves: the mark sent first, a half-changed tree (a stray object here)
    docker_client.containers.run("fromscratch/debian:bookworm", ["sh", "-c", "touch /work/.fromscratch/dirty && "
                                 "printf 'garbage' > /work/src/part.o"],
                                 volumes={state["Name"]: {"bind": "/work", "mode": "rw"}}, remove=True)
    with open(proj / "main.c", "a") as fh:  # a change: an unchanged tree delivers the last build's program
        fh.write("/* changed */\n")
    again = _build(proj, tmp_path / "two", builder_base, session)
    assert again.returncode == 0, again.stderr
    assert "left mid-build: building from nothing" in again.stderr
    assert (tmp_path / "one" / "app").read_bytes() == (tmp_path / "two" / "app").read_bytes()


NOTHING = "nothing changed since its last build"


def test_an_unchanged_tree_is_delivered_again_without_a_container(builder_base, tmp_path, session, states,
                                                                   docker_client):
    hostile = ["-rf", "$(touch pwned)", "a'b\"c", "new\nline", "--help"]
    proj = _project(tmp_path, **{"Makefile": MAKEFILE, "main.c": MAIN, "part.c": "int part(void){return 1;}\n"})
    for name in hostile:
        (proj / name).write_text("data\n")
    out = tmp_path / "out"
    first = _build(proj, out, builder_base, session)
    assert first.returncode == 0 and NOTHING not in first.stderr, first.stderr
    program, sbom = (out / "app").read_bytes(), (out / "app.spdx.json").read_bytes()
    (out / "app").unlink()
    (out / "app.spdx.json").unlink()
    since = time.time()
    again = _build(proj, out, builder_base, session)
    assert again.returncode == 0 and NOTHING in again.stderr, again.stderr
    assert (out / "app").read_bytes() == program and (out / "app.spdx.json").read_bytes() == sbom
    made = docker_client.api.events(since=int(since), until=int(time.time()) + 1, decode=True, filters={
        "type": "container", "event": "create", "label": f"{engine.SESSION}={session}"})
    # the events API counts in whole seconds: the first build's container, made in the second the clock started,
    # is told from a new one by its time in nanoseconds
    assert [e for e in made if e.get("timeNano", 0) >= since * 1e9] == []
    os.utime(proj / "part.c")  # a new time, the same content: still nothing to build
    assert NOTHING in _build(proj, out, builder_base, session).stderr
    for name in hostile[:2]:
        (proj / name).write_text("changed\n")
    changed = _build(proj, out, builder_base, session)
    assert changed.returncode == 0 and NOTHING not in changed.stderr, changed.stderr
    assert NOTHING in _build(proj, out, builder_base, session).stderr
    flags = _build(proj, out, builder_base, session, "--make-args", "V=1")
    assert flags.returncode == 0 and NOTHING not in flags.stderr, flags.stderr
    assert NOTHING in _build(proj, out, builder_base, session, "--make-args", "V=1").stderr
    clean = _build(proj, out, builder_base, session, "--make-args", "V=1", "--clean")
    assert clean.returncode == 0 and NOTHING not in clean.stderr, clean.stderr
    assert (out / "app").read_bytes() == program and not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("behind", ["echo other > /work/.fromscratch/generation",
                                    "touch /work/.fromscratch/changing.0123456789abcdef"])
def test_a_state_changed_behind_this_machines_back_is_built_from_nothing(builder_base, tmp_path, session, states,
                                                                         docker_client, behind):
    proj = _project(tmp_path, **{"Makefile": MAKEFILE, "main.c": MAIN, "part.c": "int part(void){return 1;}\n"})
    assert _build(proj, tmp_path / "one", builder_base, session).returncode == 0
    [state] = states()
    # another machine's build of the same state (its change made, or cut short while it was sent), and a stray
    # object that only a build from nothing does not link
    docker_client.containers.run("fromscratch/debian:bookworm", ["sh", "-c", f"{behind} && "
                                 "printf 'garbage' > /work/src/part.o"],
                                 volumes={state["Name"]: {"bind": "/work", "mode": "rw"}}, remove=True)
    (proj / "part.c").write_text("int part(void){return 2;}\n")
    again = _build(proj, tmp_path / "two", builder_base, session)
    assert again.returncode == 0, again.stderr
    assert "was changed by another build, or left mid-build: building from nothing" in again.stderr
    assert _build(proj, tmp_path / "clean", builder_base, session, "--clean").returncode == 0
    assert (tmp_path / "two" / "app").read_bytes() == (tmp_path / "clean" / "app").read_bytes()


def test_two_builds_of_one_state_at_once_both_succeed(builder_base, tmp_path, session, states):
    proj = _project(tmp_path, **{"Makefile": MAKEFILE + "\t@sleep 2\n", "main.c": MAIN,
                                 "part.c": "int part(void){return 1;}\n"})
    argv = [sys.executable, "-m", "invoke", "--search-root", str(REPO), "build", "--project", str(proj),
            "--toolchain", "container", "--builder-base", builder_base]
    env = {**os.environ, "FROMSCRATCH_SESSION": session}
    procs = [subprocess.Popen([*argv, "--out", str(tmp_path / f"out{i}")], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    results = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    assert any("uses the same kept build state" in err for _, err in results)
    assert (tmp_path / "out0" / "app").read_bytes() == (tmp_path / "out1" / "app").read_bytes()
    assert len(states()) == 1


def test_clean_lists_and_removes_kept_state(builder_base, tmp_path, session, states):
    proj = _project(tmp_path, **{"Makefile": MAKEFILE, "main.c": MAIN, "part.c": "int part(void){return 1;}\n"})
    assert _build(proj, tmp_path / "one", builder_base, session).returncode == 0
    [state] = states()
    env = {"FROMSCRATCH_SESSION": session}
    listed = invoke("clean", "--dry-run", env=env)
    assert listed.code == 0 and f"would remove {state['Name']} (engine, " in listed.out, listed
    assert str(proj.resolve()) in listed.out and "ccache" not in listed.out
    caches = invoke("clean", "--all", "--dry-run", env=env)
    assert "would remove fromscratch-ccache-amd64 (engine, " in caches.out, caches
    assert len(states()) == 1
    # --project: this test's state only (a plain `clean` would remove the states of every project on this engine)
    mine = ("--project", str(proj))
    other = invoke("clean", "--project", str(tmp_path / "gone"), env=env)
    assert other.code == 0 and f"nothing is kept for {tmp_path.resolve() / 'gone'}" in other.out, other
    kept_young = invoke("clean", "--older-than", "1", *mine, env=env)
    assert kept_young.code == 0 and f"kept    {state['Name']}" in kept_young.out and len(states()) == 1
    assert kept_young.out.count("\n") == 1, kept_young  # no other project's state is said, let alone removed
    removed = invoke("clean", *mine, env=env)
    assert removed.code == 0 and f"removed {state['Name']}" in removed.out, removed
    assert states() == []
    assert_clean_failure(invoke("clean", "--older-than", "$(id)"), 2)
    assert_clean_failure(invoke("clean", "--all", *mine), 2)
    assert_clean_failure(invoke("clean", "--project", ""), 2)


def test_a_native_rebuild_keeps_its_state_under_the_cache_directory(tmp_path):
    proj = _project(tmp_path, **{"Makefile": MAKEFILE, "main.c": MAIN, "part.c": "int part(void){return 1;}\n",
                                 "extra.c": "int extra = 7;\n", "-rf": "data\n", "$(touch pwned)": "data\n"})
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}

    def build(out: str, *args: str):
        done = invoke("build", "--project", str(proj), "--toolchain", "native", "--out", str(tmp_path / out), *args,
                      env=env)
        assert done.code == 0, done
        return (tmp_path / out / "app").read_bytes()

    first = build("one")
    [state] = (tmp_path / "cache" / "fromscratch" / "state").glob(kept.PREFIX + "*")
    (proj / "part.c").write_text("int part(void){return 2;}\n")
    for name in ("extra.c", "-rf", "$(touch pwned)"):
        (proj / name).unlink()
    second = build("two")
    left = sorted(p.name for p in (state / "src").iterdir())
    assert {"extra.c", "-rf", "$(touch pwned)", "pwned"}.isdisjoint(left) and "part.o" in left, left
    assert second != first and second == build("clean", "--clean")
    listed = invoke("clean", "--dry-run", env=env)
    assert f"would remove {state.name} (host, " in listed.out, listed
    # --project values are paths, compared as data: none names this state, none runs, none is taken as a flag
    no_engine = {**env, "DOCKER_HOST": f"unix://{tmp_path}/no.sock"}
    for hostile in ("$(touch pwned)", "-rf", "it's\nhere", f"{proj}/.."):
        other = invoke("clean", "--project", hostile, cwd=tmp_path, env=no_engine)
        assert other.code == 0 and "nothing is kept for " in other.out and state.exists(), other
    assert not (tmp_path / "pwned").exists() and not (proj / "pwned").exists()
    mine = invoke("clean", "--dry-run", "--project", str(proj / ".." / "proj"), env=no_engine)
    assert f"would remove {state.name} (host, " in mine.out, mine  # the same directory by another path
    # an engine that cannot be reached is said in a line; this machine's states are removed all the same
    removed = invoke("clean", "--older-than", "0", env={**env, "DOCKER_HOST": f"unix://{tmp_path}/no.sock"})
    assert removed.code == 0 and f"removed {state.name}" in removed.out and not state.exists(), removed
    assert "not listing the engine's kept volumes" in removed.out


def test_a_cache_directory_that_cannot_be_written_costs_a_native_build_its_kept_state_only(tmp_path):
    """XDG_CACHE_HOME a file: no state, no kept digests, no libc note can be written, and the build still
    delivers (from nothing, in a scratch directory), saying why once."""
    proj = _project(tmp_path, **{"Makefile": MAKEFILE, "main.c": MAIN, "part.c": "int part(void){return 1;}\n"})
    (tmp_path / "cache").write_text("not a directory\n")
    done = invoke("build", "--project", str(proj), "--toolchain", "native", "--out", str(tmp_path / "dist"),
                  env={"XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert done.code == 0 and (tmp_path / "dist" / "app").is_file(), done
    assert "cannot keep the build state" in done.err and "Traceback" not in done.err, done
    assert done.err.count("\n") == 1, done


def _ccache_hits(client, image: str) -> int:
    """The compiles the container builds' compiler cache for amd64 answered so far (ccache's own count)."""
    name, _ = kept.ccache_volume("amd64")
    made = client.containers.run(image, ["ccache", "--print-stats"], detach=True, environment={"CCACHE_DIR": "/c"},
                                 volumes={name: {"bind": "/c", "mode": "rw"}})
    try:
        assert made.wait(timeout=60)["StatusCode"] == 0
        out = made.logs(stdout=True, stderr=False)
    finally:
        made.remove(force=True)
    stats = dict(line.split("\t", 1) for line in out.decode().splitlines() if "\t" in line)
    return int(stats.get("direct_cache_hit", 0)) + int(stats.get("preprocessed_cache_hit", 0))


def _link_records(client, image: str) -> set[str]:
    """The link records kept in the shared cache volume for amd64 (what dpkg said owns each input of a link)."""
    name, _ = kept.ccache_volume("amd64")
    made = client.containers.run(image, ["sh", "-c", f"ls /c/{kept.DPKG_OWNERS}/records"], detach=True,
                                 volumes={name: {"bind": "/c", "mode": "ro"}})
    try:
        assert made.wait(timeout=60)["StatusCode"] == 0
        return set(made.logs(stdout=True, stderr=False).decode().split())
    finally:
        made.remove(force=True)


def test_a_fresh_copy_of_a_built_project_compiles_from_the_cache(builder_base, tmp_path, session, states,
                                                                   docker_client):
    unique = uuid.uuid4().hex  # sources no other build compiled: the first build misses, the copy's hits
    files = {"Makefile": MAKEFILE, "main.c": MAIN + f"/* {unique} */\n", "part.c": "int part(void){return 1;}\n"}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = _project(tmp_path / "a", **files)
    assert _build(first, tmp_path / "one", builder_base, session).returncode == 0
    [state] = states()
    image = state["Labels"][kept.LABEL + "image"]
    before = _ccache_hits(docker_client, image)
    records = _link_records(docker_client, image)
    assert records  # the first build's link was recorded there, not in its own state
    copy = _project(tmp_path / "b", **files)
    assert _build(copy, tmp_path / "two", builder_base, session).returncode == 0
    assert _ccache_hits(docker_client, image) - before >= 2
    assert (tmp_path / "one" / "app").read_bytes() == (tmp_path / "two" / "app").read_bytes()
    # the copy, in a state of its own, linked the same system inputs: dpkg was not asked again, and its SBOM
    # names the same packages
    assert _link_records(docker_client, image) == records
    one, two = ({p["name"] for p in json.loads((tmp_path / out / "app.spdx.json").read_text())["packages"]}
                for out in ("one", "two"))
    assert "libc6-dev" in one and one == two, (one, two)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_rebuild_interrupted_mid_build_leaves_a_state_the_next_build_starts_over(signum, sandbox, builder_base):
    # the build sleeps while a file named slow is in the project: a rebuild that is stopped in the middle
    slow = MAKEFILE + "\t@if [ -f slow ]; then echo sleeping; sleep 60; fi\n"
    proj = _project(sandbox.work, **{"Makefile": slow, "main.c": MAIN, "part.c": "int part(void){return 1;}\n"})
    args = ("build", "--project", str(proj), "--toolchain", "container", "--builder-base", builder_base)
    first = sandbox.run(*args, "--out", "one")
    assert first.code == 0, first
    (proj / "slow").write_text("")
    (proj / "part.c").write_text("int part(void){return 2;}\n")
    run = sandbox.start(*args, "--out", "two")
    run.wait_for("the rebuild to run", lambda: [c for c in sandbox.containers() if c["State"] == "running"])
    time.sleep(1)
    run.interrupt(signum)
    stopped = run.finish()
    assert_clean_failure(stopped, 130)
    sandbox.assert_clean()  # no container; the state's volume is the one thing kept
    (proj / "slow").unlink()
    again = sandbox.run(*args, "--out", "three")
    assert again.code == 0 and "left mid-build: building from nothing" in again.err, again
    clean = sandbox.run(*args, "--out", "four", "--clean")
    assert clean.code == 0, clean
    assert (sandbox.work / "three" / "app").read_bytes() == (sandbox.work / "four" / "app").read_bytes()
