"""Read-only facts about one file: what it is and, for an ELF, what the kernel and loader will see. No policy."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from . import targets
from .errors import InputError

# Strings that glibc's static NSS machinery leaves in a binary even when it is stripped: the program may
# try to load libnss_*.so at run time, which a scratch image lacks. (gconv strings are not a sign: all of
# glibc's stdio carries them.)
_RUNTIME_LOADING_MARKERS: dict[bytes, str] = {
    b"/etc/nsswitch.conf": "NSS (getaddrinfo, gethostbyname, getpwnam, getgrnam, ...)",
    b"libnss_": "NSS modules (libnss_*.so)",
}
# Symbol names that pull that machinery in, read from the symbol table when the binary has one.
_RUNTIME_LOADING_SYMBOLS = (
    "getaddrinfo", "gethostbyname", "gethostbyname2", "gethostbyaddr", "getnameinfo",
    "getpwnam", "getpwuid", "getpwnam_r", "getpwuid_r", "getgrnam", "getgrgid", "getgrouplist",
    "initgroups", "getservbyname", "getservbyport", "getprotobyname", "iconv_open",
)
_GLIBC_MARKERS = (b"FATAL: kernel too old", b"GLIBC_PRIVATE", b"GNU C Library")
_MUSL_MARKERS = (b"ld-musl-", b"No error information")
_SCAN_CHUNK = 1 << 20
_DF_1_PIE = 0x08000000

_ABI_OS = {
    "ELF_NOTE_OS_LINUX": "Linux", "ELF_NOTE_OS_GNU": "GNU/Hurd",
    "ELF_NOTE_OS_SOLARIS2": "Solaris", "ELF_NOTE_OS_FREEBSD": "FreeBSD",
}
_OSABI = {
    "ELFOSABI_SYSV": "SYSV", "ELFOSABI_LINUX": "GNU/Linux", "ELFOSABI_HPUX": "HP-UX",
    "ELFOSABI_NETBSD": "NetBSD", "ELFOSABI_SOLARIS": "Solaris", "ELFOSABI_AIX": "AIX",
    "ELFOSABI_IRIX": "IRIX", "ELFOSABI_FREEBSD": "FreeBSD", "ELFOSABI_TRU64": "Tru64",
    "ELFOSABI_MODESTO": "Modesto", "ELFOSABI_OPENBSD": "OpenBSD", "ELFOSABI_OPENVMS": "OpenVMS",
    "ELFOSABI_NSK": "NonStop Kernel", "ELFOSABI_AROS": "AROS", "ELFOSABI_FENIXOS": "FenixOS",
    "ELFOSABI_CLOUD": "CloudABI", "ELFOSABI_SORTIX": "Sortix", "ELFOSABI_ARM_AEABI": "ARM EABI",
    "ELFOSABI_ARM": "ARM", "ELFOSABI_STANDALONE": "standalone (embedded)",
}
_ELF_TYPES = {
    "ET_EXEC": "executable", "ET_DYN": "shared object", "ET_REL": "relocatable object (.o)",
    "ET_CORE": "core dump", "ET_NONE": "no type",
}
# .ARM.attributes Tag_CPU_arch -> ARM architecture version ("Addenda to, and Errata in, the ABI for the Arm
# Architecture"): 3-5 are v5T/v5TE/v5TEJ, 6-9 and the v6-M profiles are v6, 10 and v7E-M are v7, 14 on are v8+.
_ARM_CPU_ARCH = {0: 3, 1: 4, 2: 4, 3: 5, 4: 5, 5: 5, 6: 6, 7: 6, 8: 6, 9: 6, 10: 7, 11: 6, 12: 6, 13: 7}
_MACHO_THIN = {b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe"}


@dataclass(frozen=True)
class ElfFacts:
    """What a file is. For non-ELF inputs only path, format, size and describe are set."""

    path: str
    format: str  # elf, empty, directory, script, mach-o, mach-o-universal, pe, data
    describe: str  # one phrase a user recognises: "ELF 64-bit LSB executable, x86-64", "shell script"
    size: int = 0
    executable: bool = False  # any execute bit in the mode
    script_interpreter: str | None = None
    elf_class: int | None = None
    endianness: str | None = None
    machine: str | None = None  # pyelftools' e_machine name, e.g. EM_X86_64
    arch: str | None = None  # OCI architecture, e.g. amd64; None when the table has no match
    variants: tuple[str, ...] = ()  # OCI variants that run it, oldest first (ARM: from .ARM.attributes if any)
    osabi: str | None = None  # human name of EI_OSABI
    abi_tag_os: str | None = None  # OS named by NT_GNU_ABI_TAG
    min_kernel: str | None = None
    type: str | None = None  # ET_EXEC, ET_DYN, ...
    entry: int | None = None
    interpreter: str | None = None
    needed: tuple[str, ...] = ()
    has_dynamic: bool = False
    static_pie: bool = False
    stripped: bool | None = None
    build_id: str | None = None
    libc: str | None = None  # glibc, musl, none, unknown
    runtime_loading: tuple[str, ...] = ()  # NSS/iconv/dlopen users found
    arm_eabi: int | None = None
    arm_float_abi: str | None = None  # hard, soft
    arm_arch: int | None = None  # ARM architecture version the code needs (Tag_CPU_arch), e.g. 5, 6, 7
    corrupt: tuple[str, ...] = field(default=())  # why the headers cannot be trusted

    @property
    def is_elf(self) -> bool:
        return self.format == "elf"

    @property
    def type_name(self) -> str:
        return _ELF_TYPES.get(self.type or "", self.type or "unknown type")


def read(path: str) -> ElfFacts:
    """Facts about the file at path. Raises InputError only when the path cannot be read at all."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        return ElfFacts(path, "directory", "a directory")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{path}: not a regular file (a FIFO, socket or device)",
                         hint="pass the binary itself")
    executable = bool(st.st_mode & 0o111)
    try:
        with open(path, "rb") as fh:
            return _read_open(path, fh, st.st_size, executable)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None


def _read_open(path: str, fh: BinaryIO, size: int, executable: bool) -> ElfFacts:
    head = fh.read(64)
    base: dict[str, Any] = {"path": path, "size": size, "executable": executable}
    if not head:
        return ElfFacts(format="empty", describe="an empty file", **base)
    if head.startswith(b"\x7fELF"):
        return _read_elf(fh, base)
    if head.startswith(b"#!"):
        line = head[2:].split(b"\n", 1)[0].strip().decode("utf-8", "replace")
        interp = line.split()[0] if line else ""
        return ElfFacts(format="script", describe=f"a script for {interp or 'no interpreter'}",
                        script_interpreter=interp or None, **base)
    if head[:4] in _MACHO_THIN:
        return ElfFacts(format="mach-o", describe="a Mach-O binary (macOS)", **base)
    # 0xcafebabe is also a Java class file; Mach-O universal headers count a few architectures.
    if head[:4] == b"\xca\xfe\xba\xbe" and len(head) >= 8 and int.from_bytes(head[4:8], "big") < 40:
        return ElfFacts(format="mach-o-universal", describe="a universal Mach-O binary (macOS)", **base)
    if head[:2] == b"MZ":
        return ElfFacts(format="pe", describe="a PE/COFF binary (Windows .exe or .dll)", **base)
    return ElfFacts(format="data", describe="not an executable (no ELF header)", **base)


def _read_elf(fh: BinaryIO, base: dict) -> ElfFacts:
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    # pyelftools raises its own ELFError and, on hostile input, the odd struct/construct/
    # Index/Value error; they all mean the same to a user: the headers cannot be read.
    try:
        elf = ELFFile(fh)
        return _facts(elf, fh, base)
    except ELFError as exc:
        return _unreadable(base, str(exc))
    except Exception as exc:  # hostile headers also raise struct/construct/Index errors
        return _unreadable(base, str(exc) or type(exc).__name__)


def _unreadable(base: dict, reason: str) -> ElfFacts:
    return ElfFacts(format="elf", describe="an ELF file with unreadable headers",
                    corrupt=(f"unreadable ELF headers: {reason.splitlines()[0] if reason else 'unknown'}",),
                    **base)


def _facts(elf, fh: BinaryIO, base: dict) -> ElfFacts:
    size = base["size"]
    header = elf.header
    elf_class = elf.elfclass
    endianness = "little" if elf.little_endian else "big"
    machine = header["e_machine"]
    corrupt: list[str] = []

    phoff, phnum, phentsize = header["e_phoff"], header["e_phnum"], header["e_phentsize"]
    if phnum and phoff + phnum * phentsize > size:
        corrupt.append(f"the program header table ends at byte {phoff + phnum * phentsize}, "
                       f"past the end of the file ({size} bytes): truncated or corrupt")

    interpreter = None
    needed: list[str] = []
    has_dynamic = False
    soname: str | None = None
    pie_flag = False
    build_id = None
    abi_tag_os = None
    min_kernel = None
    if not corrupt:
        for seg in elf.iter_segments():
            ptype = seg["p_type"]
            if ptype == "PT_LOAD" and seg["p_filesz"] and seg["p_offset"] + seg["p_filesz"] > size:
                corrupt.append(f"a PT_LOAD segment ends at byte {seg['p_offset'] + seg['p_filesz']}, "
                               f"past the end of the file ({size} bytes): truncated or corrupt")
            elif ptype == "PT_INTERP":
                interpreter = seg.get_interp_name().rstrip("\x00") or "(empty)"
            elif ptype == "PT_DYNAMIC":
                has_dynamic = True
                try:
                    for tag in seg.iter_tags():
                        if tag.entry.d_tag == "DT_NEEDED":
                            needed.append(tag.needed)
                        elif tag.entry.d_tag == "DT_SONAME":
                            soname = tag.soname
                        elif tag.entry.d_tag == "DT_FLAGS_1":
                            pie_flag = bool(tag.entry.d_val & _DF_1_PIE)
                except Exception:  # a dynamic segment whose string table cannot be found
                    needed.append("(unreadable DT_NEEDED entry)")
            elif ptype == "PT_NOTE":
                for note in seg.iter_notes():
                    if note["n_type"] == "NT_GNU_BUILD_ID":
                        build_id = note["n_desc"]
                    elif note["n_type"] == "NT_GNU_ABI_TAG":
                        desc = note["n_desc"]
                        abi_tag_os = _ABI_OS.get(desc["abi_os"], str(desc["abi_os"]))
                        min_kernel = f"{desc['abi_major']}.{desc['abi_minor']}.{desc['abi_tiny']}"

    symbols = _symbol_names(elf) if not corrupt else set()
    stripped = not symbols
    markers = _scan_markers(fh, size) if not corrupt else set()
    runtime_loading = sorted(s for s in _RUNTIME_LOADING_SYMBOLS if s in symbols)
    if not symbols:
        runtime_loading = sorted(label for m, label in _RUNTIME_LOADING_MARKERS.items() if m in markers)

    etype = header["e_type"]
    # A shared library also lacks PT_INTERP; a static-pie says DF_1_PIE, or at least has an entry and no soname.
    static_pie = (etype == "ET_DYN" and interpreter is None and not needed and has_dynamic
                  and (pie_flag or (header["e_entry"] != 0 and soname is None)))
    libc = _libc(interpreter, needed, markers, symbols)

    matches = targets.for_elf(elf_class, endianness, machine)
    arch = matches[0].architecture if matches else None
    arm_eabi = arm_float = arm_arch = None
    variants: tuple[str, ...] = ()
    if machine == "EM_ARM":
        flags = header["e_flags"]
        arm_eabi = (flags >> 24) & 0xFF
        arm_float = "hard" if flags & 0x400 else "soft" if flags & 0x200 else None
        arm_arch = _arm_arch(elf) if not corrupt else None
        runs_on = targets.arm_targets_running(arm_arch) if arm_arch else matches
        variants = tuple(t.variant for t in runs_on if t.variant)
    elif matches and matches[0].variant:
        variants = (matches[0].variant,)

    osabi_raw = header["e_ident"]["EI_OSABI"]
    describe = (f"ELF {elf_class}-bit {'LSB' if endianness == 'little' else 'MSB'} "
                f"{_ELF_TYPES.get(etype, etype)}, {arch or machine}")
    return ElfFacts(
        format="elf", describe=describe, elf_class=elf_class, endianness=endianness,
        machine=machine, arch=arch, variants=variants,
        osabi=_OSABI.get(osabi_raw, str(osabi_raw)), abi_tag_os=abi_tag_os, min_kernel=min_kernel,
        type=etype, entry=header["e_entry"], interpreter=interpreter, needed=tuple(needed),
        has_dynamic=has_dynamic, static_pie=static_pie, stripped=stripped, build_id=build_id,
        libc=libc, runtime_loading=tuple(runtime_loading), arm_eabi=arm_eabi,
        arm_float_abi=arm_float, arm_arch=arm_arch, corrupt=tuple(corrupt), **base)


def _arm_arch(elf) -> int | None:
    """The ARM architecture version from .ARM.attributes (the linker keeps the highest of all inputs)."""
    section = elf.get_section_by_name(".ARM.attributes")
    if section is None or not hasattr(section, "iter_subsections"):
        return None
    try:
        for sub in section.iter_subsections():
            for subsub in sub.iter_subsubsections():
                for attr in subsub.iter_attributes():
                    if attr.tag == "TAG_CPU_ARCH":
                        return _ARM_CPU_ARCH.get(attr.value, 8 if attr.value >= 14 else None)
    except Exception:  # a malformed attributes section says nothing about the variant
        return None
    return None


def _symbol_names(elf) -> set[str]:
    """Function and object names from .symtab (static binaries have no .dynsym); empty when stripped."""
    section = elf.get_section_by_name(".symtab")
    if section is None or not hasattr(section, "iter_symbols"):
        return set()
    return {sym.name for sym in section.iter_symbols() if sym.name}


def _scan_markers(fh: BinaryIO, size: int) -> set[bytes]:
    """Which known byte strings occur in the file, read in chunks so a huge binary stays cheap in memory."""
    wanted = [*_RUNTIME_LOADING_MARKERS, *_GLIBC_MARKERS, *_MUSL_MARKERS]
    overlap = max(len(m) for m in wanted)
    found: set[bytes] = set()
    fh.seek(0)
    tail = b""
    while len(found) < len(wanted):
        chunk = fh.read(_SCAN_CHUNK)
        if not chunk:
            break
        window = tail + chunk
        found.update(m for m in wanted if m not in found and m in window)
        tail = window[-overlap:]
    return found


def _libc(interpreter: str | None, needed: list[str], markers: set[bytes], symbols: set[str]) -> str:
    if interpreter and "ld-musl" in interpreter or any("musl" in n for n in needed):
        return "musl"
    if interpreter and "ld-linux" in interpreter or "libc.so.6" in needed:
        return "glibc"
    if any(m in markers for m in _GLIBC_MARKERS) or "__libc_start_call_main" in symbols:
        return "glibc"
    if any(m in markers for m in _MUSL_MARKERS):
        return "musl"
    if symbols and not any(s.startswith("__libc") for s in symbols):
        return "none"
    return "unknown"
