"""Running an image: its output streamed to the caller, its exit code returned, its container always removed."""

from __future__ import annotations

from typing import Any, BinaryIO

from .. import command
from ..errors import InputError
from . import client as engine


def run(client: Any, tag: str, stdout: BinaryIO, stderr: BinaryIO, platform: str | None = None) -> int:
    """Run tag to completion; returns the container's exit code."""
    if not engine.image_exists(client, tag):
        raise InputError(f"no image {tag} in the engine", hint=f"build it first: {command.line('image --tag ' + tag)}")
    kwargs = {"platform": platform} if platform else {}
    with engine.container(client, "run", tag, detach=True, **kwargs) as container:
        with engine.step(f"starting {tag}"):
            # attach before start: attaching to a container that has already exited can hang
            stream = container.attach(stdout=True, stderr=True, stream=True, logs=True, demux=True)
            container.start()
        with engine.step(f"reading the output of {tag}"):
            for out, err in stream:
                if out:
                    stdout.write(out)
                    stdout.flush()
                if err:
                    stderr.write(err)
                    stderr.flush()
            status = container.wait()
        return int(status.get("StatusCode", 1))
