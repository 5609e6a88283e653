"""An image build on the engine (a tar context with a Dockerfile, the classic builder) that leaves nothing behind
when it does not finish: used for the build image and for the dockerfile backend of `invoke image`."""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from .. import interrupts
from ..errors import BuildFailed, ToolkitError
from . import client as engine
from . import container as containers

log = logging.getLogger(__name__)

# The classic builder's progress lines: "Step N/M : INSTRUCTION", " ---> Running in <container>" before a step that
# runs one, " ---> Using cache" before the id of a step it did not redo, " ---> <id>" once a step has committed.
_STEP_ID = re.compile(r"^ ---> (Running in )?([0-9a-f]{12,64})$")
# Podman's (buildah's): "STEP N/M: INSTRUCTION", "--> Using cache <id>" for a step it did not redo, "--> <id>" once a
# step has committed; a RUN step's container is never named.
_BUILDAH_STEP = re.compile(r"^STEP \d+/\d+: ")
_BUILDAH_ID = re.compile(r"^--> (Using cache )?([0-9a-f]{11,64})$")
# After an interrupt, how long a step that cannot be cancelled (COPY, ENV, ...) may take to commit its image.
_SETTLE_SECONDS = 300.0


@dataclass
class _Progress:
    what: str
    hint: str | None
    on_line: Callable[[str], None] | None = None  # hears each line of the builder's output
    lines: list[str] = field(default_factory=list)
    made: list[str] = field(default_factory=list)  # images this build committed, in order
    running: str | None = None  # the container of a RUN step under way
    built: str | None = None  # the finished image's id
    buildah: bool = False  # Podman's builder, which the stream's wording gives away
    _step: str = ""
    _cached: bool = False

    def feed(self, message: dict) -> None:
        if "error" in message:
            raise BuildFailed(f"{self.what} failed: {said(str(message['error']), self.lines)}", hint=self.hint,
                              log="\n".join(self.lines[-40:]))
        if isinstance(message.get("aux"), dict) and "ID" in message["aux"]:
            self.built = message["aux"]["ID"]
        text = str(message.get("stream", "")).rstrip()
        if not text:
            return
        self.lines.append(text)
        log.info("%s", text)
        if self.on_line is not None:
            for line in text.splitlines():
                self.on_line(line.strip())
        if text.startswith("Step ") or _BUILDAH_STEP.match(text):
            self._step, self._cached = text, False
            self.buildah = self.buildah or text.startswith("STEP ")
        elif text == " ---> Using cache":
            self._cached = True
        elif found := _STEP_ID.match(text):
            if found.group(1):
                self.running = found.group(2)
            else:
                self.running = None
                if not self._cached and " : FROM " not in self._step.upper():
                    self.made.append(found.group(2))
        elif found := _BUILDAH_ID.match(text):
            if found.group(1):
                self._cached = True
            elif not self._cached:
                self.made.append(found.group(2))


class _Messages:
    """The build's progress messages, read by a thread of their own so that an interrupt in the main thread never
    lands inside a half-read message: after Ctrl-C the rest of the stream can still be read whole."""

    def __init__(self, response: Any) -> None:
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(response,), daemon=True)
        self._thread.start()

    def _read(self, response: Any) -> None:
        try:
            for line in response.iter_lines():
                if line.strip():
                    self._queue.put(json.loads(line))
            self._queue.put(None)
        except BaseException as exc:  # handed to the main thread, which translates it
            self._queue.put(exc)

    def get(self, timeout: float | None = None) -> dict | None:
        """The next message; None at the end. Raises queue.Empty after timeout, or what the reader met."""
        item = self._queue.get(timeout=timeout)
        if isinstance(item, BaseException):
            raise item
        return item


# The engine names a failed RUN step by its whole script (a screenful, already in the log); apt says why in its
# own lines, the ones worth the error's one line.
_FAILED_STEP = re.compile(r"The command '.*' returned a non-zero code: (\d+)", re.S)
_APT_SAID = re.compile(r"^\s*(E: .+|\S+ : Depends: .+|Package .+ has no installation candidate.*)$")
_ESCAPES = re.compile(r"\x1b\[[0-9;]*m")


def said(error: str, lines: list[str]) -> str:
    """The engine's error in one line: a failed RUN step by its exit code, with what apt said of it."""
    error = _FAILED_STEP.sub(r"a RUN step exited with \1", " ".join(error.split()))
    told = [m.group(1).strip() for text in lines[-40:] for line in _ESCAPES.sub("", text).splitlines()
            if (m := _APT_SAID.match(line)) and m.group(1).strip() != "E:"]
    return f"{error} ({'; '.join(dict.fromkeys(told))})" if told else error


@contextlib.contextmanager
def _stream(client: engine.Client, context: BinaryIO, tag: str, image_labels: dict[str, str],
            platform: str | None) -> Iterator[_Messages]:
    """POST /build. The connection is closed however the block ends: closing it is what makes the engine cancel an
    unfinished build (docker-py's build() leaves its answer open until the garbage collector gets to it)."""
    import requests
    from docker.errors import create_api_error_from_http_exception

    api = client.api
    params = {"t": tag, "rm": "1", "forcerm": "1", "pull": "0", "labels": json.dumps(image_labels)}
    if platform:
        params["platform"] = platform
    response = api.post(f"{api.base_url}/v{api.api_version}/build", params=params, data=context,
                        headers={"Content-Type": "application/x-tar"}, stream=True, timeout=None)
    try:
        try:
            response.raise_for_status()
        except requests.HTTPError as exc:
            raise create_api_error_from_http_exception(exc) from None
        yield _Messages(response)
    finally:
        response.close()


def build(client: engine.Client, context: BinaryIO, tag: str, image_labels: dict[str, str], what: str,
          hint: str | None = None, platform: str | None = None,
          on_line: Callable[[str], None] | None = None) -> list[str]:
    """Build tag from a tar context; returns the builder's output. Every step of a build commits an image: a build
    that does not finish (a failed step, Ctrl-C, the engine going away) has those removed again, and tag is left
    on the image it named before."""
    previous = _image_id(client, tag)
    progress = _Progress(what, hint, on_line)
    try:
        with engine.step(what), _stream(client, context, tag, image_labels, platform) as messages:
            try:
                while (message := messages.get()) is not None:
                    progress.feed(message)
            except KeyboardInterrupt:
                with interrupts.deferred():
                    _settle(messages, progress)
                raise
        if progress.built is None:
            raise BuildFailed(f"{what} ended without an image", log="\n".join(progress.lines[-40:]))
    except BaseException:
        with interrupts.deferred():
            _undo(client, tag, previous, progress)
        raise
    return progress.lines


def _settle(messages: _Messages, progress: _Progress) -> None:
    """After an interrupt: a RUN step is cancelled by closing the connection (the engine kills its container), but
    a COPY or metadata step runs to its end and commits all the same, so read on until one of those is done and
    its image known, or a RUN step starts. Podman's builder stops at the next step once the connection closes,
    and reading on would only let it go on: there, nothing to wait for here."""
    if progress.buildah:
        return
    deadline = time.monotonic() + _SETTLE_SECONDS
    with contextlib.suppress(Exception):
        while progress.running is None and (left := deadline - time.monotonic()) > 0:
            message = messages.get(timeout=left)
            if message is None:
                return
            progress.feed(message)


def _image_id(client: engine.Client, ref: str) -> str | None:
    from docker.errors import ImageNotFound

    with engine.step(f"looking up image {ref}"):
        try:
            return str(client.api.inspect_image(ref)["Id"])
        except ImageNotFound:
            return None


def _undo(client: engine.Client, tag: str, previous: str | None, progress: _Progress) -> None:
    """Remove what an unfinished build committed, once the engine has stopped it; never an image that another image
    or container still uses (the engine refuses those without force)."""
    made = list(progress.made)
    try:
        with engine.step("removing the unfinished build's images"):
            if progress.running:
                containers.wait_gone(client, progress.running)
            current = _image_id(client, tag)
            if current and current != previous and any(current.removeprefix("sha256:").startswith(m) for m in made):
                if previous:  # the build finished after all: the tag goes back to the image it named before
                    repository, _, name = tag.rpartition(":")
                    client.api.tag(previous, repository, name, force=True)
                else:
                    client.api.remove_image(tag, noprune=True)
            if made:  # a step that committed as the build was cancelled: a child nobody saw announced
                for attrs in client.api.images(all=True):
                    parent = attrs.get("ParentId", "").removeprefix("sha256:")
                    if not _tagged(attrs) and any(parent.startswith(m) for m in made):
                        made.append(attrs["Id"].removeprefix("sha256:"))
            _remove_untagged(client, list(reversed(made)), wait=progress.buildah)
    except ToolkitError as exc:
        log.warning("could not remove the unfinished build's images %s (%s)", " ".join(made), exc)


def _remove_untagged(client: engine.Client, image_ids: list[str], wait: bool) -> None:
    """Remove those of image_ids (children first) that have no name of their own. wait: Podman runs a RUN step
    it was cancelled in to its end, and its image stays in use by the step's container until then; the engine
    says so (409, "in use"), and the removal is tried again, within the settle time."""
    from docker.errors import APIError, DockerException

    deadline = time.monotonic() + _SETTLE_SECONDS
    warned = False
    while image_ids:
        busy = []
        for image_id in image_ids:
            try:
                if not _tagged(client.api.inspect_image(image_id)):
                    client.api.remove_image(image_id, noprune=True)
            except APIError as exc:
                if wait and exc.status_code == 409 and time.monotonic() < deadline:
                    busy.append(image_id)
                else:
                    log.info("left image %s: %s", image_id, exc)
            except DockerException as exc:
                log.info("left image %s: %s", image_id, exc)
        if busy and not warned:
            log.warning("waiting for Podman to finish the build step it was stopped in, to remove its images")
            warned = True
        image_ids = busy
        if busy:
            time.sleep(0.5)


def _tagged(attrs: dict) -> bool:
    """Whether an image carries a name of its own ("<none>:<none>" is the engine's word for none)."""
    return any(t != "<none>:<none>" for t in attrs.get("RepoTags") or [])
