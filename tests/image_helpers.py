"""Helpers for the image tests: a probe program that reports what it sees inside its container, and the
tiny hello compiled for a foreign architecture with whatever cross compiler this machine has."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from tests.conftest import CSRC, gcc
from toolkit.compile import recipes

# The official hello-world binary sizes (stripped) that the tiny hello must beat.
HELLO_WORLD_BYTES = {"amd64": 10_072, "arm64": 5_200}

PROBE_SRC = r"""
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static void show(const char *label, const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0)
        printf("%s=%o:%lld\n", label, (unsigned)(st.st_mode & 07777), (long long)st.st_size);
    else
        printf("%s=missing\n", label);
}

int main(int argc, char **argv)
{
    char cwd[256];
    printf("uid=%d gid=%d\n", (int)getuid(), (int)getgid());
    printf("cwd=%s\n", getcwd(cwd, sizeof cwd) ? cwd : "?");
    printf("GREETING=%s\n", getenv("GREETING") ? getenv("GREETING") : "(unset)");
    show("tmp", "/tmp");
    show("certs", "/etc/ssl/certs/ca-certificates.crt");
    show("utc", "/usr/share/zoneinfo/UTC");
    show("passwd", "/etc/passwd");
    for (int i = 1; i < argc; i++)
        printf("arg=%s\n", argv[i]);
    return 0;
}
"""


def probe(tmp: Path) -> Path:
    """A static binary that prints its uid, gid, cwd, one variable and which optional files it can see."""
    return gcc(tmp, PROBE_SRC, "-static", "-Os", "-s", name="probe")


def cross_cc(arch: str) -> list[str] | None:
    """A C compiler command for arch that needs no libc: Debian's cross gcc, else zig (the zig extra)."""
    triplet = {"arm64": "aarch64-linux-gnu", "amd64": "x86_64-linux-gnu"}[arch]
    if shutil.which(f"{triplet}-gcc"):
        return [f"{triplet}-gcc", *recipes.TINY_GNU_LD_FLAGS]
    try:
        import ziglang  # noqa: F401
    except ImportError:
        return None
    zig = {"arm64": "aarch64-linux-musl", "amd64": "x86_64-linux-musl"}[arch]
    return [sys.executable, "-m", "ziglang", "cc", "-target", zig]


def tiny_for(arch: str, out: Path) -> Path:
    """csrc/hello-tiny.c built with the flags `invoke build-hello --tiny` uses, by a cross compiler."""
    cc = cross_cc(arch)
    assert cc is not None, f"no {arch} C compiler: install the zig extra (pip install -e '.[zig]')"
    subprocess.run([*cc, *recipes.TINY_CFLAGS, "-s", str(CSRC / "hello-tiny.c"), "-o", str(out)],
                   check=True, capture_output=True)
    return out


def layer_names(layer: Path) -> list[str]:
    with tarfile.open(layer) as tar:
        return [m.name + ("/" if m.isdir() else "") for m in tar]


def member_tar(path: Path, members: list[tuple[str, str, str]]) -> Path:
    """A tar (gzipped when path ends in .gz) of (name, kind, content or symlink target): kinds file, symlink,
    dir, chardev, fifo."""
    with tarfile.open(path, "w:gz" if path.suffix == ".gz" else "w") as tar:
        for name, kind, extra in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(extra)
                tar.addfile(info, io.BytesIO(extra.encode()))
                continue
            info.type = {"symlink": tarfile.SYMTYPE, "chardev": tarfile.CHRTYPE, "dir": tarfile.DIRTYPE,
                         "fifo": tarfile.FIFOTYPE}[kind]
            info.linkname = extra if kind == "symlink" else ""
            tar.addfile(info)
    return path
