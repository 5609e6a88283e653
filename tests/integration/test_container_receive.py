"""A build container's files come on its stdin (engine/container.py's receive): a size line, then the archive,
unpacked before the command runs, with the attachment kept open after it as the build's lifeline. A client that
goes away mid-archive leaves nothing run."""

from __future__ import annotations

import io
import socket
import tarfile
import tempfile
import time

from toolkit.engine import container as engine_container
from toolkit.engine.container import Container


def _archive(files: dict[str, bytes]) -> tempfile._TemporaryFileWrapper:
    fh = tempfile.NamedTemporaryFile()
    with tarfile.open(fileobj=fh, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    fh.flush()
    return fh


def test_the_archive_is_unpacked_before_the_command_and_stdin_stays_the_lifeline(docker_client, builder_base,
                                                                                  tmp_path):
    # a name with a quote, a newline and $(): data in the archive, never in the script
    odd = "we'ird $(touch /pwned)\nname"
    with _archive({"in/a.txt": b"alpha\n", f"in/{odd}": b"odd\n"}) as archive, \
            Container.open(docker_client, builder_base,
                           ["sh", "-c", 'cat /w/in/a.txt; ls /w/in | wc -l; test ! -e /pwned && echo clean; '
                                        'sleep 1; echo alive'], "/w", receive="/w") as box:
        out = tmp_path / "out"
        with out.open("wb") as stdout:
            code = box.run("reading what was sent", tmp_path / "log", stdout=stdout, send=archive)
    assert code == 0, (tmp_path / "log").read_text()
    # the watcher still held stdin open after the archive: the command ran to its end
    assert out.read_text().split() == ["alpha", "2", "clean", "alive"]


def test_an_archive_cut_short_runs_nothing(docker_client, builder_base, tmp_path):
    """The client gone after part of the archive: tar fails on what came, the command never runs, and the
    container ends by itself with RECEIVE_FAILED."""
    with _archive({"big": bytes(range(256)) * 4096}) as data:
        data.seek(0)
        whole = data.read()
    assert len(whole) > 1 << 20  # a third of it is a real archive's beginning, not an empty one
    with Container.open(docker_client, builder_base, ["sh", "-c", "echo ran; touch /w/ran"], "/w",
                        receive="/w") as box:
        sock = docker_client.api.attach_socket(box._made.id, params={"stdin": 1, "stream": 1, "stdout": 1,
                                                                     "stderr": 1})
        box._made.start()
        raw = getattr(sock, "_sock", sock)
        raw.sendall(b"%d\n" % len(whole) + whole[: len(whole) // 3])
        time.sleep(0.5)
        raw.shutdown(socket.SHUT_RDWR)  # the client dies mid-archive: its connection ends, as the kernel ends it
        sock.close()
        status = box._made.wait(timeout=60)
        assert status["StatusCode"] == engine_container.RECEIVE_FAILED
        logs = box._made.logs().decode()
        assert "ran" not in logs.split()


def test_the_size_line_is_checked(docker_client, builder_base):
    """A size line that is not a number: nothing runs (no word of it is read as code)."""
    with Container.open(docker_client, builder_base, ["sh", "-c", "echo ran"], "/w", receive="/w") as box:
        sock = docker_client.api.attach_socket(box._made.id, params={"stdin": 1, "stream": 1, "stdout": 1,
                                                                     "stderr": 1})
        box._made.start()
        raw = getattr(sock, "_sock", sock)
        raw.sendall(b"$(echo 5)\n")
        status = box._made.wait(timeout=60)
        raw.close()
        assert status["StatusCode"] == engine_container.RECEIVE_FAILED
        assert "ran" not in box._made.logs().decode().split()
