"""Policy: ElfFacts -> checks a FROM scratch image needs to pass, each with a reason in the user's words."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Collection
from dataclasses import asdict, dataclass

from .. import command, targets
from ..errors import ToolkitError, VerifyFailed
from . import elf
from .elf import ElfFacts, OtherFile

_LINUX_OSABI = {"SYSV", "GNU/Linux"}


def _vm_hint() -> str:
    return ("Docker Desktop on Mac and Windows runs containers in a Linux VM, which needs a Linux ELF binary: build "
            f"one with `{command.line('build --toolchain container')}`")


NO_SUCH_FILE = "the container would fail with \"exec ...: no such file or directory\""
EXEC_FORMAT_ERROR = "the container would fail with \"exec format error\""
# glibc's NSS calls by the database they read: that decides what a scratch image must hold for them to answer.
# The rest of elf's calls (getaddrinfo, getservbyname...) look up hosts, services and protocols.
_USER_CALLS = frozenset(("getpwnam", "getpwuid", "getpwnam_r", "getpwuid_r", "getgrnam", "getgrgid",
                         "getgrouplist", "initgroups"))
_ICONV_CALL = "iconv_open"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Verdict:
    facts: ElfFacts
    checks: tuple[Check, ...]
    warnings: tuple[str, ...]
    runtime: tuple[str, ...] = ()  # what the program can do in a scratch image (NSS, iconv, terminfo, locale...)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failures(self) -> list[str]:
        return [c.detail for c in self.checks if not c.ok]

    def to_dict(self) -> dict:
        f = self.facts
        return {
            "path": f.path, "ok": self.ok, "format": f.format, "describe": f.describe,
            "arch": f.arch, "variants": list(f.variants), "class": f.elf_class,
            "endianness": f.endianness, "machine": f.machine, "type": f.type,
            "entry": f.entry, "osabi": f.osabi, "abi_tag_os": f.abi_tag_os, "interpreter": f.interpreter,
            "needed": list(f.needed), "soname": f.soname, "rpath": list(f.rpath), "runpath": list(f.runpath),
            "static_pie": f.static_pie, "stripped": f.stripped, "nss_builtin": f.nss_builtin,
            "build_id": f.build_id, "min_kernel": f.min_kernel, "libc": f.libc, "size": f.size,
            "reads": list(f.reads), "data_dirs": list(f.data_dirs),
            "executable": f.executable, "script_interpreter": f.script_interpreter, "arm_arch": f.arm_arch,
            "arm": {"eabi": f.arm_eabi, "float_abi": f.arm_float_abi, "arch": _arm_arch_name(f.arm_arch)}
            if f.machine == "EM_ARM" else None,
            "checks": [asdict(c) for c in self.checks], "warnings": list(self.warnings),
        }

    def render(self) -> str:
        lines = [f"{self.facts.path}: {self.facts.describe}"]
        if self.facts.is_elf and not self.facts.corrupt:
            lines.append(f"  {_facts_line(self.facts)}")
        lines += [f"  {'PASS' if c.ok else 'FAIL'}  {c.name:<9} {c.detail}" for c in self.checks]
        lines += [f"  WARN  {w}" for w in self.warnings]
        lines.append(f"  {'ok' if self.ok else 'not ok'}: "
                     + ("ready for a FROM scratch image" if self.ok
                        else f"{len(self.failures)} check(s) failed"))
        return "\n".join(lines)


def verify(facts: ElfFacts, want: targets.Target | None = None,
           image_files: Collection[str] | None = None) -> Verdict:
    """Judge facts for a FROM scratch image; a target adds an architecture check. image_files, the absolute
    paths besides the binary that the image will hold (`invoke image` knows them), lets the run-time warnings
    say what this image has; None judges the binary for any scratch image."""
    checks = [_format(facts)]
    if facts.is_elf:
        checks += runnable(facts, want)
        if not facts.corrupt and facts.type not in ("ET_REL", "ET_CORE"):  # nothing is loaded from those
            checks.insert(-1, _static(facts))
    if not facts.is_elf or facts.corrupt:
        return Verdict(facts, tuple(checks), ())
    image = None if image_files is None else frozenset(image_files)
    runtime = tuple(_runtime_warnings(facts, image)) + tuple(data_warnings(facts, image))
    return Verdict(facts, tuple(checks), runtime + tuple(_file_warnings(facts)), runtime)


def judge(facts: ElfFacts, want: targets.Target | None, image_files: Collection[str] | None = None, *,
          subject: str | None = None, error: type[ToolkitError] = VerifyFailed, hint: str | None = None) -> Verdict:
    """verify(), for a program about to be used: its verdict when every check passes, else error (VerifyFailed,
    or the caller's kind: BuildFailed for a build's output) naming the file, the platform and the failures."""
    verdict = verify(facts, want, image_files)
    if verdict.ok:
        return verdict
    where = f" for {want.platform}" if want is not None else ""
    message = f"{subject or facts.path}{where}, which fails verify: " + "; ".join(verdict.failures)
    if issubclass(error, VerifyFailed):
        raise error(message, reasons=verdict.failures, hint=hint)
    raise error(message, hint=hint)


def require(path: str | os.PathLike[str], want: targets.Target | None, *, subject: str | None = None,
            error: type[ToolkitError] = VerifyFailed, hint: str | None = None) -> ElfFacts:
    """A program's facts, read once, when it passes verify for want (None: any architecture); else error, as
    judge() says it."""
    return judge(elf.read(os.fspath(path)), want, subject=subject, error=error, hint=hint).facts


def runnable(facts: ElfFacts, want: targets.Target | None = None) -> list[Check]:
    """The checks that decide whether the kernel would exec this ELF at all: every check but `static`."""
    if facts.corrupt:
        return [Check("integrity", False, "; ".join(facts.corrupt))]
    return [Check("integrity", True, "headers and loadable segments lie inside the file"),
            _linux(facts), _type(facts), _arch(facts, want)]


def _facts_line(f: ElfFacts) -> str:
    parts = [f"entry {f.entry:#x}" if f.entry is not None else "", f"libc {f.libc}",
             f"kernel >= {f.min_kernel}" if f.min_kernel else "",
             "stripped" if f.stripped else "not stripped",
             f"build-id {f.build_id[:16]}" if f.build_id else "no build-id", f"{f.size:,} bytes"]
    return "facts     " + ", ".join(p for p in parts if p)


def _format(f: ElfFacts) -> Check:
    if f.is_elf:
        return Check("format", True, f.describe)
    interp = f.script_interpreter
    if f.format == "script" and interp and "\r" in interp:
        script = (f"a script for {interp!r}: its first line ends in a carriage return (Windows line endings), so "
                  f"even an image with that interpreter would fail with \"no such file or directory\"; convert "
                  f"it with dos2unix")
    else:
        script = (f"a script for {interp or 'no interpreter'}: a scratch image has no interpreter to run it, "
                  f"so {NO_SUCH_FILE}")
    reason = {
        "empty": "an empty file, not a program",
        "directory": "a directory, not a program",
        "script": script,
        "mach-o": f"a Mach-O binary for macOS, not a Linux ELF. {_vm_hint()}",
        "mach-o-universal": f"a universal Mach-O binary for macOS, not a Linux ELF. {_vm_hint()}",
        "pe": f"a PE/COFF binary for Windows (.exe), not a Linux ELF. {_vm_hint()}",
    }.get(f.format, f"not an ELF executable (no ELF header): {EXEC_FORMAT_ERROR}")
    return Check("format", False, reason)


def _linux(f: ElfFacts) -> Check:
    if f.osabi not in _LINUX_OSABI:
        return Check("linux", False, f"built for {f.osabi}, not Linux (EI_OSABI): {EXEC_FORMAT_ERROR}")
    if f.abi_tag_os and f.abi_tag_os != "Linux":
        return Check("linux", False, f"built for {f.abi_tag_os}, not Linux (NT_GNU_ABI_TAG note): "
                                     f"{EXEC_FORMAT_ERROR}")
    kernel = f", needs kernel >= {f.min_kernel}" if f.min_kernel else ""
    return Check("linux", True, f"Linux ABI ({f.osabi}){kernel}")


def _type(f: ElfFacts) -> Check:
    if f.type == "ET_EXEC":
        return Check("type", True, "executable")
    if f.type == "ET_DYN" and f.interpreter:
        return Check("type", True, "position-independent executable")
    if f.type == "ET_DYN" and f.static_pie:
        return Check("type", True, "static-pie executable")
    if f.type == "ET_DYN":
        name = f" ({f.soname})" if f.soname else ""
        return Check("type", False, f"a shared library{name} with no program interpreter: a library, not a "
                                    "program")
    if f.type == "ET_REL":
        return Check("type", False, "a relocatable object (.o), not an executable: link it into a program")
    if f.type == "ET_CORE":
        return Check("type", False, "a core dump, not a program")
    return Check("type", False, f"a {f.type_name}, not an executable: {EXEC_FORMAT_ERROR}")


def _static(f: ElfFacts) -> Check:
    problems = []
    if f.interpreter and not f.needed and f.type == "ET_DYN":
        problems.append(f"a PIE that names the interpreter {f.interpreter} yet needs no shared library (seen "
                        f"with musl-gcc -static): a scratch image lacks {f.interpreter}, so {NO_SUCH_FILE}; "
                        "link with -static-pie, or -no-pie -static")
    elif f.interpreter:
        problems.append(f"dynamically linked: needs the interpreter {f.interpreter}, which a scratch image "
                        f"lacks, so {NO_SUCH_FILE}")
    if f.needed:
        problems.append(f"needs shared libraries: {', '.join(f.needed)}")
    if problems:
        hint = "" if f.interpreter and not f.needed else " (link with -static)"
        return Check("static", False, "; ".join(problems) + hint)
    return Check("static", True, "statically linked: no interpreter, no shared libraries")


def _arch(f: ElfFacts, want: targets.Target | None) -> Check:
    if f.arch is None:
        return Check("arch", False, f"{f.machine} ({f.elf_class}-bit {f.endianness}-endian) is not an architecture "
                                    f"Docker runs images for (known: {targets.known_names()})")
    if f.machine == "EM_ARM" and f.arm_eabi == 0:
        return Check("arch", False, "the old ARM ABI (OABI, no EABI version): arm64 hosts and current kernels "
                                    f"run only EABI binaries, so {EXEC_FORMAT_ERROR}")
    have = _platform_phrase(f)
    if want is None:
        return Check("arch", True, have)
    if f.arch != want.architecture:
        return Check("arch", False, f"built for {have}, not {want.platform}: {EXEC_FORMAT_ERROR}")
    if want.variant and (f.variants or f.arm_arch) and want.variant not in f.variants:
        need = _arm_arch_name(f.arm_arch) or "/".join(f.variants)
        return Check("arch", False, f"needs {need}, which {want.platform} CPUs lack: the container would start "
                                    "and then crash with \"illegal instruction\"")
    return Check("arch", True, f"{want.platform}" + (f" ({_arm_detail(f)})" if f.machine == "EM_ARM" else ""))


def _platform_phrase(f: ElfFacts) -> str:
    matches = targets.for_elf(f.elf_class or 0, f.endianness or "", f.machine or "")
    if f.machine == "EM_ARM":
        variants = "/".join(f.variants) if f.variants else "no Docker ARM variant"
        return f"linux/{f.arch} ({variants}; {_arm_detail(f)})"
    return matches[0].platform if matches else f"linux/{f.arch}"


def _arm_detail(f: ElfFacts) -> str:
    parts = [f"EABI{f.arm_eabi}" if f.arm_eabi else "", f"{f.arm_float_abi}-float" if f.arm_float_abi else "",
             f"needs {_arm_arch_name(f.arm_arch)}" if f.arm_arch else ""]
    return ", ".join(p for p in parts if p) or "no ABI flags"


def _arm_arch_name(level: int | None) -> str | None:
    return f"ARMv{level}" if level else None


def _runtime_warnings(f: ElfFacts, image: frozenset[str] | None) -> list[str]:
    """What a static glibc program's NSS and iconv calls will do in a scratch image (or in this image). musl
    reads /etc/hosts, /etc/resolv.conf and /etc/passwd itself and has its charsets built in: nothing to say."""
    if f.libc != "glibc" or not f.runtime_loading or not f.is_static:
        return []
    matches = targets.for_elf(f.elf_class or 0, f.endianness or "", f.machine or "")
    musl = f"build with musl ({f'zig cc -target {matches[0].zig}' if matches else 'zig cc'}, musl-gcc)"
    stripped = f.runtime_loading == (elf.NSS_MACHINERY,)
    nss = () if stripped else tuple(c for c in f.runtime_loading if c != _ICONV_CALL)
    out = []
    if stripped or nss:
        out += _nss_builtin_warnings(nss, image) if f.nss_builtin else [_nss_modules_warning(nss, musl)]
    if _ICONV_CALL in f.runtime_loading:
        out.append(f"glibc static binary calls {_ICONV_CALL}: only the character sets built into glibc convert "
                   "(ASCII, UTF-8, UCS-2, UCS-4, WCHAR_T); the others (ISO-8859-1, UTF-16, EUC-JP...) are gconv "
                   f"modules that a scratch image lacks, so {_ICONV_CALL} fails for them (EINVAL); {musl}, whose "
                   "iconv has them built in")
    return out


# Where each kind of run-time data lies in an image, as the image task adds it: one path that says it is there.
LOCALE_FILE = "/usr/lib/locale/C.utf8/LC_CTYPE"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
ZONEINFO = "/usr/share/zoneinfo"


def has_data(kind: str, image: frozenset[str], facts: ElfFacts) -> bool:
    """Whether an image's files hold kind (one of elf.READS) for this program."""
    if kind == "terminfo":
        dirs = [d for d in facts.data_dirs if d in elf.TERMINFO_DIRS] or list(elf.TERMINFO_DIRS)
        return any(p.startswith(d + "/") for p in image for d in dirs)
    return {"locale": LOCALE_FILE, "ca-certificates": CA_BUNDLE, "zoneinfo": ZONEINFO}[kind] in image


def data_warnings(f: ElfFacts, image: frozenset[str] | None) -> list[str]:
    """What the program reads at run time (terminfo, its locale, CA certificates, time zones) that a scratch image
    lacks, or this image lacks, each with the flag that adds it."""
    out = []
    for kind in f.reads:
        if image is not None and has_data(kind, image, f):
            continue
        if kind == "locale" and f.libc != "glibc":
            continue  # musl's UTF-8 is built in: LANG=C.UTF-8 is all it needs
        where = "a scratch image" if image is None else "this image"
        out.append(f"{DATA_WHY[kind]}: {where} has none, so {_DATA_FAILS[kind]}; "
                   f"`{command.line('image ' + _DATA_FLAG[kind])}` adds it")
    return out


DATA_WHY = {
    "terminfo": "links ncurses, which reads terminfo at run time",
    "locale": "calls nl_langinfo, which asks the locale's character set (setlocale reads locale files)",
    "ca-certificates": "carries a TLS library that reads CA certificates (/etc/ssl/certs) to verify servers",
    "zoneinfo": "converts times to local time, reading time zone data (/usr/share/zoneinfo) for TZ",
}
_DATA_FAILS = {
    "terminfo": "setupterm fails for TERM=xterm and the program cannot drive a terminal",
    "locale": "setlocale(LC_ALL, \"\") keeps the C locale and nl_langinfo(CODESET) says ANSI_X3.4-1968, not "
              "UTF-8 (tmux refuses to start)",
    "ca-certificates": "every server's certificate fails to verify",
    "zoneinfo": "TZ=Europe/Paris is read as UTC",
}
_DATA_FLAG = {"terminfo": "--terminfo", "locale": "--locale C.UTF-8", "ca-certificates": "--ca-certs",
              "zoneinfo": "--tzdata"}


def _nss_modules_warning(calls: tuple[str, ...], musl: str) -> str:
    """glibc before 2.34: every NSS service, files and dns too, is a shared library loaded at run time."""
    found = f"calls {', '.join(calls)}" if calls else (
        "carries glibc's NSS code (it reads /etc/nsswitch.conf and loads libnss_*.so for calls such as "
        "getaddrinfo, gethostbyname, getpwnam, getgrnam)")
    return (f"glibc static binary {found}: its glibc (older than 2.34) has no NSS service built in, so at run "
            "time it will try to load shared libraries (NSS modules) that a scratch image does not have, and "
            f"those calls will fail; {musl} or avoid those calls")


def _nss_builtin_warnings(calls: tuple[str, ...], image: frozenset[str] | None) -> list[str]:
    """glibc 2.34 and later: files and dns are inside the binary; what they read decides what answers."""
    users = tuple(c for c in calls if c in _USER_CALLS)
    hosts = tuple(c for c in calls if c not in _USER_CALLS)
    stripped = "carries NSS code (stripped: the calls are not named)"
    out = []
    if hosts or not calls:
        who, such = (f"calls {', '.join(hosts)}", "") if hosts else (stripped, " (getaddrinfo, gethostbyname...)")
        services = _image_holds(image, ("/etc/services", "/etc/protocols"), "port numbers need neither")
        out.append(f"glibc static binary {who}: host lookups{such} work in a scratch image, as this glibc (2.34 "
                   "or later) has its files and dns services built in and the engine writes /etc/hosts and "
                   "/etc/resolv.conf into every container (`docker run --add-host NAME:IP` adds a name); "
                   f"service and protocol names (\"http\", \"tcp\") need /etc/services and /etc/protocols, "
                   f"{services}")
    if users or not calls:
        who, such = (f"calls {', '.join(users)}", "") if users else (stripped, " (getpwnam, getgrgid...)")
        passwd = _image_holds(image, ("/etc/passwd", "/etc/group"), "without them no user or group is found",
                              "--nonroot")
        out.append(f"glibc static binary {who}: user and group lookups{such} read /etc/passwd and /etc/group, "
                   f"{passwd}")
    who = f"calls {', '.join(calls)}" if calls else stripped
    write = "" if image is not None and "/etc/nsswitch.conf" in image else \
        (f"; `{command.line('image --nsswitch')}` writes one that names only files, then dns (without one, older glibc "
         "asked DNS before /etc/hosts)")
    out.append(f"glibc static binary {who}: NSS services other than files and dns (systemd, mdns, ldap, sss... "
               "named in an /etc/nsswitch.conf) are libnss_*.so modules that a scratch image lacks, so glibc "
               f"skips them{write}")
    return out


def _image_holds(image: frozenset[str] | None, paths: tuple[str, ...], otherwise: str, option: str = "") -> str:
    """Whether the image holds paths, in words; with no image known, what any scratch image holds."""
    how = f"`{command.line('image ' + option)}` (or `--add`)" if option else f"`{command.line('image --add')}`"
    if image is None:
        held = f"which a scratch image has only with {how}" if option else \
            f"which a scratch image lacks: add them with {how}"
        return f"{held}; {otherwise}"
    missing = [p for p in paths if p not in image]
    if not missing:
        return "which this image has"
    if len(missing) < len(paths):
        return f"and this image lacks {', '.join(missing)}: add it with `{command.line('image --add')}`; {otherwise}"
    return f"which this image lacks: add them with {how}; {otherwise}"


def _file_warnings(f: ElfFacts) -> list[str]:
    out = []
    if not f.executable:
        out.append(f"not executable (mode has no x bit): chmod +x it; `{command.line('image')}` sets 0755 anyway")
    if f.stripped is False and f.type in ("ET_EXEC", "ET_DYN"):
        out.append(f"not stripped ({f.size:,} bytes): `strip` it for a smaller image")
    if f.build_id is None and f.type in ("ET_EXEC", "ET_DYN"):
        out.append("no build-id note: crash reports cannot be matched to this exact build")
    return out


@dataclass(frozen=True)
class TreeVerdict:
    """Every ELF under a directory judged on its own; everything else listed as skipped."""

    root: str
    items: tuple[Verdict | OtherFile, ...]  # in the walk's order

    @property
    def verdicts(self) -> list[Verdict]:
        return [i for i in self.items if isinstance(i, Verdict)]

    @property
    def others(self) -> list[OtherFile]:
        return [i for i in self.items if not isinstance(i, Verdict)]

    @property
    def unreadable(self) -> list[OtherFile]:
        return [o for o in self.others if o.format == "unreadable"]

    @functools.cached_property
    def _counts(self) -> tuple[int, int, int]:
        """(ELF files, of them passed, unreadable entries): counted once, as a tree holds thousands of items."""
        elf_files = passed = unreadable = 0
        for item in self.items:
            if isinstance(item, Verdict):
                elf_files += 1
                passed += item.ok
            elif item.format == "unreadable":
                unreadable += 1
        return elf_files, passed, unreadable

    @property
    def ok(self) -> bool:
        elf_files, passed, unreadable = self._counts
        return passed == elf_files and not unreadable

    def summary(self) -> dict[str, int]:
        elf_files, passed, unreadable = self._counts
        return {"entries": len(self.items), "elf": elf_files, "passed": passed, "failed": elf_files - passed,
                "skipped": len(self.items) - elf_files - unreadable, "unreadable": unreadable}

    def to_dict(self) -> dict:
        items: list[dict] = []
        for item in self.items:
            if isinstance(item, Verdict):
                items.append({**item.to_dict(), "skipped": False})
            else:
                unreadable = item.format == "unreadable"
                items.append({"path": item.path, "format": item.format, "describe": item.describe,
                              "ok": False if unreadable else None, "skipped": not unreadable})
        return {"path": self.root, "ok": self.ok, "summary": self.summary(), "files": items}

    def render(self) -> str:
        rows: list[str] = []
        for item in self.items:
            if isinstance(item, OtherFile):
                rows.append(f"  {'FAIL' if item.format == 'unreadable' else 'SKIP'}  {item.path}: {item.describe}")
            elif item.ok:
                warned = f" ({len(item.warnings)} warning(s))" if item.warnings else ""
                rows.append(f"  PASS  {item.facts.path}: {item.facts.describe}{warned}")
            else:
                rows.append(f"  FAIL  {item.facts.path}: {item.facts.describe}: {'; '.join(item.failures)}")
        s = self.summary()
        lines = [f"{self.root}: {s['entries']:,} entries"] + rows
        lines.append(f"  {s['elf']:,} ELF file(s): {s['passed']:,} passed, {s['failed']:,} failed; "
                     f"{s['skipped']:,} skipped (not ELF)" + (f"; {s['unreadable']:,} unreadable"
                                                              if s["unreadable"] else ""))
        if self.ok:
            lines.append("  ok: every ELF file is ready for a FROM scratch image")
        else:
            lines.append(f"  not ok: {s['failed'] + s['unreadable']:,} file(s) failed")
        return "\n".join(lines)


def verify_tree(root: str, want: targets.Target | None = None) -> TreeVerdict:
    """Verify every ELF file under root (symlinks not followed)."""
    return TreeVerdict(root, tuple(verify(i, want) if isinstance(i, ElfFacts) else i for i in elf.walk(root)))


def to_json(doc: dict | list) -> str:
    return json.dumps(doc, indent=2, sort_keys=True)


def unreadable_dict(path: str, message: str) -> dict:
    """The JSON verdict for an input that could not be read at all (exit 2)."""
    return {"path": path, "ok": False, "format": "unreadable", "error": message, "arch": None,
            "interpreter": None, "needed": [], "checks": [{"name": "read", "ok": False, "detail": message}],
            "warnings": []}
