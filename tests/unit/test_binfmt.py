"""invoke binfmt against the real kernel: Debian's format files, and handlers whose magic no real binary has."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.conftest import IN_CI, REPO, Result, assert_clean_failure, invoke
from toolkit import targets
from toolkit.engine import binfmt
from toolkit.errors import ToolkitError

# An ELF header with e_machine 0xfefe, which no architecture uses: registering it changes how nothing runs.
NO_SUCH_MAGIC = r"\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xfe\xfe"
FULL_MASK = r"\xff" * 20
INTERPRETER = "/usr/bin/qemu-aarch64-static"


@pytest.fixture
def kernel():
    """The real binfmt_misc, writable: root on Linux with it mounted (CI runs as root)."""
    if os.geteuid() != 0 or not (binfmt.BINFMT_MISC / "register").exists():
        msg = "registering binfmt handlers needs root and a mounted binfmt_misc"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    names: list[str] = []

    def name() -> str:
        names.append(f"fromscratch-test-{uuid.uuid4().hex[:8]}")
        return names[-1]

    yield name
    for n in names:
        if (binfmt.BINFMT_MISC / n).exists():
            binfmt.remove(n)


def _handler(name: str, flags: str = "PF") -> binfmt.Handler:
    return binfmt.Handler(name, INTERPRETER, NO_SUCH_MAGIC, FULL_MASK, 0, flags)


def test_debian_format_file_becomes_a_fix_binary_handler():
    handler = binfmt.read_format(binfmt.DEBIAN_FORMATS / "qemu-aarch64")
    assert handler.flags == "PF"
    assert Path(handler.interpreter).resolve() == Path("/usr/bin/qemu-aarch64-static")
    assert handler.register_line().startswith(r":qemu-aarch64:M:0:\x7f\x45\x4c\x46\x02")


def test_register_is_idempotent_and_repairs_what_it_finds(kernel):
    name = kernel()
    assert binfmt.check(_handler(name)) == ("missing", "not registered: run `fromscratch binfmt` as root")
    assert binfmt.apply(_handler(name))[0] == "registered"
    entry = binfmt.read_entry(binfmt.BINFMT_MISC, name)
    assert entry is not None and entry.enabled and entry.fix_binary and entry.interpreter == INTERPRETER
    assert binfmt.apply(_handler(name))[0] == "present"

    (binfmt.BINFMT_MISC / name).write_text("0")  # disabled, as `update-binfmts --disable` leaves it
    assert "disabled" in binfmt.check(_handler(name))[1]
    assert binfmt.apply(_handler(name))[0] == "enabled"
    assert binfmt.read_entry(binfmt.BINFMT_MISC, name).enabled  # type: ignore[union-attr]

    binfmt.remove(name)
    binfmt.register(_handler(name, flags="P"))  # registered without fix-binary: useless to containers
    assert "without fix-binary" in binfmt.check(_handler(name))[1]
    state, detail = binfmt.apply(_handler(name))
    assert state == "replaced" and "was flags P" in detail
    assert binfmt.read_entry(binfmt.BINFMT_MISC, name).flags == "PF"  # type: ignore[union-attr]


def test_ensure_reads_formats_and_reports_every_target(kernel, tmp_path):
    qemu = kernel().removeprefix("qemu-")
    (tmp_path / f"qemu-{qemu}").write_text(
        f"package qemu-user-static\ninterpreter {INTERPRETER}\nmagic {NO_SUCH_MAGIC}\noffset 0\n"
        f"mask {FULL_MASK}\ncredentials no\nfix_binary yes\npreserve no\n")
    fake = dataclasses.replace(targets.lookup("s390x"), name="fake", qemu=qemu)
    host = targets.lookup("amd64")
    try:
        first = binfmt.ensure([host, fake], host, formats_dir=tmp_path)
        assert [(s.handler, s.state) for s in first] == [(None, "native"), (f"qemu-{qemu}", "registered")]
        again = binfmt.ensure([host, fake], host, formats_dir=tmp_path)
        assert [s.state for s in again] == ["native", "present"]
        assert [s.state for s in binfmt.ensure([fake], host, change=False, formats_dir=tmp_path)] == ["present"]
    finally:
        if (binfmt.BINFMT_MISC / f"qemu-{qemu}").exists():
            binfmt.remove(f"qemu-{qemu}")


def test_missing_qemu_user_static_is_named(tmp_path):
    statuses = binfmt.ensure([targets.lookup("riscv64")], targets.lookup("amd64"), change=False,
                             formats_dir=tmp_path)
    assert [s.state for s in statuses] == ["unavailable"] and not statuses[0].ok
    assert "install qemu-user-static" in statuses[0].detail


@pytest.mark.parametrize("kwargs, phrase", [
    ({"system": "Darwin"}, "Linux kernel feature"),
    ({"system": "Linux", "euid": 1000}, "needs root"),
])
def test_not_linux_or_not_root_is_a_clear_error(kwargs, phrase):
    with pytest.raises(ToolkitError) as err:
        binfmt.ensure(list(targets.TARGETS), targets.lookup("amd64"), **kwargs)
    assert phrase in str(err.value)


def test_cli_registers_every_foreign_target_and_a_rerun_changes_nothing():
    first = invoke("binfmt")
    assert first.code == 0, first
    rows = {line.split()[0]: line.split()[2] for line in first.out.splitlines()}
    host = targets.host()
    assert set(rows) == {t.platform for t in targets.TARGETS}
    for t in targets.TARGETS:
        assert rows[t.platform] in ({"native"} if t.runs_natively_on(host) else
                                    {"present", "registered", "enabled", "replaced"}), (t, first.out)
    again = invoke("binfmt")
    assert again.code == 0 and {line.split()[2] for line in again.out.splitlines()} <= {"native", "present"}


# Where each top-level module that loading tasks.py imports lives, the standard library aside, and the metadata of
# the distributions that supply them (invoke reads its own version there): what user nobody needs a copy of.
_IMPORTED = """
import importlib.metadata, sys, tasks
providers = importlib.metadata.packages_distributions()
found = set()
for name, module in list(sys.modules.items()):
    file = getattr(module, "__file__", None)
    if file and "." not in name and name not in sys.stdlib_module_names:
        found.add(file.removesuffix("/__init__.py"))
        for dist in map(importlib.metadata.distribution, providers.get(name, [])):
            found.update(str(dist.locate_file(f).parent) for f in dist.files or [] if f.name == "METADATA")
print(*sorted(found), sep="\\n")
"""
_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.fixture
def nobody_home():
    """A HOME for user nobody holding tasks.py and every module it imports, copied: this checkout and its venv may
    live where only their owner can read (root's home, mode 700), and user nobody must run the CLI all the same.
    Yields the home and the base interpreter (the venv's own may be inside the checkout)."""
    python = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    with tempfile.TemporaryDirectory(prefix="fromscratch-nobody-") as tmp:  # pytest's tmp_path is root-only
        home = Path(tmp)
        probe = subprocess.run([*_NOBODY, str(python), "-S", "-c", ""], cwd="/", capture_output=True, text=True)
        if probe.returncode != 0:
            msg = f"user nobody cannot run {python}: {probe.stderr.strip()}"
            if IN_CI:
                pytest.fail(msg)
            pytest.skip(msg)
        listed = subprocess.run([sys.executable, "-c", _IMPORTED], cwd=REPO, capture_output=True, text=True,
                                check=True)
        for source in map(Path, listed.stdout.splitlines()):
            if source.is_dir():
                shutil.copytree(source, home / source.name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(source, home / source.name)
        for path in [home, *home.rglob("*")]:  # a umask of 077 would leave the copies as unreadable as the originals
            path.chmod(0o755 if path.is_dir() else 0o644)
        yield home, python


def _as_nobody(*args: str, home: Path, python: Path) -> Result:
    """invoke as user nobody (setpriv drops root), from the copy in its HOME; -S: nothing but that copy and the
    standard library."""
    proc = subprocess.run([*_NOBODY, str(python), "-S", "-m", "invoke", "--search-root", str(home), *args],
                          cwd=home, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HOME": str(home), "PYTHONPATH": str(home)})
    return Result(proc.returncode, proc.stdout, proc.stderr)


def test_cli_as_a_user_needs_root_but_check_works(kernel, nobody_home):
    home, python = nobody_home
    refused = _as_nobody("binfmt", home=home, python=python)
    assert_clean_failure(refused, 1)
    assert "needs root" in refused.err and "sudo" in refused.err
    assert len(refused.err.strip().splitlines()) == 1
    checked = _as_nobody("binfmt", "--check", "--arch", "arm64", home=home, python=python)
    assert checked.code == 0 and "qemu-aarch64" in checked.out, checked
