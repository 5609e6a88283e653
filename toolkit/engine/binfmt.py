"""Running foreign binaries: Debian's QEMU user-mode handlers registered with the kernel's binfmt_misc.

With the fix-binary flag (F) the kernel opens the interpreter once, at registration, so a container runs a
foreign-architecture FROM scratch image with no QEMU inside it: `docker run --platform linux/arm64 IMAGE`.
"""

from __future__ import annotations

import errno
import logging
import os
import platform
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import command, targets
from ..errors import ToolkitError

log = logging.getLogger(__name__)

BINFMT_MISC = Path("/proc/sys/fs/binfmt_misc")
DEBIAN_FORMATS = Path("/usr/share/binfmts")  # update-binfmts' format files; qemu-user-static ships qemu-<arch>
PACKAGE = "qemu-user-static"


@dataclass(frozen=True)
class Handler:
    """A binfmt_misc handler as Debian's qemu-user-static describes it, always with fix-binary."""

    name: str
    interpreter: str
    magic: str  # \\x-escaped, as in the format file and the register line
    mask: str
    offset: int
    flags: str

    def register_line(self) -> str:
        return f":{self.name}:M:{self.offset}:{self.magic}:{self.mask}:{self.interpreter}:{self.flags}"


@dataclass(frozen=True)
class Entry:
    """A handler as the kernel holds it (/proc/sys/fs/binfmt_misc/<name>)."""

    name: str
    enabled: bool
    interpreter: str
    flags: str

    @property
    def fix_binary(self) -> bool:
        return "F" in self.flags


@dataclass(frozen=True)
class Status:
    """What one target needs to run on this host, and what is in place for it."""

    target: targets.Target
    handler: str | None  # binfmt_misc name, None when the host runs the target natively
    state: str  # native, registered, enabled, replaced, present, missing, unavailable
    detail: str

    @property
    def ok(self) -> bool:
        return self.state in ("native", "registered", "enabled", "replaced", "present")

    def render(self) -> str:
        return f"{self.target.platform:<16} {self.handler or '-':<14} {self.state:<11} {self.detail}"


def read_format(path: Path) -> Handler:
    """Parse an update-binfmts format file (key value lines) into a Handler that registers with F."""
    fields: dict[str, str] = {}
    for line in path.read_text().splitlines():
        key, _, value = line.strip().partition(" ")
        if key:
            fields[key] = value.strip()
    try:
        flags = ("P" if fields.get("preserve") == "yes" else "") + \
                ("C" if fields.get("credentials") == "yes" else "") + "F"
        return Handler(path.name, fields["interpreter"], fields["magic"], fields.get("mask", ""),
                       int(fields.get("offset") or 0), flags)
    except (KeyError, ValueError) as exc:
        raise ToolkitError(f"{path}: not a binfmt format file (missing or bad {exc})") from None


def read_entry(binfmt_dir: Path, name: str) -> Entry | None:
    """The kernel's entry for name, or None when there is none."""
    try:
        text = (binfmt_dir / name).read_text()
    except FileNotFoundError:
        return None
    lines = text.splitlines()
    fields = dict(line.partition(" ")[::2] for line in lines[1:])
    return Entry(name, enabled=lines[0].strip() == "enabled", interpreter=fields.get("interpreter", ""),
                 flags=fields.get("flags:", "").strip())


def _write(path: Path, data: str, what: str) -> None:
    try:
        with open(path, "w") as fh:
            fh.write(data)
    except OSError as exc:
        reason = {errno.EEXIST: "a handler with that name exists",
                  errno.ENOENT: "the interpreter is missing",
                  errno.EINVAL: "the kernel rejected the handler",
                  errno.EACCES: "permission denied", errno.EPERM: "permission denied"}.get(exc.errno or 0)
        raise ToolkitError(f"{what} failed: {reason or exc.strerror}") from exc


def register(handler: Handler, binfmt_dir: Path = BINFMT_MISC) -> None:
    _write(binfmt_dir / "register", handler.register_line(), f"registering {handler.name}")


def remove(name: str, binfmt_dir: Path = BINFMT_MISC) -> None:
    _write(binfmt_dir / name, "-1", f"removing {name}")


def apply(handler: Handler, binfmt_dir: Path = BINFMT_MISC) -> tuple[str, str]:
    """Make the kernel hold handler, enabled and with fix-binary; returns (state, detail). Idempotent."""
    entry = read_entry(binfmt_dir, handler.name)
    if entry is not None and entry.fix_binary:
        if entry.enabled:
            return "present", f"already registered (flags {entry.flags}) {entry.interpreter}"
        _write(binfmt_dir / handler.name, "1", f"enabling {handler.name}")
        return "enabled", f"was disabled, now enabled (flags {entry.flags}) {entry.interpreter}"
    if not Path(handler.interpreter).exists():
        raise ToolkitError(f"{handler.interpreter} is missing", hint=f"install {PACKAGE} (Debian/Ubuntu)")
    if entry is not None:
        # without F the kernel opens the interpreter inside each container, where it does not exist
        remove(handler.name, binfmt_dir)
        register(handler, binfmt_dir)
        return "replaced", f"re-registered with fix-binary (was flags {entry.flags or 'none'}) {handler.interpreter}"
    register(handler, binfmt_dir)
    return "registered", f"registered (flags {handler.flags}) {handler.interpreter}"


def check(handler: Handler, binfmt_dir: Path = BINFMT_MISC) -> tuple[str, str]:
    """What apply would find, changing nothing."""
    entry = read_entry(binfmt_dir, handler.name)
    if entry is None:
        return "missing", f"not registered: run `{command.line('binfmt')}` as root"
    if not entry.enabled:
        return "missing", f"registered but disabled: run `{command.line('binfmt')}` as root"
    if not entry.fix_binary:
        return "missing", (f"registered without fix-binary (flags {entry.flags or 'none'}): containers cannot "
                           f"reach the interpreter; run `{command.line('binfmt')}` as root")
    return "present", f"registered (flags {entry.flags}) {entry.interpreter}"


def _mounted(binfmt_dir: Path, may_mount: bool) -> None:
    if (binfmt_dir / "register").exists():
        return
    if may_mount:
        proc = subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(binfmt_dir)],
                              capture_output=True, text=True)
        if proc.returncode == 0 and (binfmt_dir / "register").exists():
            return
    raise ToolkitError(f"binfmt_misc is not mounted at {binfmt_dir}",
                       hint=f"mount -t binfmt_misc binfmt_misc {binfmt_dir} (as root)")


def ensure(wanted: Sequence[targets.Target], host: targets.Target, *, change: bool = True,
           binfmt_dir: Path = BINFMT_MISC, formats_dir: Path = DEBIAN_FORMATS,
           system: str | None = None, euid: int | None = None) -> list[Status]:
    """Register (change=True) or only inspect the QEMU handler of every wanted target the host cannot run."""
    system = system or platform.system()
    if system != "Linux":
        raise ToolkitError(f"binfmt_misc is a Linux kernel feature; this host runs {system}",
                           hint="Docker Desktop on Mac and Windows already runs foreign images under QEMU "
                                "inside its Linux VM")
    euid = os.geteuid() if euid is None else euid
    if change and euid != 0:
        raise ToolkitError("registering binfmt handlers needs root (it writes to "
                           f"{binfmt_dir}/register)", hint="run it with sudo, or pass --check to only report")
    _mounted(binfmt_dir, may_mount=change)
    out: list[Status] = []
    done: dict[str, tuple[str, str]] = {}
    for target in wanted:
        if target.runs_natively_on(host):
            out.append(Status(target, None, "native", f"this {host.architecture} host runs it without QEMU"))
            continue
        name = f"qemu-{target.qemu}"
        if name not in done:
            fmt = formats_dir / name
            if not fmt.is_file():
                done[name] = ("unavailable", f"no {fmt}: install {PACKAGE} (Debian/Ubuntu)")
            else:
                handler = read_format(fmt)
                done[name] = apply(handler, binfmt_dir) if change else check(handler, binfmt_dir)
        out.append(Status(target, name, *done[name]))
    return out
