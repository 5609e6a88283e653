"""What a program reads at run time besides libraries, added to its scratch image: terminfo entries, glibc's
C.UTF-8 locale, a CA bundle, from the Debian packages of the build base's suite (ncurses-base and ncurses-term,
libc-bin, ca-certificates), when a flag asks or when check/elf finds the program reads them. Fetching the packages
is the caller's (rootfs/debfiles.py, passed in as Packages); this module decides and lays out the files."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import targets
from ..check import elf, verify
from ..errors import InputError, ToolkitError
from . import oci

TERMINFO_DEFAULT = ("dumb", "linux", "screen", "screen-256color", "tmux", "tmux-256color", "vt100", "xterm",
                    "xterm-256color")
# the kinds added without asking when the program reads them: time zones are not (4 MB, and a program without
# them reads every TZ as UTC rather than failing), nor is anything with --no-runtime-files
AUTO = ("terminfo", "locale", "ca-certificates")
LOCALE = "C.UTF-8"
_LOCALE_NAMES = ("C.UTF-8", "C.utf8")
_LOCALE_DIR = "usr/lib/locale/C.utf8"
_LOCALE_ENV = ("LANG", "LC_ALL", "LC_CTYPE")
_TERMINFO_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9+._-]{0,63}$")  # ncurses' entry names as file names
_TERMINFO_PACKAGES = (("ncurses-base", "lib/terminfo/"), ("ncurses-term", "usr/share/terminfo/"))
_CA_PACKAGE, _CA_DIR = "ca-certificates", "usr/share/ca-certificates/"
_LITTLE_ENDIAN_LOCALE_ARCH = "amd64"  # glibc's C.utf8 files are the same bytes on every little-endian arch
_ALL = "amd64"  # where the architecture-independent packages are looked up: every arch's index lists them


@dataclass(frozen=True)
class Unpacked:
    """A Debian package's files, unpacked and kept (root holds them at their paths in the package)."""

    package: str
    version: str
    arch: str
    source: str
    maintainer: str
    os_version: str  # the Debian release it is from (12)
    root: Path


# (Debian architecture, package, the paths in it wanted) -> its files
Packages = Callable[[str, str, Sequence[str]], Unpacked]


@dataclass(frozen=True)
class Request:
    """What the flags ask: terminfo entries, the C.UTF-8 locale, and the kinds added when found."""

    terminfo: tuple[str, ...] = ()
    locale: bool = False
    auto: tuple[str, ...] = AUTO


@dataclass(frozen=True)
class Added:
    """One kind of run-time data added to an image: its files, environment, packages, and why."""

    kind: str
    names: tuple[str, ...]
    entries: tuple[oci.Entry, ...]
    env: tuple[str, ...]
    packages: tuple[Unpacked, ...]
    why: str  # "asked for", or what the program does
    failed: str | None = None  # why it could not be added (only what was not asked for fails softly)

    def line(self) -> str:
        names = f" ({', '.join(self.names)})" if self.names else ""
        if self.failed is not None:
            return f"could not add {self.kind}{names} to the image ({self.failed}): {self.why}"
        return f"added {self.kind}{names} to the image: {self.why}"


def parse_terminfo(given: str | bool | None) -> tuple[str, ...]:
    """--terminfo (the common entries) or --terminfo NAME,...: each name checked, as it becomes a file name."""
    if given is None or given is False:
        return ()
    if given is True or given == "":
        return TERMINFO_DEFAULT
    names = [n.strip() for n in str(given).split(",")]
    for name in names:
        if not _TERMINFO_NAME.match(name) or ".." in name:
            raise InputError(f"--terminfo {name!r} is not a terminfo entry name",
                             hint="letters, digits and + . _ -, e.g. --terminfo xterm-256color,screen")
    return tuple(dict.fromkeys(names))


def parse_locale(given: str | None) -> bool:
    if given is None:
        return False
    if given not in _LOCALE_NAMES:
        raise InputError(f"--locale {given!r}: only C.UTF-8 is offered (glibc's C.utf8, from libc-bin)",
                         hint="--locale C.UTF-8; other locales need Debian's locales package, not offered yet")
    return True


def parse_off(given: str | bool | None) -> tuple[str, ...]:
    """--no-runtime-files (nothing added without asking) or --no-runtime-files=KIND,...: the kinds still added."""
    if given is None or given is False:
        return AUTO
    if given is True or given == "":
        return ()
    off = [k.strip() for k in str(given).split(",")]
    for kind in off:
        if kind not in AUTO:
            raise InputError(f"--no-runtime-files {kind!r} is not a kind of file added",
                             hint=f"one or more of {', '.join(AUTO)}, or the flag alone for none")
    return tuple(k for k in AUTO if k not in off)


def plan(binary: Path, facts: elf.ElfFacts, target: targets.Target, request: Request, packages: Packages,
         held: frozenset[str], env: Sequence[str]) -> list[Added]:
    """What to add to the image of binary for target: what the flags ask, and what the program reads (facts)
    that the image (held: its paths) lacks. env: the image's environment as the user set it."""
    found = {kind for kind in facts.reads if kind in request.auto and not verify.has_data(kind, held, facts)
             and not (kind == "locale" and facts.libc != "glibc")}  # musl's setlocale("") is C.UTF-8 already
    why = {kind: f"{binary} {verify.DATA_WHY[kind]}" for kind in found}
    steps: list[tuple[str, tuple[str, ...], Callable[[str], Added]]] = []
    if request.terminfo or "terminfo" in found:
        names = request.terminfo or TERMINFO_DEFAULT
        steps.append(("terminfo", names, lambda why: _terminfo(names, facts, packages, why)))
    if request.locale or "locale" in found:
        steps.append(("locale", (LOCALE,), lambda why: _locale(facts, target, packages, env, why)))
    if "ca-certificates" in found:
        steps.append(("ca-certificates", (), lambda why: _ca_certificates(facts, packages, why)))
    out = []
    asked = {"terminfo": bool(request.terminfo), "locale": request.locale, "ca-certificates": False}
    for kind, names, make in steps:
        if asked[kind]:
            out.append(make(f"asked for (--{kind})"))
            continue
        try:
            out.append(make(why[kind]))
        except ToolkitError as exc:  # unasked: the image is still made, and verify's warning stays
            out.append(Added(kind, names, (), (), (), why[kind], failed=exc.message))
    return out


def _terminfo(names: tuple[str, ...], facts: elf.ElfFacts, packages: Packages, why: str) -> Added:
    """Each entry from ncurses-base, else ncurses-term, in the directory the program's ncurses reads first of
    those it names (a symlinked entry as a file of its own)."""
    dirs = [d for d in facts.data_dirs if d in elf.TERMINFO_DIRS]
    where = "/usr/share/terminfo" if not dirs or "/usr/share/terminfo" in dirs else dirs[0]
    kept: dict[str, Unpacked] = {}  # ncurses-term (2,800 entries) is fetched only for a name base lacks

    def find(name: str) -> tuple[Path, Unpacked] | None:
        for package, prefix in _TERMINFO_PACKAGES:
            if package not in kept:
                kept[package] = packages(_ALL, package, (prefix,))
            root = kept[package].root.resolve()
            candidate = root / prefix / name[0] / name
            if candidate.is_file() and candidate.resolve().is_relative_to(root):  # a symlink stays inside
                return candidate.resolve(), kept[package]
        return None

    entries, used = [], set()
    for name in names:
        found = find(name)
        if found is None:
            raise InputError(f"--terminfo {name}: no such entry in Debian's ncurses-base or ncurses-term",
                             hint=f"e.g. {','.join(TERMINFO_DEFAULT[:4])}")
        entries.append(oci.Entry(f"{where.strip('/')}/{name[0]}/{name}", 0o644, source=found[0]))
        used.add(found[1].package)
    packages_used = tuple(kept[p] for p, _ in _TERMINFO_PACKAGES if p in used)
    return Added("terminfo", names, tuple(entries), (), packages_used, why)


def _locale(facts: elf.ElfFacts, target: targets.Target, packages: Packages, env: Sequence[str],
            why: str) -> Added:
    """glibc's C.utf8 (libc-bin of the target's architecture: its files are in the machine's byte order) at
    /usr/lib/locale/C.utf8, where a static glibc's setlocale looks; LANG=C.UTF-8 unless the user set the locale.
    musl has UTF-8 built in (its setlocale(LC_ALL, "") gives C.UTF-8 with no variable set): the variable alone."""
    lang = () if any(e.split("=", 1)[0] in _LOCALE_ENV for e in env) else (f"LANG={LOCALE}",)
    if facts.libc == "musl":
        return Added("locale", (LOCALE,), (), lang, (), why + " (musl has it built in: LANG alone)")
    arch = target.debian_arch
    try:
        libc = packages(arch, "libc-bin", (_LOCALE_DIR + "/",))
    except ToolkitError:
        if target.endianness != "little" or arch == _LITTLE_ENDIAN_LOCALE_ARCH:
            raise
        libc = packages(_LITTLE_ENDIAN_LOCALE_ARCH, "libc-bin", (_LOCALE_DIR + "/",))  # riscv64: not in bookworm
    top = libc.root / _LOCALE_DIR
    if not (top / "LC_CTYPE").is_file():
        raise InputError(f"Debian's libc-bin {libc.version} has no {_LOCALE_DIR}", hint="leave out --locale")
    entries = [oci.Entry(_LOCALE_DIR, 0o755, kind="dir")]
    for path in sorted(top.rglob("*")):
        dest = f"{_LOCALE_DIR}/{path.relative_to(top).as_posix()}"
        if path.is_symlink():
            raise InputError(f"Debian's libc-bin holds a symlink at /{dest}")
        entries.append(oci.Entry(dest, 0o755, kind="dir") if path.is_dir() else oci.entry_for(path, dest, 0o644))
    return Added("locale", (LOCALE,), tuple(entries), lang, (libc,), why)


def _ca_certificates(facts: elf.ElfFacts, packages: Packages, why: str) -> Added:
    """The bundle update-ca-certificates would write (Mozilla's certificates, in name order, each ending in a
    newline) at /etc/ssl/certs/ca-certificates.crt; Debian's OpenSSL also reads /usr/lib/ssl/cert.pem."""
    ca = packages(_ALL, _CA_PACKAGE, (_CA_DIR,))
    certs = sorted((ca.root / _CA_DIR / "mozilla").glob("*.crt"))
    if not certs:
        raise InputError(f"Debian's {_CA_PACKAGE} {ca.version} holds no certificates")
    bundle = b"".join(data if data.endswith(b"\n") else data + b"\n" for data in (p.read_bytes() for p in certs))
    entries = [oci.Entry(verify.CA_BUNDLE.strip("/"), 0o644, data=bundle)]
    if elf.OPENSSL_DEBIAN_DIR in facts.data_dirs:
        entries.append(oci.Entry(f"{elf.OPENSSL_DEBIAN_DIR.strip('/')}/cert.pem", 0o777, kind="symlink",
                                 link=verify.CA_BUNDLE))
    return Added("ca-certificates", (f"{len(certs)} certificates",), tuple(entries), (), (ca,), why)
