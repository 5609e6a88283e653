"""Every link recorded, every program named as installed: real native builds (the host's gcc, make and sh), no
engine. A Makefile's own `gcc` goes through the wrappers; an installed program under another name finds its link by
content; its installed symlinks are delivered beside it; a link the wrappers never saw is said in one line."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import invoke
from toolkit.check import elf

pytestmark = pytest.mark.skipif(not shutil.which("gcc") or not shutil.which("make"), reason="needs gcc and make")

HELLO = '#include <stdio.h>\nint main(void){puts("hi");return 0;}\n'


def _packages(sbom: Path) -> set[str]:
    return {p["name"] for p in json.loads(sbom.read_text())["packages"]}


def _project(tmp_path: Path, makefile: str) -> Path:
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "hello.c").write_text(HELLO)
    (proj / "helper.c").write_text(HELLO)
    (proj / "Makefile").write_text(makefile)
    return proj


# figlet's way: CC and LD are the Makefile's own `gcc` (LD only: make's command line sets CC), install renames
# (screen's way: screen-4.9.0 plus the link screen), a link to something that is not a program, one leading out.
FIGLET_LIKE = """LD = gcc
all: hello helper
hello: hello.o
\t$(LD) -o $@ hello.o
helper: helper.c
\tgcc -o $@ helper.c
install: all
\tmkdir -p $(DESTDIR)/usr/local/bin $(DESTDIR)/usr/local/share
\tcp hello $(DESTDIR)/usr/local/bin/hello-1.0
\tcp helper $(DESTDIR)/usr/local/bin/helper
\tln -s hello-1.0 $(DESTDIR)/usr/local/bin/hello
\tln -s ../share/data $(DESTDIR)/usr/local/bin/data
\ttouch $(DESTDIR)/usr/local/share/data
\tln -s /etc/passwd $(DESTDIR)/usr/local/bin/passwd
\tln -s /usr/bin/env $(DESTDIR)/usr/local/bin/env
"""


def test_a_makefiles_own_gcc_links_static_and_recorded_and_installed_names_are_kept(tmp_path):
    proj = _project(tmp_path, FIGLET_LIKE)
    built = invoke("build", "--project", str(proj), "--run", 'make && make install DESTDIR="$W/stage"',
                   "--toolchain", "native", "--out", str(tmp_path / "dist"), cwd=tmp_path)
    assert built.code == 0, built
    dist = tmp_path / "dist"
    assert sorted(p.name for p in dist.iterdir()) == ["hello", "hello-1.0", "hello-1.0.spdx.json", "helper",
                                                       "helper.spdx.json"], built
    assert os.readlink(dist / "hello") == "hello-1.0"  # beside it, by name: never a path out
    for name in ("hello-1.0", "helper"):
        facts = elf.read(dist / name)
        assert facts.interpreter is None and not facts.needed, name  # plain gcc went through the wrappers
        assert "libc6-dev" in _packages(dist / f"{name}.spdx.json"), name  # its link was recorded, any name
    assert "no record of its link" not in built.err, built.err
    assert "built " in built.out and "hello-1.0 (also hello)" in built.out


def test_a_link_the_wrappers_never_saw_is_said_in_one_line(tmp_path):
    gcc = os.path.realpath(shutil.which("gcc") or "gcc")
    proj = _project(tmp_path, f"hello: hello.c\n\t{gcc} -static -o $@ hello.c\n")
    built = invoke("build", "--project", str(proj), "--toolchain", "native", "--out", str(tmp_path / "dist"),
                   cwd=tmp_path)
    assert built.code == 0, built
    said = [line for line in built.err.splitlines() if "no record of its link" in line]
    assert len(said) == 1 and "dist/hello" in said[0], built.err
    assert "libc6-dev" not in _packages(tmp_path / "dist" / "hello.spdx.json")  # what the binary shows


@pytest.mark.skipif(not shutil.which("aarch64-linux-gnu-gcc"), reason="needs the arm64 cross gcc")
def test_a_kept_recipe_builds_each_target_with_its_own_settings_and_flags_win(tmp_path):
    """fromscratch.toml through the command line: no flag, a [target.arm64] table of its own, then a flag that
    beats the file (and says so); a hostile file stops the build before anything runs."""
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "hello.c").write_text('#include <stdio.h>\nint main(void){puts(WHO);return 0;}\n')
    (proj / "Makefile").write_text("hello: hello.c\n\t$(CC) -DWHO='\"'$(WHO)'\"' -o hello hello.c\n")
    (proj / "fromscratch.toml").write_text('make-args = ["WHO=everyone"]\n[target.arm64]\nmake-args = ["WHO=arm"]\n')
    built = invoke("build", "--project", str(proj), "--arch", "amd64,arm64", "--toolchain", "native",
                   "--out", str(tmp_path / "dist"), cwd=tmp_path)
    assert built.code == 0, built
    assert b"everyone" in (tmp_path / "dist" / "amd64" / "hello").read_bytes()
    assert b"arm\0" in (tmp_path / "dist" / "arm64" / "hello").read_bytes()
    flagged = invoke("build", "--project", str(proj), "--arch", "amd64,arm64", "--toolchain", "native",
                     "--make-args", "WHO=flag", "--out", str(tmp_path / "flag"), cwd=tmp_path)
    assert flagged.code == 0, flagged
    assert all(b"flag\0" in (tmp_path / "flag" / a / "hello").read_bytes() for a in ("amd64", "arm64"))
    assert "--make-args given: " in flagged.err and "[target.arm64]'s make-args not used" in flagged.err
    (proj / "fromscratch.toml").write_text('packages = ["$(touch pwned)"]\n')
    refused = invoke("build", "--project", str(proj), "--toolchain", "native", "--out", str(tmp_path / "no"),
                     cwd=tmp_path)
    assert refused.code == 2 and refused.err.count("\n") == 1, refused
    assert "fromscratch.toml: packages '$(touch pwned)' is not a Debian package name" in refused.err
    assert not (tmp_path / "no").exists() and not list(tmp_path.rglob("pwned"))
