"""Running an image: its arguments and stdin handed in, its output streamed to the caller, its exit code returned,
its container always removed."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Sequence
from typing import Any, BinaryIO

from .. import command, targets
from . import client as engine
from . import container as containers


def run(client: engine.Client, tag: str, stdout: BinaryIO, stderr: BinaryIO, platform: targets.Target | None = None,
        args: Sequence[str] = (), stdin: int | None = None, tty: bool = False) -> int:
    """Run tag (its image for platform, when given) to completion; returns the container's exit code. args
    replace the image's CMD, after its ENTRYPOINT, as `docker run IMAGE ARGS` does; stdin, a file descriptor,
    is copied to the container's stdin until it ends, as `docker run -i` does. tty: the program runs on a
    terminal of its own (`docker run -t`, TERM=xterm), its output and errors both on stdout, as a terminal
    shows them."""
    ref = engine.find_image(client, tag, platform, hint=f"build it first: {command.line('image --tag ' + tag)}")
    kwargs: dict[str, Any] = {"platform": platform.platform} if platform else {}
    if args:
        kwargs["command"] = list(args)
    if tty:
        kwargs["tty"] = True
    if stdin is not None:  # not detached, which makes it StdinOnce: the container's stdin ends when ours does
        kwargs.update(stdin_open=True, detach=False)
    else:
        kwargs["detach"] = True
    with containers.created(client, "run", ref, **kwargs) as container:
        with engine.step(f"starting {ref}"):
            # attached before it starts, as `docker run` does: a program that ends at once is heard all the same.
            # Its stream only, not its logs as well: output written between the two would come twice.
            sock = client.api.attach_socket(container.id, params={"stdin": int(stdin is not None), "stdout": 1,
                                                                  "stderr": 1, "stream": 1})
            container.start()
        if stdin is not None:
            _feed(stdin, sock)
        stream = _raw(sock) if tty else _frames(sock)
        with engine.step(f"reading the output of {ref}"):
            for out, err in stream:
                if out:
                    stdout.write(out)
                    stdout.flush()
                if err:
                    stderr.write(err)
                    stderr.flush()
            status = container.wait()
        return int(status.get("StatusCode", 1))


def _frames(sock: Any) -> Any:
    """The attached stream's frames as (stdout, stderr) pairs, as the SDK's demux gives them."""
    from docker.utils.socket import STDOUT, frames_iter

    try:
        for kind, data in frames_iter(sock, tty=False):
            yield (data, None) if kind == STDOUT else (None, data)
    finally:
        with contextlib.suppress(OSError):
            sock.close()


def _raw(sock: Any) -> Any:
    """A terminal's stream, which the engine sends as it is (no frames), as (stdout, None) pairs."""
    raw = getattr(sock, "_sock", sock)
    try:
        while data := containers.receive(raw):
            yield data, None
    except OSError:
        return
    finally:
        with contextlib.suppress(OSError):
            sock.close()


def _feed(fd: int, sock: Any) -> None:
    """Copy fd to the container's stdin from a thread of its own, then close the writing half of the connection:
    the engine then closes the container's stdin, and a program reading it sees its end. A program that exits
    without reading it all ends the copy (the thread is a daemon: a stdin that never ends does not hold the run)."""
    raw = getattr(sock, "_sock", sock)  # the socket under the SDK's SocketIO

    def copy() -> None:
        with contextlib.suppress(OSError):  # a stdin that cannot be read ends here; a container gone, too
            while data := os.read(fd, 1 << 16):
                raw.sendall(data)
        with contextlib.suppress(OSError):
            if hasattr(raw, "shutdown_write"):  # an ssh:// engine's channel
                raw.shutdown_write()
            else:
                raw.shutdown(socket.SHUT_WR)

    threading.Thread(target=copy, name="stdin", daemon=True).start()
