"""Full base images from a root filesystem: debootstrap for any architecture, container-friendly tweaks, apt
sources with the suite's updates and security updates, --slim, and the hand-over of a tree or tarball to
rootfs/tar.py (check, plan) and rootfs/load.py (one pass to file and engine).
"""

from __future__ import annotations

import contextlib
import email.utils
import fnmatch
import logging
import os
import re
import shutil
import subprocess
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from .. import command, dates, files, interrupts, targets
from ..engine import binfmt
from ..errors import BuildFailed, InputError
from ..image import oci
from ..progress import Progress
from .load import Delivered, deliver, out_compression
from .mirror import DEFAULT_MIRROR, DEFAULT_SECURITY, check_mirror, has_suite, host_mirror, host_security
from .tar import Budget, Plan, plan_tarball, plan_tree
from .tarsafe import Checker

if TYPE_CHECKING:
    from ..engine.client import Client

__all__ = ["DEFAULT_MIRROR", "host_mirror", "Request", "build", "import_path", "make_container_friendly", "slim",
           "source_date_epoch", "debootstrap", "deliver_tree", "AptSources", "apt_sources", "write_apt_sources"]

log = logging.getLogger(__name__)

VARIANTS = ("minbase", "buildd", "fakechroot", "default")  # "default": debootstrap's own (required + important)
SCRIPTS = Path("/usr/share/debootstrap/scripts")
_EMPTY_DIRS = ("dev", "proc", "sys")  # the engine mounts its own; moby's mkimage left them empty too
# --slim: what debuerreotype and Docker's official images drop, as dpkg rules so later installs drop it too.
SLIM_EXCLUDE = ("/usr/share/doc/*", "/usr/share/info/*", "/usr/share/man/*", "/usr/share/locale/*",
                "/usr/share/lintian/*")
SLIM_INCLUDE = ("/usr/share/doc/*/copyright",)  # licences stay
# Programs whose ELF header says which architecture a root filesystem is for.
PROBES = ("usr/bin/env", "bin/env", "bin/busybox", "usr/bin/busybox", "bin/sh", "usr/bin/dash", "bin/bash")
# The most an import-rootfs layer may be unless FROMSCRATCH_IMPORT_MAX says otherwise: Debian's minbase is ~120 MB,
# the biggest distribution images a few GB.
IMPORT_MAX = 8 << 30
_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]+(:[a-z0-9]+)?$")
# What a debootstrapped image is made of, as a number on the image (a label): scripts/dev remakes a base image
# whose number is older. Bump it when the recipe changes what the image holds. 2: apt sources name the suite's
# -updates and -security.
RECIPE = "2"
RECIPE_LABEL = "org.fromscratch.rootfs-recipe"
DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


@dataclass(frozen=True)
class Request:
    """What `invoke rootfs` was asked to build, checked before any work starts."""

    suite: str
    mirror: str
    variant: str
    target: targets.Target
    include: tuple[str, ...] = ()
    slim: bool = False
    security: str = DEFAULT_SECURITY  # the archive of the suite's -security

    @classmethod
    def make(cls, suite: str, mirror: str | None, variant: str, arch: str | None, include: str = "",
             slim: bool = False) -> Request:
        if not re.match(r"^[a-z][a-z0-9.-]*$", suite):
            raise InputError(f"--suite {suite!r} is not a suite name", hint="e.g. --suite bookworm")
        if variant not in VARIANTS:
            raise InputError(f"--variant {variant!r} is not one of {', '.join(VARIANTS)}")
        packages = tuple(p for p in (s.strip() for s in include.split(",")) if p)
        for p in packages:
            if not _PACKAGE.match(p):
                raise InputError(f"--include: {p!r} is not a Debian package name",
                                 hint="e.g. --include curl,ca-certificates")
        target = targets.lookup(arch) if arch else targets.host()
        return cls(suite, check_mirror(mirror) if mirror else host_mirror(), variant, target, packages, slim,
                   host_security())

    @property
    def foreign(self) -> bool:
        return not self.target.runs_natively_on(targets.host())


# ---------------------------------------------------------------------------------------------- debootstrap


def debootstrap(req: Request, root: Path, progress: Progress | None = None) -> None:
    """Bootstrap req's suite into root; for a foreign architecture, unpack first and configure under QEMU."""
    progress = progress or Progress.quiet()
    if not shutil.which("debootstrap"):
        raise BuildFailed("debootstrap is not installed", hint="apt-get install debootstrap (needs root)")
    if SCRIPTS.is_dir() and not (SCRIPTS / req.suite).exists():
        raise InputError(f"debootstrap knows no suite {req.suite!r}", hint="e.g. bookworm, trixie, stable, sid")
    if os.geteuid() != 0:
        raise BuildFailed("debootstrap needs root", hint=f"run as root, e.g. sudo {command.line('rootfs ...')}")
    handler = emulator(req.target) if req.foreign else None
    cmd = ["debootstrap", f"--arch={req.target.debian_arch}"]
    if req.variant != "default":
        cmd.append(f"--variant={req.variant}")
    if req.include:
        cmd.append("--include=" + ",".join(req.include))
    if req.foreign:
        cmd.append("--foreign")
    cmd += [req.suite, str(root), req.mirror]
    progress.step(f"debootstrap {req.suite} ({req.target.debian_arch}, {req.variant}) from {req.mirror}")
    _run_debootstrap(cmd, root, progress, f"debootstrap {req.suite}")
    if handler is not None:
        progress.step(f"second stage under QEMU ({req.target.qemu})")
        with emulator_inside(root, *handler):
            _run_debootstrap(["chroot", str(root), "/debootstrap/debootstrap", "--second-stage"], root, progress,
                             f"the second stage of debootstrap {req.suite} ({req.target.debian_arch})")


_PHASE = re.compile(r"^I: (Retrieving|Validating|Extracting|Unpacking|Configuring|Installing) (\S+?)(\.\.\.)?(\s|$)")
# debootstrap's verbs, grouped into the phases a user sees (it alternates retrieving and validating per package)
_PHASES = {"Retrieving": "downloading", "Validating": "downloading", "Extracting": "extracting",
           "Installing": "installing", "Unpacking": "installing", "Configuring": "configuring"}


def _run_debootstrap(cmd: list[str], root: Path, progress: Progress, what: str) -> None:
    """Run a debootstrap stage: a line per phase, the current package on a terminal, its tail on failure."""
    import time

    tail: deque[str] = deque(maxlen=15)
    packages: set[str] = set()
    seen: set[str] = set()
    started = time.monotonic()
    env = {**os.environ, "LC_ALL": "C", "DEBIAN_FRONTEND": "noninteractive",
           "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    with interrupts.child(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                          env=env) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            tail.append(line)
            m = _PHASE.match(line)
            if not m:
                continue
            verb, pkg = m.group(1), m.group(2).split(":")[0]
            if verb == "Retrieving" and pkg not in ("InRelease", "Release", "Packages"):
                packages.add(pkg)
            phase = _PHASES[verb]
            if phase not in seen:
                seen.add(phase)
                progress.note(phase)
            progress.status(f"{verb.lower()} {pkg}" + (f" ({len(packages)} packages)" if packages else ""))
        code = proc.wait()
    if code != 0:
        logfile = root / "debootstrap" / "debootstrap.log"
        detail = list(tail)
        if logfile.is_file():
            detail += ["--- the end of debootstrap's own log:"]
            detail += logfile.read_text(errors="replace").strip().splitlines()[-10:]
        raise BuildFailed(f"{what} failed (exit {code})", hint="is the suite name right and the mirror reachable?",
                          log="\n".join(detail))
    counted = f"{len(packages)} packages, " if packages else ""
    progress.note(f"done: {counted}{time.monotonic() - started:.0f} s")


def emulator(target: targets.Target, binfmt_dir: Path = binfmt.BINFMT_MISC) -> tuple[str, bool]:
    """The binfmt_misc QEMU handler for target: (its interpreter path, whether the kernel holds it open: F flag)."""
    name = f"qemu-{target.qemu}"
    entry = binfmt.read_entry(binfmt_dir, name)
    if entry is None or not entry.enabled:
        state = "disabled" if entry is not None else "not registered"
        raise BuildFailed(f"cannot run {target.debian_arch} programs here: the binfmt_misc handler {name} is {state}",
                          hint="install qemu-user-static, then run "
                               f"`{command.line('binfmt --arch ' + target.name)}` as root")
    return entry.interpreter, entry.fix_binary


@contextlib.contextmanager
def emulator_inside(root: Path, interpreter: str, fix_binary: bool) -> Iterator[None]:
    """Without the F flag the kernel looks the interpreter up inside the chroot: put a copy there for the block."""
    if fix_binary or not interpreter:
        yield
        return
    source = Path(interpreter).resolve()
    dest = root / interpreter.lstrip("/")
    made: list[Path] = []
    for parent in reversed(dest.parents):
        if parent != root and root in parent.parents and not parent.exists():
            parent.mkdir()
            made.append(parent)
    shutil.copy2(source, dest)
    try:
        yield
    finally:
        dest.unlink(missing_ok=True)
        for d in reversed(made):
            with contextlib.suppress(OSError):
                d.rmdir()


# ---------------------------------------------------------------------------------------------- the tree


def make_container_friendly(root: Path, epoch: int | None = None) -> None:
    """What moby's mkimage and debuerreotype write: services never start, apt stays small, no stale state."""
    sbin = root / "usr/sbin"
    sbin.mkdir(parents=True, exist_ok=True)
    policy = sbin / "policy-rc.d"
    policy.write_text("#!/bin/sh\n# containers start no services at install time\nexit 101\n")
    policy.chmod(0o755)
    apt_conf = root / "etc/apt/apt.conf.d"
    apt_conf.mkdir(parents=True, exist_ok=True)
    clean = '"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true";'
    (apt_conf / "docker-clean").write_text(
        f"DPkg::Post-Invoke {{ {clean} }};\nAPT::Update::Post-Invoke {{ {clean} }};\n"
        'Dir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n')
    (apt_conf / "docker-no-languages").write_text('Acquire::Languages "none";\n')
    (apt_conf / "docker-gzip-indexes").write_text(
        'Acquire::GzipIndexes "true";\nAcquire::CompressionTypes::Order:: "gz";\n')
    (apt_conf / "docker-autoremove-suggests").write_text(
        'Apt::AutoRemove::SuggestsImportant "false";\n')
    dpkg_cfg = root / "etc/dpkg/dpkg.cfg.d"
    dpkg_cfg.mkdir(parents=True, exist_ok=True)
    (dpkg_cfg / "docker-apt-speedup").write_text("force-unsafe-io\n")
    (root / "etc/machine-id").write_text("")
    # logs, caches, indexes, backups and the build host's own resolv.conf and hostname (the engine mounts its own)
    for pattern in ("var/lib/apt/lists/*", "var/cache/apt/*.bin", "var/cache/apt/archives/*.deb",
                    "var/cache/ldconfig/aux-cache", "var/log/*.log", "var/log/apt/*", "debootstrap",
                    "var/cache/debconf/*-old", "var/lib/dpkg/*-old", "etc/resolv.conf", "etc/hostname"):
        for p in root.glob(pattern):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            elif p.name != "lock":
                p.unlink()
    for name in _EMPTY_DIRS:
        d = root / name
        if d.is_dir() and not d.is_symlink():
            for child in d.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
    if epoch is not None:
        _shadow_dates(root, epoch)


def _shadow_dates(root: Path, epoch: int) -> None:
    """/etc/shadow records the day each password last changed: the build day, unless pinned to the epoch's."""
    day = str(epoch // 86400)
    for name in ("etc/shadow", "etc/shadow-"):
        path = root / name
        if not path.is_file() or path.is_symlink():
            continue
        lines = []
        for line in path.read_text().splitlines():
            fields = line.split(":")
            if len(fields) > 2 and fields[2]:
                fields[2] = day
            lines.append(":".join(fields))
        st = path.stat()
        path.write_text("".join(f"{line}\n" for line in lines))
        os.chmod(path, st.st_mode & 0o7777)


def slim(root: Path) -> int:
    """dpkg path-exclude rules for docs, man pages, info and locales (copyright files kept), and the files they
    match deleted now. Returns how many were deleted."""
    rules = ["# fromscratch --slim: no documentation, man pages or translations; licences stay"]
    rules += [f"path-exclude {p}" for p in SLIM_EXCLUDE] + [f"path-include {p}" for p in SLIM_INCLUDE]
    cfg = root / "etc/dpkg/dpkg.cfg.d"
    cfg.mkdir(parents=True, exist_ok=True)
    (cfg / "docker-slim").write_text("\n".join(rules) + "\n")
    removed = 0
    for pattern in SLIM_EXCLUDE:
        top = root / pattern.strip("/").rsplit("/", 1)[0]
        if not top.is_dir() or top.is_symlink():
            continue
        for dirpath, dirnames, filenames in os.walk(top, topdown=False):
            here = Path(dirpath)
            for name in filenames + dirnames:
                path = here / name
                if path.is_dir() and not path.is_symlink():
                    with contextlib.suppress(OSError):  # directories go only once empty
                        path.rmdir()
                    continue
                inside = "/" + path.relative_to(root).as_posix()
                # fnmatch's * crosses '/', as dpkg's does
                if fnmatch.fnmatchcase(inside, pattern) and \
                        not any(fnmatch.fnmatchcase(inside, keep) for keep in SLIM_INCLUDE):
                    path.unlink()
                    removed += 1
    return removed


@dataclass(frozen=True)
class AptSources:
    """What the image's apt reads, as in Docker's debian images: the suite and its -updates at the mirror, its
    -security at the security archive, each where its archive carries it (sid and unstable have neither)."""

    mirror: str
    suites: tuple[str, ...]
    security: str
    security_suites: tuple[str, ...]

    @property
    def text(self) -> str:
        """/etc/apt/sources.list.d/debian.sources (deb822)."""
        entries = [(self.mirror, self.suites), (self.security, self.security_suites)]
        return "\n".join(f"Types: deb\nURIs: {uri}\nSuites: {' '.join(suites)}\nComponents: main\n"
                         f"Signed-By: {DEBIAN_KEYRING}\n" for uri, suites in entries if suites)

    @property
    def added(self) -> tuple[str, ...]:
        """The suites named beyond debootstrap's one."""
        return self.suites[1:] + self.security_suites

    def __str__(self) -> str:
        found = [f"{' '.join(suites)} at {uri}" for uri, suites in
                 ((self.mirror, self.suites), (self.security, self.security_suites)) if suites]
        return ", ".join(found)


def apt_sources(req: Request) -> AptSources:
    """req's suite and whichever of its -updates and -security the archives carry: asked, not guessed (testing
    has both, sid neither, and an alias such as oldoldstable can name a release whose updates are archived)."""
    updates = f"{req.suite}-updates"
    security = f"{req.suite}-security"
    return AptSources(req.mirror, (req.suite,) + ((updates,) if has_suite(req.mirror, updates) else ()),
                      req.security, (security,) if has_suite(req.security, security) else ())


def write_apt_sources(root: Path, sources: AptSources) -> bool:
    """sources as debian.sources, in place of the one-line sources.list debootstrap wrote (suite and main only).
    A tree without Debian's archive keyring (an Ubuntu suite), or with nothing to add, keeps debootstrap's line.
    Returns whether it wrote them."""
    if not sources.added or not (root / DEBIAN_KEYRING.lstrip("/")).is_file():
        return False
    parts = root / "etc/apt/sources.list.d"
    parts.mkdir(parents=True, exist_ok=True)
    path = parts / "debian.sources"
    path.write_text(sources.text)
    path.chmod(0o644)  # apt's _apt user reads it too; not left to the umask
    (root / "etc/apt/sources.list").unlink(missing_ok=True)
    return True


def source_date_epoch(root: Path | None = None) -> int | None:
    """SOURCE_DATE_EPOCH when set; else the date of the suite's Release file under root; else None."""
    if os.environ.get("SOURCE_DATE_EPOCH", "").strip():
        return dates.source_date_epoch()
    if root is not None:
        lists = root / "var/lib/apt/lists"
        for release in sorted(lists.glob("*_Release")) + sorted(lists.glob("*_InRelease")):
            for line in release.read_text(errors="replace").splitlines():
                if line.startswith("Date:"):
                    return int(email.utils.parsedate_to_datetime(line[5:].strip()).timestamp())
    return None


# ---------------------------------------------------------------------------------------------- to an image


def image_config(target: targets.Target, cmd: tuple[str, ...] | None,
                 labels: dict[str, str] | None = None) -> oci.ImageConfig:
    return oci.ImageConfig(architecture=target.architecture, variant=target.variant, cmd=cmd, env=(oci.DEFAULT_PATH,),
                           labels=dict(labels or {}))


def probe_target(probes: dict[str, bytes]) -> tuple[targets.Target, str] | None:
    """The architecture a root filesystem's own programs are built for, from their ELF headers; with the file."""
    for name in PROBES:
        head = probes.get(name, b"")
        if len(head) < 52 or not head.startswith(b"\x7fELF") or head[4] not in (1, 2) or head[5] not in (1, 2):
            continue
        bits = 32 if head[4] == 1 else 64
        order: Literal["little", "big"] = "little" if head[5] == 1 else "big"
        machine = targets.machine_name(int.from_bytes(head[18:20], order)) or ""
        matches = targets.for_elf(bits, order, machine)
        if not matches:
            continue
        if len(matches) > 1:  # ARM: the float ABI in e_flags tells armhf (v7) from armel (v5)
            flags = int.from_bytes(head[36:40], order)
            want = "v7" if flags & 0x400 else "v5"
            matches = [t for t in matches if t.variant == want] or matches
        return matches[0], name
    return None


def choose_target(plan: Plan, want: targets.Target | None) -> targets.Target:
    """--arch if given (refused when the tree's programs say otherwise), else what they say, else this host."""
    probes = {}
    for name in PROBES:
        real = plan.checker.file_for(name)
        head = plan.head(real) if real is not None else None
        if head:
            probes[name] = head
    found = probe_target(probes)
    if want is not None:
        if found and found[0].architecture != want.architecture:
            raise InputError(f"{plan.source} holds {found[0].platform} programs ({found[1]}), not {want.platform}",
                             hint=f"drop --arch, or pass --arch {found[0].name}")
        return want
    if found:
        return found[0]
    host = targets.host()
    log.warning("%s: no program found to tell its architecture; calling it %s", plan.source, host.platform)
    return host


def default_cmd(checker: Checker) -> tuple[str, ...] | None:
    """/bin/bash when the tree has it, else /bin/sh, else none (docker run then needs a command)."""
    for cmd in ("/bin/bash", "/bin/sh"):
        found = checker.resolve(cmd)
        if found and checker.kind(found) in ("file", "hardlink"):
            return (cmd,)
    return None


def deliver_tree(root: Path, target: targets.Target, epoch: int, cmd: tuple[str, ...] | None, *, client: Client | None,
                 tag: str | None, out: Path | None, progress: Progress, owner: tuple[int, int] | None = None,
                 created_by: str = "fromscratch rootfs", labels: dict[str, str] | None = None) -> Delivered:
    progress.step(f"scanning {root}")
    plan = plan_tree(root, epoch, owner=owner)
    return deliver(plan, image_config(target, cmd, labels), epoch, client=client, tag=tag, out=out, progress=progress,
                   created_by=created_by)


def build(req: Request, *, client: Client | None, tag: str | None, out: Path | None, progress: Progress,
          scratch: str | None = None) -> Delivered:
    """debootstrap req, make it container-friendly (and slim), then tar it once into out and/or the engine."""
    if out is not None:
        out_compression(out)  # refuse a bad name before a minute of debootstrap
    with files.temp_dir("fromscratch-rootfs-", scratch) as tmp:
        root = tmp / "root"
        root.mkdir()
        debootstrap(req, root, progress)
        sources = apt_sources(req)
        if write_apt_sources(root, sources):
            progress.note(f"apt sources: {sources}")
        epoch = source_date_epoch(root)
        if epoch is None:
            raise BuildFailed(f"{req.suite}: debootstrap left no Release file to date the image by",
                              hint="set SOURCE_DATE_EPOCH")
        make_container_friendly(root, epoch)
        if req.slim:
            progress.note(f"--slim: {slim(root):,} files of documentation, man pages and locales removed")
        return deliver_tree(root, req.target, epoch, ("/bin/bash",), client=client, tag=tag, out=out,
                            progress=progress, created_by=f"fromscratch rootfs --suite {req.suite}",
                            labels={RECIPE_LABEL: RECIPE})


@dataclass(frozen=True)
class Import:
    """A checked directory or tarball, and the image config it gets."""

    plan: Plan
    config: oci.ImageConfig
    created: int
    created_by: str


def prepare_import(src: Path, want: targets.Target | None, allow_devices: bool, epoch: int | None,
                   budget: Budget | None = None) -> Import:
    """Check a directory or tarball entry by entry and choose its config. Nothing in it is changed; a directory's
    mtimes are clamped only when an epoch is given (SOURCE_DATE_EPOCH), which also dates the image; without one
    the image is dated by its newest entry."""
    if src.is_dir():
        plan = plan_tree(src, epoch if epoch is not None else 2**63 - 1, allow_devices=allow_devices, budget=budget)
    else:
        plan = plan_tarball(src, allow_devices=allow_devices, budget=budget)
    if plan.skipped:
        log.warning("%s: %d socket(s) left out (a tar cannot hold them), e.g. %s", src, len(plan.skipped),
                    plan.skipped[0])
    config = image_config(choose_target(plan, want), default_cmd(plan.checker))
    return Import(plan, config, epoch if epoch is not None else plan.newest, f"fromscratch import-rootfs {src.name}")


def import_path(src: Path, *, client: Client, tag: str, want: targets.Target | None, allow_devices: bool,
                progress: Progress, limit: int = IMPORT_MAX) -> Delivered:
    """prepare_import within limit bytes and the free space where the engine keeps images, then load it as tag."""
    from ..engine import client as engine

    progress.step(f"checking {src}")
    ready = prepare_import(src, want, allow_devices, source_date_epoch(), Budget(limit, engine.data_room(client)))
    return deliver(ready.plan, ready.config, ready.created, client=client, tag=tag, progress=progress,
                   created_by=ready.created_by)
