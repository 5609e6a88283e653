"""Signals around every task: Ctrl-C and SIGTERM unwind as KeyboardInterrupt, so the finally blocks that remove
containers, temporary images and partial files run, and cleanup that has started is not cut short."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator, Sequence
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_unwinding = False
_children: set[subprocess.Popen] = set()  # run_child's process groups still running, in any thread
_children_lock = threading.Lock()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    global _unwinding
    if _unwinding:
        # A second Ctrl-C would otherwise abandon the cleanup the first one started, leaving the very
        # container or partial file it was removing.
        log.warning("still cleaning up after the interrupt; one moment")
        return
    _unwinding = True
    # Children started by worker threads (builds for several targets at once) see no KeyboardInterrupt: stop their
    # process groups here, so their threads end promptly instead of waiting for a compile that nobody wants.
    with _children_lock:
        for child in _children:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGTERM)
    raise KeyboardInterrupt


def install() -> None:
    """For the CLI: the first SIGINT or SIGTERM raises KeyboardInterrupt; later ones let its cleanup finish.

    A SIGINT ignored from the start stays ignored, as Python itself leaves it: whoever started us (nohup, a shell's
    background job, a CI runner) meant Ctrl-C for others. SIGTERM, how a supervisor stops a run, is always handled.
    """
    global _unwinding
    _unwinding = False
    if threading.current_thread() is threading.main_thread():
        for signum in SIGNALS:
            if signum == signal.SIGINT and signal.getsignal(signum) is signal.SIG_IGN:
                continue
            signal.signal(signum, _on_signal)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM while the block runs (cleanup that must finish), then deliver them as usual."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread receives signals
        return
    pending: list[int] = []
    # An ignored signal is left alone: held, it would reach a child started in the block as the default action.
    previous = {signum: signal.signal(signum, lambda s, f: pending.append(s)) for signum in SIGNALS
                if signal.getsignal(signum) is not signal.SIG_IGN}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        for held in dict.fromkeys(pending):
            signal.raise_signal(held)


@contextlib.contextmanager
def child(cmd: Sequence[str], **popen: Any) -> Iterator[subprocess.Popen]:
    """A long child in a process group of its own, for a caller that reads its output as it comes.

    On an interrupt (or any failure in the block) the whole group gets SIGTERM and the block waits for it to end:
    subprocess.run would SIGKILL only the direct child, orphaning gcc's cc1 (still writing) and skipping the
    child's own cleanup (debootstrap unmounts what it mounted). A child that ignores SIGTERM gets SIGKILL after a
    grace period.
    """
    with subprocess.Popen(cmd, start_new_session=True, **popen) as proc:
        with _children_lock:
            _children.add(proc)
        try:
            yield proc
        except BaseException:
            with deferred():
                _stop_group(proc)
            raise
        finally:
            with _children_lock:
                _children.discard(proc)


def run_child(cmd: Sequence[str], capture_output: bool = True, text: bool = True,
              **popen: Any) -> subprocess.CompletedProcess:
    """subprocess.run for a long child (gcc, debootstrap) in a process group of its own (see child)."""
    pipe = subprocess.PIPE if capture_output else None
    with child(cmd, stdout=pipe, stderr=pipe, text=text, **popen) as proc:
        out, err = proc.communicate()
    return subprocess.CompletedProcess(list(cmd), proc.returncode, out, err)


class TimedOut(Exception):
    """A child ran past its time limit; its process group was stopped."""


def run_logged(cmd: Sequence[str], log_path: str, timeout: float | None = None,
               meanwhile: Callable[[], object] | None = None, **popen: Any) -> int:
    """Run a long child with its output (stdout and stderr) appended to log_path, not kept in memory: a build
    that prints gigabytes costs disk, not RAM. Returns its exit code; past timeout seconds its whole group is
    stopped and TimedOut raised. Whatever it left running in its group (a daemon a Makefile started) is
    stopped when it ends. meanwhile, when given, is called once the child has started, before it is waited for:
    work of this process that need not wait for the child."""
    with open(log_path, "ab") as out, \
            child(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **popen) as proc:
        # a blocking wait, the time limit kept by a timer: Popen.wait(timeout) polls, and its naps (up to 50 ms)
        # were a sixth of a native hello's build
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            _stop_group(proc)

        timer = threading.Timer(timeout, expire) if timeout is not None else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        try:
            if meanwhile is not None:
                meanwhile()
            code = proc.wait()
        finally:
            if timer is not None:
                timer.cancel()
        if timer is not None and expired.is_set():
            timer.join()  # the group is stopped
            raise TimedOut(f"ran past {timeout:g} s")
        if _unwinding:  # an interrupt sent the group SIGTERM: its processes finish their cleanup (gcc removes
            _await_group(proc.pid)  # its temporary files) before the rest is killed
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    return code


def _await_group(pgid: int, grace: float = 5.0) -> None:
    """Wait (at most grace seconds) until no process of the group is left."""
    import time

    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.01)


def _stop_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
