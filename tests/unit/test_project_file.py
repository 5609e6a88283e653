"""A project's fromscratch.toml: read and checked like the flags it stands for (hostile files refused in one line),
merged under the flags, written back whole. No build runs here."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolkit.compile import plan, project_file
from toolkit.compile.project_file import Settings
from toolkit.errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _project(tmp_path: Path, text: str | bytes) -> Path:
    root = tmp_path / "proj"
    root.mkdir(exist_ok=True)
    (root / "Makefile").write_text("all:\n")
    (root / "src").mkdir(exist_ok=True)
    data = text.encode() if isinstance(text, str) else text
    (root / project_file.FILE_NAME).write_bytes(data)
    return root


def test_a_project_without_the_file_has_no_recipe(tmp_path):
    (tmp_path / "Makefile").write_text("all:\n")
    assert project_file.read(tmp_path) is None
    job = project_file.open_project(str(tmp_path), Settings())
    assert job.system == "make" and job.by_target == ()


def test_every_key_is_read_into_the_plan(tmp_path):
    root = _project(tmp_path, """
packages = ["libncurses-dev", "zlib1g-dev"]
tools = ["bison"]
subdir = "src"
system = "make"
configure-args = "--without-x --enable-foo='a b'"
make-args = ["posix", "V=1"]
cflags = "-O2 -Wall"
ldflags = ["-lm"]
artifacts = ["src/app"]
strip = true
""")
    job = project_file.open_project(str(root), Settings())
    assert job.packages == ("libncurses-dev", "zlib1g-dev") and job.tools == ("bison",)
    assert job.subdir == "src" and job.system == "make" and job.strip
    assert job.configure_args == ("--without-x", "--enable-foo=a b")  # split as the flag is
    assert job.make_args == ("posix", "V=1") and job.cflags == ("-O2", "-Wall") and job.ldflags == ("-lm",)
    assert job.artifacts == ("src/app",)


def test_a_target_table_gives_that_target_its_own_plan(tmp_path):
    root = _project(tmp_path, 'packages = ["zlib1g-dev"]\nmake-args = ["all"]\n\n'
                              '[target.arm64]\nmake-args = ["all", "NO_ASM=1"]\n\n'
                              '[target."linux/arm/v7"]\npackages = []\n')
    job = project_file.open_project(str(root), Settings())
    arm64, arm = job.for_target("arm64"), job.for_target("arm-v7")
    assert arm64.make_args == ("all", "NO_ASM=1") and arm64.packages == ("zlib1g-dev",)
    assert arm.packages == () and arm.make_args == ("all",)
    assert job.for_target("amd64") is job


def test_flags_win_and_say_so(tmp_path):
    root = _project(tmp_path, 'make-args = ["a"]\npackages = ["zlib1g-dev"]\nsystem = "make"\n'
                              '[target.arm64]\nmake-args = ["b"]\n')
    said: list[str] = []
    job = project_file.open_project(str(root), Settings(make_args=("c",), run="true", packages=("zlib1g-dev",)),
                                    said.append)
    assert job.make_args == ("c",) and job.system == "run" and job.for_target("arm64").make_args == ("c",)
    assert job.packages == ("zlib1g-dev",)
    assert any("--make-args given" in s and "make-args not used" in s and "[target.arm64]" not in s for s in said)
    assert any("--make-args given" in s and "[target.arm64]" in s for s in said)
    assert any(s.startswith("--run given") and "system not used" in s for s in said)
    assert not any("packages" in s for s in said)  # the same value: nothing to decide
    assert all("\n" not in s for s in said)


# Each a hostile or careless file: refused in one line naming the file (and the key), before any build.
BAD = [
    ('packages = ["zlib1g-dev; touch pwned"]', "packages 'zlib1g-dev; touch pwned' is not a Debian package name"),
    ('packages = ["$(touch pwned)"]', "is not a Debian package name"),
    ('packages = ["-x"]', "is not a Debian package name"),
    ('tools = ["a\\nRUN touch pwned"]', "tools: 'a\\nRUN touch pwned' holds a newline"),
    ('packages = ["zlib1g-dev:arm64"]', "give the name without :ARCH"),
    ('packages = "zlib1g-dev"', "packages: must be an array of strings, not str"),
    ("packages = [1]", "packages: must be a string, not a number"),
    ("strip = 1", "strip: must be true or false, not a number"),
    ('strip = "yes"', "strip: must be true or false"),
    ('subdir = "../elsewhere"', "subdir ../elsewhere: must be a path inside the project"),
    ('subdir = "/etc"', "must be a path inside the project"),
    ('subdir = "-rf"', "a path whose part starts with '-'"),
    ('artifacts = ["bin/--help"]', "a path whose part starts with '-'"),
    ('subdir = "a\\u0000b"', "subdir: 'a\\x00b' holds a newline or control character"),
    ('system = "bazel"', "unknown build system 'bazel'"),
    ('system = "make"\nrun = "make"', "run and system both say how to build"),
    ('run = ""', "run: is empty"),
    ('run = "make\\nrm -rf /"', "holds a newline or control character"),
    ('make-args = "a \'b"', "make-args \"a 'b\" does not parse (No closing quotation)"),
    ('make-args = ["\\u001b]0;title\\u0007"]', "holds a newline or control character"),
    ("make-args = {x = 1}", "make-args: must be an array of strings, not a table"),
    ('pakages = ["zlib1g-dev"]', "unknown key pakages"),
    ('"$(x)" = 1', "unknown key '$(x)'"),
    ("target = 1", "target must be a table of tables"),
    ("[target.sparc]\nstrip = true", "target.sparc: unknown architecture"),
    ("[target.arm64]\nbogus = 1", "unknown key target.arm64.bogus"),
    ('[target.arm64]\npackages = ["Bad"]', "target.arm64.packages 'Bad' is not a Debian package name"),
    ("target.arm64 = 1", "target.arm64 must be a table of settings"),
    ('[target.arm64]\nstrip = true\n[target.aarch64]\nstrip = false', "target arm64 is given twice"),
    ('packages = ["a"', "is not TOML"),
    ("packages = ['a']\npackages = ['b']", "is not TOML"),
    ("cflags = " + repr("x" * 5000).replace("'", '"'), "more than 4096"),
    ("tools = [" + ", ".join(['"make"'] * 300) + "]", "300 entries, more than 256"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_a_bad_file_is_refused_in_one_line(tmp_path, text, message):
    root = _project(tmp_path, text)
    with pytest.raises(InputError) as caught:
        project_file.open_project(str(root), Settings())
    said = str(caught.value)
    assert message in said, said
    assert str(root / project_file.FILE_NAME) in said
    assert "\n" not in said and len(said) < 400


def test_a_huge_file_is_refused_unread(tmp_path):
    root = _project(tmp_path, b"# " + b"x" * (project_file.MAX_BYTES + 10))
    with pytest.raises(InputError, match="more than a recipe holds"):
        project_file.read(root)


def test_not_utf8_is_refused(tmp_path):
    root = _project(tmp_path, b'run = "\xff\xfe"\n')
    with pytest.raises(InputError, match="is not UTF-8 text"):
        project_file.read(root)


def test_a_symlink_or_a_fifo_is_refused(tmp_path):
    root = _project(tmp_path, "")
    (root / project_file.FILE_NAME).unlink()
    (root / project_file.FILE_NAME).symlink_to("/dev/zero")
    with pytest.raises(InputError, match="is a symlink"):
        project_file.read(root)
    (root / project_file.FILE_NAME).unlink()
    os.mkfifo(root / project_file.FILE_NAME)
    with pytest.raises(InputError, match="is not a regular file"):  # never opened: a FIFO would block
        project_file.read(root)


def test_words_stay_data(tmp_path):
    """What the build script would run, were a value code: it reaches the script quoted."""
    root = _project(tmp_path, 'make-args = ["$(touch pwned)", "`id`", "a;b", "--x=\'y\'"]\n')
    job = project_file.open_project(str(root), Settings())
    script = plan.script(job, "/w", False, "x86_64-linux-gnu")
    assert "'$(touch pwned)' '`id`' 'a;b'" in script


def test_saved_is_read_back_the_same(tmp_path):
    root = _project(tmp_path, 'packages = ["zlib1g-dev"]\nmake-args = ["a b", "q\\"uote", "back\\\\slash", "é"]\n'
                              '[target.arm64]\npackages = []\nstrip = true\n')
    job = project_file.open_project(str(root), Settings(cflags=("-O3",)))
    path = project_file.save(job, {"": ["libncurses-dev"], "riscv64": ["libcap-dev"]})
    again = project_file.open_project(str(root), Settings())
    assert path == root / project_file.FILE_NAME
    assert again.packages == ("zlib1g-dev", "libncurses-dev") and again.cflags == ("-O3",)
    assert again.make_args == ("a b", 'q"uote', "back\\slash", "é") and again.system == "make"
    assert again.for_target("arm64").packages == () and again.for_target("arm64").strip
    assert again.for_target("riscv64").packages == ("zlib1g-dev", "libncurses-dev", "libcap-dev")
    assert not list(root.glob(".*partial"))  # written whole: no temporary file left


def test_with_found_adds_once():
    s = project_file.with_found(Settings(packages=("a", "b")), ["b", "c"])
    assert s.packages == ("a", "b", "c")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(st.characters(blacklist_categories=("Cs",)), max_size=30), max_size=5))
def test_any_words_are_written_as_toml_that_reads_back(words):
    text = project_file.text(Settings(make_args=tuple(words), system="make"))
    assert tomllib.loads(text).get("make-args", []) == words
