"""What a build container's attachment carries (engine/container.py): its standard output apart from its
standard error when asked (a kept build's programs, as a tar archive), and that archive unpacked only where
the caller places each member, hostile names as data."""

from __future__ import annotations

import io
import socket
import tarfile
from pathlib import Path

import pytest

from toolkit.engine.container import _copy_frames, unpack


def _frame(stream: int, data: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(data).to_bytes(4, "big") + data


@pytest.mark.parametrize("split", [True, False])
def test_standard_output_goes_apart_when_asked(split):
    ours, engine = socket.socketpair()
    frames = _frame(2, b"compiling\n") + _frame(1, b"TAR-1") + _frame(2, b"linking\n") + _frame(1, b"TAR-2")
    engine.sendall(frames)
    engine.close()
    log, out = io.BytesIO(), io.BytesIO()
    assert _copy_frames(ours, log, None, out if split else None)
    ours.close()
    if split:
        assert (log.getvalue(), out.getvalue()) == (b"compiling\nlinking\n", b"TAR-1TAR-2")
    else:
        assert log.getvalue() == b"compiling\nTAR-1linking\nTAR-2" and out.getvalue() == b""


def test_an_archive_is_unpacked_where_placed_only(tmp_path):
    hostile = ["-rf", "$(touch pwned)", "new\nline", "../../escape", "a'b"]
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        for name in ["./app", *(f"./{h}" for h in hostile), "./.records/app"]:
            info = tarfile.TarInfo(name)
            info.size = len(name)
            tar.addfile(info, io.BytesIO(name.encode()))
        link = tarfile.TarInfo("./link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    data.seek(0)
    out = tmp_path / "out"
    out.mkdir()

    def place(name: str) -> Path | None:
        base = Path(name).name
        return None if base.startswith("../") else out / base

    written = unpack(data, place)
    assert "./link" not in written and not (out / "link").exists()
    assert (out / "app").read_text() in ("./app", "./.records/app")
    assert not (tmp_path / "escape").exists() and not (tmp_path / "pwned").exists()
    assert (out / "new\nline").read_text() == "./new\nline"


def test_what_is_not_an_archive_is_one_error(tmp_path):
    with pytest.raises(tarfile.TarError):
        unpack(io.BytesIO(b"garbage" * 100), lambda name: tmp_path / "x")
