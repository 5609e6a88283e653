"""The command line as a newcomer meets it, run as a separate process from a directory outside this checkout:
`fromscratch` (the console script's program) and `invoke` take the same tasks, read their configuration files,
name themselves in hints, say a bad flag in one line with exit 2, keep -h for help, and match the README."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import REPO, Result, invoke

README = (REPO / "README.md").read_text()
TASKS = ("build-hello", "build", "clean", "verify", "verify-image", "image", "inspect", "push", "sbom", "run",
         "rootfs", "import-rootfs", "binfmt", "census")


def fromscratch(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Result:
    """`fromscratch ARGS` as the console script runs it (toolkit.cli:program), with this checkout's code."""
    proc = subprocess.run([sys.executable, "-m", "toolkit", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})
    return Result(proc.returncode, proc.stdout, proc.stderr)


def one_line(result: Result) -> str:
    assert "Traceback" not in result.err, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    return lines[0]


# --- 1: the build container's base, configured once ------------------------------------------------------------

BAD_BASE = "Not An Image"


@pytest.mark.parametrize("program, where", [
    ("fromscratch", "project file"), ("fromscratch", "user file"), ("fromscratch", "environment"),
    ("fromscratch", "runtime file"), ("invoke", "user file"), ("invoke", "environment"), ("invoke", "runtime file")])
def test_both_commands_read_builder_base_from_their_configuration(tmp_path, program, where):
    """A value the configuration gives reaches the task: an invalid one is refused naming the key, before any
    engine is asked. So each place the README names is read (invoke's project file is this checkout's
    invoke.yaml, which a test does not write)."""
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    text = f"builder:\n  base: {BAD_BASE}\n"
    env = {"HOME": str(home)}
    args: list[str] = []
    if where == "project file":
        (work / f"{program}.yaml").write_text(text)
    elif where == "user file":
        (home / f".{program}.yaml").write_text(text)
    elif where == "environment":
        env[f"{program.upper()}_BUILDER_BASE"] = BAD_BASE
    else:
        (tmp_path / "mine.yaml").write_text(text)
        args = ["-f", str(tmp_path / "mine.yaml")]
    run = fromscratch if program == "fromscratch" else invoke
    result = run(*args, "build-hello", "--toolchain", "container", "--out", "x", cwd=work, env=env)
    assert result.code == 2, result
    assert f"the config key builder.base {BAD_BASE!r} is not an image reference" in one_line(result)


@pytest.mark.parametrize("text, words", [("builder: [\n", "the configuration cannot be read"),
                                         ("builder: ubuntu:24.04\n", "builder.base goes in a section")])
def test_a_configuration_file_that_cannot_be_used_is_one_line(tmp_path, text, words):
    (tmp_path / "fromscratch.yaml").write_text(text)
    result = fromscratch("build-hello", "--out", "x", cwd=tmp_path, env={"HOME": str(tmp_path)})
    assert result.code == 2, result
    assert words in one_line(result)


def test_the_help_says_how_the_default_base_is_chosen(tmp_path):
    for task in ("build-hello", "build", "image"):
        shown = " ".join(fromscratch("--help", task, cwd=tmp_path).out.split())
        assert ("(default: the config key builder.base, else fromscratch/debian:bookworm when the engine has it, "
                "else ubuntu:24.04)") in shown, (task, shown)


# --- 2: the command that works anywhere, named in hints ---------------------------------------------------------

def test_hints_name_the_command_the_user_typed(tmp_path):
    by_fromscratch = fromscratch("sbom", cwd=tmp_path)
    assert "e.g. fromscratch sbom --binary ./hello" in one_line(by_fromscratch)
    by_invoke = invoke("sbom", cwd=tmp_path)
    assert "e.g. invoke sbom --binary ./hello" in one_line(by_invoke)


def _messages(path: Path) -> list[tuple[int, str]]:
    """The string literals of a module that are not docstrings: what it may print or raise."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def test_no_message_in_the_toolkit_spells_out_invoke():
    """Every command line a message shows goes through toolkit.command, which knows the command in use."""
    spelled = [f"{path.relative_to(REPO)}:{line}: {text!r}" for path in sorted((REPO / "toolkit").rglob("*.py"))
               for line, text in _messages(path) if re.search(r"\binvoke [a-z-]", text)]
    assert not spelled, spelled


def test_the_quick_start_leads_with_the_command_that_works_anywhere():
    block = README.split("## Quick start", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]
    assert commands and all(c.startswith("fromscratch ") for c in commands), commands


# --- 9: help, README and behaviour agree ------------------------------------------------------------------------

@pytest.mark.parametrize("task", TASKS)
def test_dash_h_after_a_task_is_its_help(tmp_path, task):
    for flag in ("-h", "--help"):
        result = fromscratch(task, flag, cwd=tmp_path)
        assert result.code == 0, (flag, result)
        assert result.out.startswith(f"Usage: fromscratch [--core-opts] {task} "), (flag, result.out)


def test_flags_are_long_only(tmp_path):
    for task in TASKS:
        options = fromscratch("--help", task, cwd=tmp_path).out.split("Options:", 1)[1]
        assert not re.search(r"^\s+-[^-]|^\s+--,", options, re.M), (task, options)


@pytest.mark.parametrize("args, words", [
    (("build", "--no-such-flag"), "no idea what '--no-such-flag' is (hint: `fromscratch --help build` lists its "
                                  "flags)"),
    (("build", "--jobs"), "--jobs needs a value"),
    (("build", "--jobs", "two"), "--jobs 'two': give a whole number"),
    (("build-hello", "--timeout=soon"), "--timeout 'soon': give a whole number"),
    (("--command-timeout", "x", "build"), "--command-timeout 'x': give a whole number"),
    (("build-hello", "--tiny=yes"), "no idea what 'yes' is"),
    (("verify",), "'verify' did not receive required positional arguments: 'path'"),
    (("no-such-task",), "no idea what 'no-such-task' is (hint: `fromscratch --list` lists the tasks)"),
])
def test_a_flag_that_cannot_be_used_is_one_line_and_exit_2(tmp_path, args, words):
    result = fromscratch(*args, cwd=tmp_path)
    assert result.code == 2, result
    assert words in one_line(result), result.err


def _synopsis(task: str) -> str:
    """The code block under the README's `### task` heading."""
    section = README.split(f"\n### {task}\n", 1)[1]
    return section.split("```\n", 1)[1].split("```", 1)[0]


def _help_flags(help_text: str) -> set[str]:
    options = help_text.split("Options:", 1)[1]
    flags = set()
    for match in re.finditer(r"^  (--\S+?)(?:\[?=\S+)?(?:\s|$)", options, re.M):  # also --no-find[=STRING]
        flag = match.group(1)
        flags.update((flag.replace("[no-]", ""), flag.replace("[no-]", "no-")) if "[no-]" in flag else (flag,))
    return flags


@pytest.mark.parametrize("task", (*TASKS, "bench", "corpus"))
def test_each_readme_synopsis_lists_exactly_the_flags_of_its_help(tmp_path, task):
    checkout_only = task in ("bench", "corpus")
    shown = invoke("--help", task, cwd=REPO) if checkout_only else fromscratch("--help", task, cwd=tmp_path)
    assert shown.code == 0, shown
    synopsis = _synopsis(task)
    program = "invoke" if checkout_only else "fromscratch"
    assert all(line.startswith((f"{program} {task}", " ", "options:")) for line in synopsis.splitlines() if line)
    documented = set(re.findall(r"--[a-z][a-z-]*", synopsis))
    offered = _help_flags(shown.out)
    # a positional argument is written as its name in capitals (verify PATH)
    positional = {f for f in offered if re.search(rf"\b{f[2:].upper()}\b", synopsis.split(" [", 1)[0])}
    missing = sorted(f for f in offered - documented - positional
                     if not (f.startswith("--no-") and f"--{f[5:]}" in documented)
                     and f"--no-{f[2:]}" not in documented)
    assert not missing, f"{task}: --help offers {missing}, the README's synopsis does not"
    unknown = sorted(documented - offered)
    assert not unknown, f"{task}: the README's synopsis names {unknown}, which --help does not offer"


def test_the_readme_shows_no_short_flag_for_a_long_one():
    assert "`--strip` (`-s`)" not in README


# --- 10: what the quick start leaves, where push goes -----------------------------------------------------------

def test_what_the_quick_start_writes_in_the_checkout_is_ignored():
    written = ["hello", "hello.spdx.json", "hello-arm64", "hello-arm64.spdx.json"]
    found = subprocess.run(["git", "check-ignore", *written], cwd=REPO, capture_output=True, text=True)
    if found.returncode == 128:
        pytest.skip(f"not a git checkout: {found.stderr.strip()}")
    assert found.stdout.split() == written, found


def test_push_first_says_where_it_goes(tmp_path):
    """As `docker push` does: a name without a registry host goes to Docker Hub, and the first line says so,
    before anything else is looked up (here the image is missing, or no engine answers)."""
    name = f"fromscratch-test-{uuid.uuid4().hex[:10]}"
    result = fromscratch("push", "--tag", f"{name}:amd64", cwd=tmp_path, env={"FROMSCRATCH_STORE": str(tmp_path)})
    assert result.code == 2, result
    assert result.out.splitlines()[0] == (f"pushing to registry-1.docker.io/library/{name}:amd64 (Docker Hub: the "
                                          "name has no registry host)"), result.out
    mine = fromscratch("push", "--tag", f"localhost:5999/{name}", cwd=tmp_path,
                       env={"FROMSCRATCH_STORE": str(tmp_path)})
    assert mine.out.splitlines()[0] == f"pushing to localhost:5999/{name}:latest", mine.out


def test_help_into_a_closed_pipe_stops_quietly():
    """`fromscratch --help image | head -1`: the reader goes away, and the help stops without a traceback."""
    read, write = os.pipe()
    os.close(read)
    proc = subprocess.run([sys.executable, "-m", "toolkit", "--help", "image"], stdout=write, stderr=subprocess.PIPE,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
    os.close(write)
    assert proc.returncode == 141 and proc.stderr == "", proc
