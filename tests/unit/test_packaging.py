"""The installed `fromscratch` command carries everything it needs outside this checkout."""

from __future__ import annotations

import subprocess
import sys
import zipfile

from tests.conftest import REPO


def test_wheel_ships_hello_c_and_the_console_script(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
                   check=True, capture_output=True)
    wheel = next(tmp_path.glob("fromscratch-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        entry_points = next(zf.read(n).decode() for n in names if n.endswith("entry_points.txt"))
    assert {"toolkit/csrc/hello.c", "toolkit/csrc/hello-tiny.c", "toolkit/csrc/platform.h"} <= names
    assert (REPO / "csrc" / "hello.c").read_bytes() == zipfile.ZipFile(wheel).read("toolkit/csrc/hello.c")
    assert "fromscratch = toolkit.cli:program.run" in entry_points
    scripts = sorted((REPO / "toolkit").rglob("*.sh"))  # read at run time from beside their modules
    assert REPO / "toolkit" / "sbom" / "links.sh" in scripts
    for script in scripts:
        name = script.relative_to(REPO).as_posix()
        assert name in names and zipfile.ZipFile(wheel).read(name) == script.read_bytes(), name


def test_python_m_toolkit_is_the_fromscratch_program():
    proc = subprocess.run([sys.executable, "-m", "toolkit", "--list"], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    for name in ("build-hello", "verify", "image", "run", "rootfs", "import-rootfs"):
        assert name in proc.stdout
