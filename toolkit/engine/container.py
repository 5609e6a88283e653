"""The one container class: a container named and labelled as ours, within limits, that takes files in (an archive
on its stdin), runs to its end with its output streamed to a file, gives files out, and is removed however the
block ends. Every build container goes through it; nothing else calls the archive API."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import select
import shutil
import tarfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from .. import interrupts
from ..errors import BuildFailed, EngineError, ToolkitError, timed_out
from . import client as engine
from .limits import DEFAULT_LIMITS, Limits

log = logging.getLogger(__name__)


@contextlib.contextmanager
def created(client: engine.Client, role: str, image: str, **create: Any) -> Iterator[Any]:
    """A container named and labelled as ours (the SDK's object), removed on the way out however the block ends.

    The name is chosen before the engine is asked, so a container that was created just as an interrupt
    arrived (the answer never read) is still found and removed.
    """
    name = f"fromscratch-{role}-{uuid.uuid4().hex[:12]}"
    try:
        with engine.step(f"creating the {role} container"):
            made = client.containers.create(image, name=name,
                                            labels={**create.pop("labels", {}), **engine.labels(role)}, **create)
        yield made
    except BaseException:
        with interrupts.deferred():
            remove(client, name, quiet=True)
        raise
    with interrupts.deferred():
        remove(client, name)


def remove(client: engine.Client, name: str, quiet: bool = False) -> None:
    """Remove a container by name or id if it exists. quiet: a failure (say, the engine is gone) is a warning
    that names the container, because another error is already on its way to the user."""
    from docker.errors import APIError, NotFound

    try:
        with engine.step(f"removing the container {name}"):
            try:
                client.api.remove_container(name, force=True)
            except NotFound:
                pass
            except APIError as exc:
                if exc.status_code != 409 or "already in progress" not in str(exc.explanation):
                    raise
                wait_gone(client, name)  # someone else (docker rm -f) is removing it already
    except ToolkitError as exc:
        if not quiet:
            raise
        log.warning("could not remove the container %s (%s); remove it with: docker rm -f %s", name, exc, name)


def wait_gone(client: engine.Client, container_id: str, seconds: float = 20.0) -> None:
    """Wait (bounded) until the engine has removed a container it is tearing down itself."""
    from docker.errors import NotFound

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            client.api.inspect_container(container_id)
        except NotFound:
            return
        time.sleep(0.2)


# PID 1 of a build container: the build runs with its stdin closed, and the container ends when its own stdin
# reaches EOF, which happens when the client that attached to it goes away (killed, its machine gone): the
# kernel then stops every process in the container. A build therefore never outlives the command that started it.
# (sh gives a background job /dev/null for stdin: the watcher reads the container's stdin through fd 3)
_WATCHED = ('trap "exit 143" TERM; exec 3<&0; "$@" </dev/null 3<&- & b=$!; '
            '{ cat <&3 >/dev/null; kill -TERM $$; } & wait "$b"')
# Before it, when the build's files come on its stdin (Container.open's receive): a line with the archive's size
# in bytes, then the archive, unpacked at the directory in $1 (an argument, never part of the script). read takes
# the line byte by byte and head -c no more than the size, so what follows stays for the watcher; an archive cut
# short (the client gone mid-way) fails tar, and nothing runs: exit RECEIVE_FAILED.
RECEIVE_FAILED = 74
_RECEIVE = (f'IFS= read -r n || exit {RECEIVE_FAILED}; case $n in ""|*[!0-9]*) exit {RECEIVE_FAILED};; esac; '
            f'head -c "$n" | tar -x -f - -C "$1" || exit {RECEIVE_FAILED}; shift; ')


def receive(raw: Any) -> bytes:
    """The next bytes an attachment's socket holds (b"": it ended): a socket's recv, or a read of what has no
    recv (an ssh:// engine's channel, a named pipe)."""
    return bytes(raw.recv(1 << 16) if hasattr(raw, "recv") else os.read(raw.fileno(), 1 << 16))


def _copy_frames(sock: Any, out: IO[bytes], deadline: float | None, stdout: IO[bytes] | None = None) -> bool:
    """The output of an attachment (the engine's frames: an 8-byte header, its stream at 0 (1 stdout, 2 stderr),
    its length at 4..8, then the bytes) written to out (stdout's frames to stdout, when given) until the container
    ends it; False when the deadline came first."""
    raw = getattr(sock, "_sock", sock)
    pending = b""
    while True:
        buffered = getattr(raw, "pending", None)  # a TLS socket may hold bytes select() does not see
        if not (buffered and buffered()):
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            ready, _, _ = select.select([raw], [], [], left)
            if not ready:
                return False
        try:
            chunk = receive(raw)
        except OSError:  # the engine went away: wait() says so, as the engine's own error
            return True
        if not chunk:
            return True
        pending += chunk
        while len(pending) >= 8:
            size = int.from_bytes(pending[4:8], "big")
            if len(pending) < 8 + size:
                break
            (stdout if stdout is not None and pending[0] == 1 else out).write(pending[8:8 + size])
            pending = pending[8 + size:]


def _send(sock: Any, archive: IO[bytes]) -> None:
    """The size line and the archive written to an attachment's stdin. A container that ended already (tar
    refused the archive) closed it: what it said and its exit code tell the rest."""
    raw = getattr(sock, "_sock", sock)

    def write(data: bytes) -> None:
        if hasattr(raw, "sendall"):
            raw.sendall(data)
            return
        view = memoryview(data)
        while view:  # what has no sendall (a pipe): os.write may take part of it
            view = view[os.write(raw.fileno(), view):]

    size = archive.seek(0, os.SEEK_END)
    archive.seek(0)
    try:
        write(b"%d\n" % size)
        for chunk in iter(lambda: archive.read(1 << 20), b""):
            write(chunk)
    except OSError as exc:
        log.info("the build container stopped reading its archive: %s", exc)


class Container:
    """A build container: made by Container.open(), which removes it however the block ends."""

    def __init__(self, client: engine.Client, made: Any, limits: Limits, receives: bool = False) -> None:
        self._client = client
        self._made = made
        self.limits = limits
        self._receives = receives  # its command first unpacks the archive run() sends on its stdin

    @classmethod
    @contextlib.contextmanager
    def open(cls, client: engine.Client, image: str, command: list[str], workdir: str,
             limits: Limits = DEFAULT_LIMITS, role: str = "build",
             mounts: dict[str, str] | None = None, env: dict[str, str] | None = None,
             receive: str | None = None) -> Iterator[Container]:
        """A container of image that will run command (argv, never a shell line) in workdir, networking off,
        within limits, and that ends when the client attached to it goes away; mounts: volume name -> path.
        receive: the directory at which the archive run() sends on its stdin is unpacked before command runs
        (the engine's archive API costs 60-90 ms a copy here: it mounts the container and runs a helper)."""
        volumes = {name: {"bind": path, "mode": "rw"} for name, path in (mounts or {}).items()}
        extra = {**({"volumes": volumes} if volumes else {}), **({"environment": env} if env else {})}
        script = _WATCHED if receive is None else _RECEIVE + _WATCHED
        first = [] if receive is None else [receive]
        with created(client, role, image, command=["sh", "-c", script, "sh", *first, *command], stdin_open=True,
                     network_disabled=True, working_dir=workdir, **extra, **limits.create_args()) as made:
            yield cls(client, made, limits, receive is not None)

    def run(self, what: str, output: Path, stdout: IO[bytes] | None = None, send: IO[bytes] | None = None) -> int:
        """Start it, attached to its stdin for as long as it runs, and wait (at most the time limit); its output
        streamed to the file output (a build printing gigabytes costs disk, not memory), or, given stdout, its
        standard output to that file and its standard error to output. Returns its exit code; a run past the
        time limit, or one killed (docker kill, out of memory), raises.

        send: the archive (a file, read from its start) a container opened with receive unpacks before its
        command runs; it goes first on the attachment (nothing but tar's complaints comes out until it is in),
        and the attachment stays open after it, the build's lifeline.

        The output comes through the same attachment, read to its end, which is the container's: the attachment
        is closed then, at once. (Held open until the container's exit is reported, the engine waits two seconds
        for it to close before it reports the exit.)"""
        timeout = self.limits.timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        with engine.step(f"{what} in the build container"):
            sock = self._client.api.attach_socket(self._made.id, params={"stdin": 1, "stream": 1, "stdout": 1,
                                                                          "stderr": 1})
            try:
                self._made.start()
                if self._receives:
                    assert send is not None, "a container opened with receive is sent its archive"
                    _send(sock, send)
                with open(output, "wb") as fh:
                    if not _copy_frames(sock, fh, deadline, stdout):
                        raise timed_out(what, timeout or 0)
            finally:
                with contextlib.suppress(OSError):
                    sock.close()
            started = time.monotonic()
            try:
                status = self._made.wait(timeout=timeout)
            except Exception:
                # the SDK reports a read timeout as requests' ReadTimeout or, over a unix socket,
                # ConnectionError; the clock tells it from an engine that went away
                if timeout is not None and time.monotonic() - started >= timeout - 1:
                    raise timed_out(what, timeout) from None
                raise
            code = int(status.get("StatusCode", 1))
            if code >= 128:  # killed, or removed from outside (then it is gone, or going)
                state = self._client.api.inspect_container(self._made.id).get("State") or {}
                if state.get("Status") in ("removing", "dead"):
                    raise EngineError(f"{what} in the build container failed: the container was removed while it "
                                      "ran")
        if code >= 128:
            from ..files import excerpt

            raise BuildFailed(f"the build container was killed while {what} (exit {code}, signal {code - 128})",
                              hint=f"was it stopped (docker kill, docker stop) or out of memory (its limit is "
                                   f"{self.limits.memory >> 20} MiB; FROMSCRATCH_BUILD_MEMORY raises it)?",
                              log=excerpt(output))
        return code

    def read(self, path: str, limit: int = 256 << 20) -> dict[str, bytes] | None:
        """The regular files of the directory path, by name (at most limit bytes in all); None when there is no
        such directory (a volume mounted for the first time)."""
        from docker.errors import NotFound

        found: dict[str, bytes] = {}
        with engine.step(f"reading {path} of the build container"):
            try:
                stream, _ = self._made.get_archive(path)
            except NotFound:
                return None
            with tarfile.open(fileobj=engine.ChunkReader(stream), mode="r|") as tar:
                for member in tar:
                    src = tar.extractfile(member) if member.isfile() else None
                    if src is None or member.name.strip("/").count("/") != 1:  # path's own files only
                        continue
                    limit -= member.size
                    if limit < 0:
                        raise BuildFailed(f"{path} of the kept build state is larger than it can be")
                    found[member.name.rsplit("/", 1)[1]] = src.read()
        return found

    def copy_out(self, path: str, place: Callable[[str], Path | None], what: str) -> list[str]:
        """The regular files under path written where place(member name) says (None: not wanted), streaming;
        returns the names of the members written."""
        with engine.step(f"copying {what} out"):
            stream, _ = self._made.get_archive(path)
            return unpack(engine.ChunkReader(stream), place)


def unpack(archive: IO[bytes] | io.RawIOBase, place: Callable[[str], Path | None]) -> list[str]:
    """The regular files of a tar stream (copy_out's, or one a build wrote to its standard output) written where
    place(member name) says (None: not wanted); returns the names of the members written. A stream that is not
    a tar archive is a tarfile.TarError."""
    written = []
    with tarfile.open(fileobj=archive, mode="r|") as tar:
        for member in tar:
            dest = place(member.name) if member.isfile() else None
            if dest is None:
                continue
            src = tar.extractfile(member)
            assert src is not None
            with open(dest, "wb") as fh:
                shutil.copyfileobj(src, fh, 1 << 20)
            written.append(member.name)
    return written

