"""Policy: ElfFacts -> checks a FROM scratch image needs to pass, each with a reason in the user's words."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from . import targets
from .elf import ElfFacts

_LINUX_OSABI = {"SYSV", "GNU/Linux"}
_VM_HINT = ("Docker Desktop on Mac and Windows runs containers in a Linux VM, which needs a Linux ELF "
            "binary: build one with `invoke build --toolchain container`")


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
            "entry": f.entry, "osabi": f.osabi, "interpreter": f.interpreter,
            "needed": list(f.needed), "static_pie": f.static_pie, "stripped": f.stripped,
            "build_id": f.build_id, "min_kernel": f.min_kernel, "libc": f.libc, "size": f.size,
            "executable": f.executable, "arm_arch": f.arm_arch,
            "checks": [asdict(c) for c in self.checks], "warnings": list(self.warnings),
        }

    def render(self) -> str:
        lines = [f"{self.facts.path}: {self.facts.describe}"]
        lines += [f"  {'PASS' if c.ok else 'FAIL'}  {c.name:<8} {c.detail}" for c in self.checks]
        lines += [f"  WARN  {w}" for w in self.warnings]
        lines.append(f"  {'ok' if self.ok else 'not ok'}: "
                     + ("ready for a FROM scratch image" if self.ok
                        else f"{len(self.failures)} check(s) failed"))
        return "\n".join(lines)


def verify(facts: ElfFacts, arch: str | None = None) -> Verdict:
    """Judge facts for a FROM scratch image; arch (any name targets.lookup takes) adds an architecture check."""
    want = targets.lookup(arch) if arch else None
    checks = [_format(facts)]
    if facts.is_elf and facts.corrupt:
        checks.append(Check("integrity", False, "; ".join(facts.corrupt)))
    elif facts.is_elf:
        checks += [Check("integrity", True, "headers and loadable segments lie inside the file"),
                   _linux(facts), _type(facts), _static(facts)]
        checks.append(_arch(facts, want) if want else
                      Check("arch", facts.arch is not None,
                            f"{facts.arch}" + (f" (variant {'/'.join(facts.variants)})" if facts.variants else "")
                            if facts.arch else f"unknown machine {facts.machine}: no Docker platform runs it"))
    return Verdict(facts, tuple(checks), tuple(_warnings(facts)) if facts.is_elf and not facts.corrupt else ())


def _format(f: ElfFacts) -> Check:
    if f.is_elf:
        return Check("format", True, f.describe)
    reason = {
        "empty": "an empty file, not a program",
        "directory": "a directory, not a program",
        "script": f"a script for {f.script_interpreter or 'no interpreter'}: a scratch image has no "
                  "interpreter to run it (exec would fail with \"no such file or directory\")",
        "mach-o": f"a Mach-O binary for macOS, not a Linux ELF. {_VM_HINT}",
        "mach-o-universal": f"a universal Mach-O binary for macOS, not a Linux ELF. {_VM_HINT}",
        "pe": f"a PE/COFF binary for Windows, not a Linux ELF. {_VM_HINT}",
    }.get(f.format, "not an ELF executable (no ELF header)")
    return Check("format", False, reason)


def _linux(f: ElfFacts) -> Check:
    if f.osabi not in _LINUX_OSABI:
        return Check("linux", False, f"built for {f.osabi}, not Linux (EI_OSABI)")
    if f.abi_tag_os and f.abi_tag_os != "Linux":
        return Check("linux", False, f"built for {f.abi_tag_os}, not Linux (NT_GNU_ABI_TAG note)")
    kernel = f", needs kernel >= {f.min_kernel}" if f.min_kernel else ""
    return Check("linux", True, f"Linux ABI ({f.osabi}){kernel}")


def _type(f: ElfFacts) -> Check:
    if f.type == "ET_EXEC":
        return Check("type", True, "executable")
    if f.type == "ET_DYN" and f.interpreter is None and not f.needed:
        if f.static_pie:
            return Check("type", True, "static-pie executable")
        return Check("type", False, "a shared object with no program interpreter: a library, not a program")
    if f.type == "ET_DYN":
        return Check("type", True, "position-independent executable")
    return Check("type", False, f"a {f.type_name}, not an executable")


def _static(f: ElfFacts) -> Check:
    problems = []
    if f.interpreter:
        problems.append(f"dynamically linked: needs the interpreter {f.interpreter}, which a scratch image "
                        "lacks, so the container would fail with \"exec ...: no such file or directory\"")
    if f.needed:
        problems.append(f"needs shared libraries: {', '.join(f.needed)}")
    if problems:
        return Check("static", False, "; ".join(problems) + " (link with -static)")
    return Check("static", True, "statically linked: no interpreter, no shared libraries")


def _arch(f: ElfFacts, want: targets.Target) -> Check:
    if f.arch != want.architecture:
        return Check("arch", False, f"built for {f.arch or f.machine}, not {want.architecture}: the container "
                     "would fail with \"exec format error\"")
    if want.variant and f.arm_arch and want.variant not in f.variants:
        runs = f"runs on {f.arch} {'/'.join(f.variants)}" if f.variants else "no Docker arm variant runs it"
        return Check("arch", False, f"built for ARMv{f.arm_arch} ({runs}), not {want.platform}: an older CPU "
                     "stops at the first newer instruction (SIGILL)")
    if want.variant and f.variants and want.variant not in f.variants:
        return Check("arch", False, f"built for {f.arch} {'/'.join(f.variants)}, not {want.platform}")
    return Check("arch", True, want.platform)


def _warnings(f: ElfFacts) -> list[str]:
    out = []
    if f.libc == "glibc" and f.runtime_loading and f.interpreter is None and not f.needed:
        out.append("glibc static binary uses " + ", ".join(f.runtime_loading) + ": at run time glibc "
                   "will try to load shared libraries (NSS, iconv, dlopen) that a scratch image does not "
                   "have; build with musl (zig cc, musl-gcc) or avoid those calls")
    if not f.executable:
        out.append("not executable (mode has no x bit): chmod +x it; `invoke image` sets 0755 anyway")
    if f.stripped is False:
        out.append(f"not stripped ({f.size:,} bytes): strip it, or build with --strip, for a smaller image")
    if f.build_id is None:
        out.append("no build-id note: crash reports cannot be matched to this exact build")
    return out


def to_json(verdicts: list[Verdict] | Verdict) -> str:
    if isinstance(verdicts, Verdict):
        return json.dumps(verdicts.to_dict(), indent=2, sort_keys=True)
    return json.dumps([v.to_dict() for v in verdicts], indent=2, sort_keys=True)


def unreadable_dict(path: str, message: str) -> dict:
    """The JSON verdict for an input that could not be read at all (exit 2)."""
    return {"path": path, "ok": False, "format": "unreadable", "error": message, "arch": None,
            "interpreter": None, "needed": [], "checks": [{"name": "read", "ok": False, "detail": message}],
            "warnings": []}
