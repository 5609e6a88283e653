"""The user's disk without an engine: outputs written whole or not at all, with the user's mode, never over a FIFO
or a device; inputs that are FIFOs, devices or dangling links refused at once; held signals; the machine-wide lock."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, assert_clean_failure, invoke, sigint
from tests.faults import as_other_user, invoke_cmd
from toolkit import interrupts
from toolkit.errors import InputError
from toolkit.files import atomic_output, exclusive, keep, regular_input

HELLO = '#include <stdio.h>\nint main(void){ puts("hello"); return 0; }\n'


def test_atomic_output_creates_missing_directories_and_follows_the_umask(tmp_path):
    out = tmp_path / "a" / "b" / "file.tar"
    old = os.umask(0o027)
    try:
        with atomic_output(out) as tmp:
            tmp.write_bytes(b"data")
    finally:
        os.umask(old)
    assert out.read_bytes() == b"data"
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    with atomic_output(out, mode=0o755) as tmp:
        tmp.write_bytes(b"new")
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    assert sorted(p.name for p in out.parent.iterdir()) == ["file.tar"]


def test_a_failure_leaves_the_old_output_and_no_partial_file(tmp_path):
    out = tmp_path / "app"
    out.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_output(out) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("compiler crashed")
    assert out.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["app"]


def test_an_output_through_a_symlink_replaces_the_target_and_keeps_the_link(tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "app"
    target.write_bytes(b"old")
    link = tmp_path / "app"
    link.symlink_to(target)
    with atomic_output(link) as tmp:
        tmp.write_bytes(b"new")
    assert link.is_symlink() and target.read_bytes() == b"new"


def _special_files(tmp_path: Path) -> dict[str, Path]:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    sock_path = tmp_path / "sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    sock.close()
    found = {"FIFO": fifo, "socket": sock_path}
    if os.geteuid() == 0:  # a character device of our own (the same numbers as /dev/null), not the real one
        dev = tmp_path / "null"
        os.mknod(dev, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        found["character device"] = dev
    return found


def test_an_output_that_is_a_fifo_socket_or_device_is_refused_untouched(tmp_path):
    for kind, path in _special_files(tmp_path).items():
        before = path.lstat()
        with pytest.raises(InputError, match=kind), atomic_output(path) as tmp:
            tmp.write_bytes(b"x")
        after = path.lstat()
        assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode)
    assert not list(tmp_path.glob("*.partial"))


def test_an_output_under_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="a file is in the way"), atomic_output(tmp_path / "file" / "app"):
        pass


def test_a_cache_that_cannot_be_written_is_only_not_kept(tmp_path):
    """A cache entry is written whole or not at all, and a cache it cannot be written to is no failure: a file in the
    way of its directory (root writes anywhere else), or a directory where the entry goes."""
    assert keep(tmp_path / "cache" / "a.json", "{}") and (tmp_path / "cache" / "a.json").read_text() == "{}"
    assert keep(tmp_path / "cache" / "b", b"\0\1") and (tmp_path / "cache" / "b").read_bytes() == b"\0\1"
    (tmp_path / "file").write_text("x")
    assert not keep(tmp_path / "file" / "cache" / "a.json", "{}")
    (tmp_path / "cache" / "dir").mkdir()
    assert not keep(tmp_path / "cache" / "dir", "{}") and (tmp_path / "cache" / "dir").is_dir()
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["a.json", "b", "dir"]


def test_regular_input_refuses_what_could_hang_or_does_not_exist(tmp_path):
    for kind, path in _special_files(tmp_path).items():
        with pytest.raises(InputError, match=f"{path}: is a {kind}"):
            regular_input(path, "source file")
    dangling = tmp_path / "dangling.c"
    dangling.symlink_to(tmp_path / "gone.c")
    with pytest.raises(InputError, match="a symlink to a missing file"):
        regular_input(dangling, "source file")
    with pytest.raises(InputError, match="is a directory"):
        regular_input(tmp_path, "source file")
    real = tmp_path / "real.c"
    real.write_text(HELLO)
    link = tmp_path / "link.c"
    link.symlink_to(real)
    assert regular_input(link) == link
    assert regular_input(tmp_path, allow_dir=True) == tmp_path


def test_cli_refuses_fifo_and_device_inputs_at_once(tmp_path, binaries):
    """Every task that reads a file: a FIFO or device is named and refused (a hang would hit the timeout)."""
    fifo = tmp_path / "pipe.c"
    os.mkfifo(fifo)
    cases = [
        (("build", "--src", str(fifo), "--out", "app", "--toolchain", "native"), str(fifo)),
        (("verify", str(fifo)), str(fifo)),
        (("verify", "/dev/zero"), "/dev/zero"),
        (("image", "--tag", "fromscratch-test-never", "--binary", str(fifo)), str(fifo)),
        (("image", "--tag", "fromscratch-test-never", "--binary", "/dev/zero"), "/dev/zero"),
        (("import-rootfs", str(fifo), "--tag", "fromscratch-test-never"), str(fifo)),
        (("import-rootfs", "/dev/zero", "--tag", "fromscratch-test-never"), "/dev/zero"),
    ]
    for args, named in cases:
        result = invoke(*args, cwd=tmp_path, timeout=60)
        assert_clean_failure(result, 2)
        assert named in result.err, (args, result.err)
        assert len(result.err.strip().splitlines()) == 1, result.err


def test_cli_follows_symlinked_inputs(tmp_path, binaries):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "real.c").write_text(HELLO)
    (tmp_path / "app.c").symlink_to(tmp_path / "src" / "real.c")
    (tmp_path / "bin").symlink_to(binaries["static"])
    built = invoke("build", "--src", "app.c", "--out", "app", "--toolchain", "native", cwd=tmp_path)
    assert built.code == 0, built
    assert invoke("verify", "bin", cwd=tmp_path).code == 0


def test_build_output_to_a_directory_it_cannot_write_is_a_clear_error(tmp_path):
    work = tmp_path / "work"
    (work / "locked").mkdir(parents=True)
    (work / "app.c").write_text(HELLO)
    os.chmod(work, 0o777)
    os.chmod(work / "locked", 0o555)
    prefix = as_other_user()  # root may write anywhere: run as an ordinary user
    if prefix:
        os.chown(work / "locked", 0, 0)
    proc = subprocess.run([*prefix, *invoke_cmd("build", "--src", "app.c", "--out", "locked/app",
                                                "--toolchain", "native")],
                          cwd=work, capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(work)})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "locked/app: cannot write to locked (Permission denied)" in proc.stderr
    assert list((work / "locked").iterdir()) == []


def test_deferred_holds_a_signal_until_the_block_ends():
    finished = False
    with sigint(signal.default_int_handler), pytest.raises(KeyboardInterrupt):
        with interrupts.deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            finished = True
    assert finished


def test_a_second_signal_while_unwinding_is_held_off():
    """The CLI's handler: the first signal raises, the ones after it only wait for the cleanup."""
    previous = {s: signal.getsignal(s) for s in interrupts.SIGNALS}
    cleaned = False
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # not the suite's, which may be ignored
        interrupts.install()
        with pytest.raises(KeyboardInterrupt):
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(1)
            finally:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)
                cleaned = True
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    assert cleaned


def test_deferred_leaves_an_ignored_signal_ignored():
    """SIGINT ignored from the start (nohup, a background job) stays ignored through a held block, also for a child
    started there: a handler held in its place would reach the child as the default action."""
    with sigint(signal.SIG_IGN):
        with interrupts.deferred():
            probe = "import signal; print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN)"
            child = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    assert child.stdout.strip() == "True"


def test_the_lock_is_held_across_processes(tmp_path):
    marker = tmp_path / "released"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from toolkit.files import exclusive\n"
         "with exclusive('test-lock', 'waiting'):\n"
         "    print('held', flush=True); time.sleep(1.5); Path(sys.argv[1]).write_text('x')\n",
         str(marker)],
        cwd=REPO, env={**os.environ, "TMPDIR": str(tmp_path)}, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    old = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(tmp_path)
    import tempfile

    tempfile.tempdir = None
    try:
        with exclusive("test-lock", "waiting"):
            assert marker.exists(), "got the lock while another process held it"
    finally:
        if old is None:
            del os.environ["TMPDIR"]
        else:
            os.environ["TMPDIR"] = old
        tempfile.tempdir = None
    assert holder.wait(10) == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")
def test_a_scratch_directory_with_a_mount_inside_is_left_not_deleted_through(tmp_path):
    """What a killed debootstrap can leave: a bind mount of a real directory inside the scratch tree."""
    from toolkit.files import temp_dir

    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep").write_text("x")
    with temp_dir("fromscratch-test-", str(tmp_path)) as scratch:
        (scratch / "dev").mkdir()
        subprocess.run(["mount", "--bind", str(precious), str(scratch / "dev")], check=True)
    try:
        assert (precious / "keep").exists()
        assert scratch.exists()
    finally:
        subprocess.run(["umount", str(scratch / "dev")], check=True)
    with temp_dir("fromscratch-test-", str(tmp_path)) as scratch:
        (scratch / "file").write_text("x")
    assert not scratch.exists()
