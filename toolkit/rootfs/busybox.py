"""A BusyBox base image from Debian's busybox-static: /bin/busybox (verified static first), a link per applet.

The .deb comes from the mirror through the chain apt trusts (rootfs/mirror.py); the tree then goes the way of every
rootfs (rootfs.deliver_tree), dated by the suite's Release like a debootstrapped one.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from .. import targets
from ..check import verify
from ..errors import BuildFailed
from ..files import temp_dir
from ..progress import Progress
from . import mirror
from .debootstrap import Request, deliver_tree
from .load import Delivered, out_compression

if TYPE_CHECKING:
    from ..engine.client import Client

PACKAGE = "busybox-static"
BINARY = "bin/busybox"
_PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
_GROUP = "root:x:0:\nnogroup:x:65534:\n"


def fetch_busybox(req: Request, dest: Path, progress: Progress) -> tuple[Path, int, str]:
    """busybox-static's /bin/busybox for req's suite and architecture at dest; (path, Release date, version)."""
    progress.step(f"{PACKAGE} for {req.target.debian_arch} from {req.mirror} ({req.suite})")
    rel = mirror.release(req.mirror, req.suite, progress)
    stanza = mirror.find_package(req.mirror, rel, req.target.debian_arch, PACKAGE, progress)
    deb = mirror.download_deb(req.mirror, stanza, dest.parent, progress)
    with mirror.deb_data(deb) as data:
        member = next((m for m in data.getmembers() if m.name.lstrip("./") == BINARY and m.isfile()), None)
        src = data.extractfile(member) if member is not None else None
        if src is None:
            raise BuildFailed(f"{deb.name} holds no /{BINARY}")
        dest.write_bytes(src.read())
    os.chmod(dest, 0o755)
    deb.unlink()
    progress.note(f"{PACKAGE} {stanza.get('Version', '?')}")
    return dest, rel.date, stanza.get("Version", "")


def applets(binary: Path, target: targets.Target, native: bool) -> list[str]:
    """Where each applet lives (bin/sh, usr/bin/awk, ...), as busybox itself says; under QEMU when foreign."""
    cmd = [str(binary), "--list-full"]
    if not native:
        cmd = [f"qemu-{target.qemu}-static", *cmd]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BuildFailed(f"cannot run {binary.name} --list-full ({exc})",
                          hint="apt-get install qemu-user-static" if not native else None) from None
    if proc.returncode != 0:
        raise BuildFailed(f"{binary.name} --list-full failed (exit {proc.returncode})", log=proc.stderr)
    out = []
    for line in proc.stdout.split():
        parts = line.split("/")
        if line.startswith("/") or ".." in parts or "" in parts:
            raise BuildFailed(f"busybox names an applet path {line!r} outside its root")
        if line != BINARY:
            out.append(line)
    if "bin/sh" not in out:
        raise BuildFailed("this busybox has no sh applet")
    return sorted(set(out))


def make_tree(root: Path, binary: Path, links: list[str]) -> None:
    """/bin/busybox, a hard link per applet, and the few files a shell expects: modes set, never the umask's."""
    def mkdir(path: Path, mode: int = 0o755) -> None:
        for p in reversed([path, *path.parents]):
            if root in p.parents and not p.exists():
                p.mkdir()
                os.chmod(p, 0o755)
        os.chmod(path, mode)

    main = root / BINARY
    mkdir(main.parent)
    os.replace(binary, main)
    os.chmod(main, 0o755)
    for link in links:
        path = root / link
        mkdir(path.parent)
        os.link(main, path)
    mkdir(root / "etc")
    for name, text in (("passwd", _PASSWD), ("group", _GROUP)):
        (root / "etc" / name).write_text(text)
        os.chmod(root / "etc" / name, 0o644)
    mkdir(root / "tmp", 0o1777)
    mkdir(root / "root", 0o700)


def build(req: Request, *, client: Client | None, tag: str | None, out: Path | None, progress: Progress,
          scratch: str | None = None) -> Delivered:
    """The BusyBox image for req's architecture into out and/or the engine as tag, with CMD ["sh"]."""
    if out is not None:
        out_compression(out)
    with temp_dir("fromscratch-busybox-", scratch) as tmp:
        binary, epoch, version = fetch_busybox(req, tmp / "busybox", progress)
        facts = verify.require(binary, req.target, subject=f"{PACKAGE} {version} holds /{BINARY}")
        progress.note(f"verified: {facts.describe}")
        links = applets(binary, req.target, native=not req.foreign)
        progress.note(f"{len(links)} applets")
        root = tmp / "root"
        root.mkdir()
        make_tree(root, binary, links)
        os.utime(root / BINARY, (epoch, epoch))
        return deliver_tree(root, req.target, epoch, ("sh",), client=client, tag=tag, out=out, progress=progress,
                            owner=(0, 0), created_by=f"fromscratch rootfs --busybox ({PACKAGE} {version})")
