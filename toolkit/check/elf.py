"""Read-only facts about one file: what it is and, for an ELF, what the kernel and loader will see. No policy.

The ELF structures the kernel and ld.so read (ELF header, program headers, PT_INTERP, PT_DYNAMIC, PT_NOTE, and
the section header table for `stripped`) are fixed-layout records, read here with `struct` straight from the
bytes: about fifty times faster than building pyelftools objects, which is what lets a whole root filesystem
be checked in scanelf's time. tests/unit/test_elf.py holds every fact against pyelftools on real binaries.
"""

from __future__ import annotations

import io
import operator
import os
import stat
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, NamedTuple

from .. import targets
from ..errors import InputError

ELF_MAGIC = b"\x7fELF"
_HEAD = 16 << 10  # one read that holds the headers, PT_INTERP, notes and .dynstr of most binaries
_META_CAP = 16 << 20  # most bytes read for one dynamic segment, note segment or string table
_SYMTAB_CAP = 64 << 20
_SCAN_CHUNK = 1 << 20
_PATH_MAX = 4096  # the kernel refuses a PT_INTERP longer than this

PT_LOAD, PT_DYNAMIC, PT_INTERP, PT_NOTE = 1, 2, 3, 4
DT_NULL, DT_NEEDED, DT_STRTAB, DT_STRSZ, DT_SONAME, DT_RPATH, DT_RUNPATH = 0, 1, 5, 10, 14, 15, 29
DT_FLAGS_1, DF_1_PIE = 0x6FFFFFFB, 0x08000000
SHT_SYMTAB, SHT_ARM_ATTRIBUTES = 2, 0x70000003
NT_GNU_ABI_TAG, NT_GNU_BUILD_ID = 1, 3
EM_ARM = 40
PN_XNUM = 0xFFFF

# Strings that glibc's static NSS machinery leaves in a binary even when it is stripped: a service not built
# into libc is loaded at run time as libnss_*.so. (gconv and dlopen strings are not a sign: every static glibc
# binary carries them, so a stripped binary does not say whether it calls iconv_open.)
_RUNTIME_LOADING_MARKERS = (b"/etc/nsswitch.conf", b"libnss_")
NSS_MACHINERY = "NSS"  # what runtime_loading holds when only those strings, not symbol names, were found
# Symbol names that pull that machinery in, read from the symbol table when the binary has one. (dlopen
# itself is not here: static glibc always defines it, used or not.)
_RUNTIME_LOADING_SYMBOLS = frozenset((
    "getaddrinfo", "gethostbyname", "gethostbyname2", "gethostbyaddr", "getnameinfo",
    "getpwnam", "getpwuid", "getpwnam_r", "getpwuid_r", "getgrnam", "getgrgid", "getgrouplist",
    "initgroups", "getservbyname", "getservbyport", "getprotobyname", "iconv_open",
))
# Since glibc 2.34 the files and dns NSS services are part of libc, static builds included: any NSS call links
# in the files service's table of every function it has (_nss_files_* in .symtab). Stripped, what shows is the
# databases that service reads: before 2.34 only libnss_files.so named these paths (the NUL keeps
# /etc/hosts.equiv out). Looked for only in stripped binaries, to keep the scan of the rest as it was.
_NSS_FILES_SYMBOLS = frozenset(("__nss_files_functions", "_nss_files_getpwnam_r", "_nss_files_gethostbyname4_r"))
_NSS_FILES_MARKERS = (b"/etc/hosts\0", b"/etc/ethers\0")
# What a program reads at run time besides libraries, by the strings its library compiles in (found stripped or
# not, glibc or musl): ncurses' terminfo directories, time zone data, a TLS library's CA certificate locations.
TERMINFO_DIRS = ("/usr/share/terminfo", "/lib/terminfo", "/usr/lib/terminfo", "/etc/terminfo")
_TERMINFO_MARKERS = (b"TERMINFO_DIRS", *(d.encode() + b"\0" for d in TERMINFO_DIRS),
                     *(d.encode() + b":" for d in TERMINFO_DIRS))
_TERMINFO_WORD = b"terminfo"  # in every directory marker
_ZONEINFO_MARKERS = (b"/usr/share/zoneinfo",)
# OpenSSL's environment variables, GnuTLS's and others' system bundle; Debian's OPENSSLDIR (its cert.pem)
_CA_MARKERS = (b"SSL_CERT_FILE", b"/etc/ssl/certs")
OPENSSL_DEBIAN_DIR = "/usr/lib/ssl"
_OPENSSL_DIR_MARKER = b"/usr/lib/ssl/cert.pem"  # where Debian's OpenSSL reads its default bundle
# A program that asks its locale's character set (tmux: nl_langinfo(CODESET) must say UTF-8). setlocale is no
# sign: every static glibc program links it. Only a symbol table says so.
_LOCALE_SYMBOLS = frozenset(("nl_langinfo", "nl_langinfo_l"))
_TERMINFO_SYMBOLS = frozenset(("setupterm", "tgetent", "newterm", "initscr"))
_ZONEINFO_SYMBOLS = frozenset(("tzset", "__tzfile_read"))
_RUNTIME_DATA_MARKERS = (*_TERMINFO_MARKERS, *_ZONEINFO_MARKERS, *_CA_MARKERS, _OPENSSL_DIR_MARKER)
READS = ("terminfo", "locale", "ca-certificates", "zoneinfo")  # the kinds of run-time data, in this order
_GLIBC_MARKERS = (b"FATAL: kernel too old", b"GLIBC_PRIVATE", b"GNU C Library")
_MUSL_MARKERS = (b"ld-musl-", b"No error information")
# A stripped static musl program keeps almost no strings of musl's: its start-up code's "/dev/null" (it opens it
# for closed standard descriptors) is one, and means musl only where glibc's markers are absent and the program
# is not Go (whose runtime names /dev/null too and uses no libc; the build-info magic says Go).
_DEV_NULL = b"/dev/null\0"
_GO_BUILDINFO = b"\xff Go buildinf:"

_ABI_TAG_OS = {0: "Linux", 1: "GNU/Hurd", 2: "Solaris", 3: "FreeBSD", 4: "NetBSD", 5: "Syllable"}
_OSABI = {
    0: "SYSV", 1: "HP-UX", 2: "NetBSD", 3: "GNU/Linux", 4: "GNU/Hurd", 6: "Solaris", 7: "AIX", 8: "IRIX",
    9: "FreeBSD", 10: "Tru64", 11: "Modesto", 12: "OpenBSD", 13: "OpenVMS", 14: "NonStop Kernel",
    15: "AROS", 16: "FenixOS", 17: "CloudABI", 53: "Sortix", 64: "ARM EABI", 97: "ARM",
    255: "standalone (embedded)",
}
_E_TYPES = {0: "ET_NONE", 1: "ET_REL", 2: "ET_EXEC", 3: "ET_DYN", 4: "ET_CORE"}
_TYPE_PHRASES = {
    "ET_EXEC": "executable", "ET_DYN": "shared object", "ET_REL": "relocatable object (.o)",
    "ET_CORE": "core dump", "ET_NONE": "file of no type",
}
# .ARM.attributes Tag_CPU_arch -> ARM architecture version ("Addenda to, and Errata in, the ABI for the Arm
# Architecture"): 3-5 are v5T/v5TE/v5TEJ, 6-9 and the v6-M profiles are v6, 10 and v7E-M are v7, 14 on are v8+.
_ARM_CPU_ARCH = {0: 3, 1: 4, 2: 4, 3: 5, 4: 5, 5: 5, 6: 6, 7: 6, 8: 6, 9: 6, 10: 7, 11: 6, 12: 6, 13: 7}
_MACHO_THIN = {b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe"}


@dataclass(frozen=True)
class ElfFacts:
    """What a file is. For non-ELF inputs only path, format, size, mode and describe are set."""

    path: str
    format: str  # elf, empty, directory, script, mach-o, mach-o-universal, pe, data, symlink, special, unreadable
    describe: str  # one phrase a user recognises: "ELF 64-bit LSB executable, amd64", "a script for /bin/sh"
    size: int = 0
    executable: bool = False  # any execute bit in the mode
    script_interpreter: str | None = None
    link: str | None = None  # a symlink's target
    elf_class: int | None = None
    endianness: str | None = None
    machine: str | None = None  # pyelftools' e_machine name, e.g. EM_X86_64
    arch: str | None = None  # OCI architecture, e.g. amd64; None when the table has no match
    variants: tuple[str, ...] = ()  # OCI variants whose CPUs run this code (ARM: from Tag_CPU_arch)
    osabi: str | None = None  # human name of EI_OSABI
    abi_tag_os: str | None = None  # OS named by NT_GNU_ABI_TAG
    min_kernel: str | None = None
    type: str | None = None  # ET_EXEC, ET_DYN, ...
    entry: int | None = None
    interpreter: str | None = None
    needed: tuple[str, ...] = ()
    soname: str | None = None
    rpath: tuple[str, ...] = ()
    runpath: tuple[str, ...] = ()
    has_dynamic: bool = False
    static_pie: bool = False
    stripped: bool | None = None
    build_id: str | None = None
    libc: str | None = None  # glibc, musl, none, unknown
    runtime_loading: tuple[str, ...] = ()  # NSS/iconv calls found in .symtab, or (NSS_MACHINERY,) when stripped
    nss_builtin: bool = False  # glibc's files and dns NSS services are inside the binary (glibc 2.34 and later)
    reads: tuple[str, ...] = ()  # the kinds of run-time data (READS) its libraries read: terminfo, locale...
    data_dirs: tuple[str, ...] = ()  # where it looks for them, as compiled in: terminfo directories, OPENSSLDIR
    arm_eabi: int | None = None
    arm_float_abi: str | None = None  # hard, soft
    arm_arch: int | None = None  # ARM architecture version the code needs (Tag_CPU_arch), e.g. 7
    corrupt: tuple[str, ...] = ()  # why the headers cannot be trusted

    @property
    def is_elf(self) -> bool:
        return self.format == "elf"

    @property
    def type_name(self) -> str:
        return _TYPE_PHRASES.get(self.type or "", self.type or "unknown type")

    @property
    def is_static(self) -> bool:
        return self.interpreter is None and not self.needed


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
    try:
        with open(path, "rb", buffering=0) as fh:
            return read_stream(fh, path, st.st_size, st.st_mode)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None


def read_stream(fh: BinaryIO, path: str, size: int, mode: int = 0o755) -> ElfFacts:
    """Facts about a regular file already open (a file, a BytesIO, a member of an image's tar)."""
    fd = fh.fileno() if isinstance(fh, io.FileIO) else None
    return _facts_from(_Source(fh, size, fd), _Base(path, size, bool(mode & 0o111)))


def _facts_from(src: _Source, base: _Base) -> ElfFacts:
    if src.head[:4] == ELF_MAGIC:
        try:
            return _parse(src, base)
        except (struct.error, ValueError, OverflowError) as exc:  # a record cut short by a lying size
            return _broken(base, f"unreadable ELF headers ({exc})")
    return sniff(src.head, base.path, base.size, base.executable)


def sniff(head: bytes, path: str, size: int, executable: bool) -> ElfFacts:
    """What a non-ELF file is, from its first bytes."""
    fmt, describe, interp = _classify(head)
    corrupt = (f"truncated: the file ends after {size} bytes, inside the ELF identification",) \
        if fmt == "elf" else ()
    return ElfFacts(path=path, format=fmt, describe=describe, size=size, executable=executable,
                    script_interpreter=interp, corrupt=corrupt)


def _classify(head: bytes) -> tuple[str, str, str | None]:
    """(format, phrase, script interpreter) of a file that does not start with a whole ELF identification."""
    if not head:
        return "empty", "an empty file", None
    if head.startswith(b"#!"):
        # The kernel ends the interpreter at a space, tab or newline only: a CR stays part of the name.
        line = head[2:].split(b"\n", 1)[0].lstrip(b" \t")
        interp = line.replace(b"\t", b" ").split(b" ", 1)[0].decode("utf-8", "replace")
        return "script", f"a script for {interp!r}" if "\r" in interp else \
            f"a script for {interp or 'no interpreter'}", interp or None
    if head[:4] in _MACHO_THIN:
        return "mach-o", "a Mach-O binary (macOS)", None
    # 0xcafebabe is also a Java class file; Mach-O universal headers count a few architectures.
    if head[:4] == b"\xca\xfe\xba\xbe" and len(head) >= 8 and int.from_bytes(head[4:8], "big") < 40:
        return "mach-o-universal", "a universal Mach-O binary (macOS)", None
    if head[:2] == b"MZ":
        return "pe", "a PE/COFF binary (Windows .exe or .dll)", None
    if head[:4] == ELF_MAGIC[:len(head)]:
        return "elf", "an ELF file cut short", None
    return "data", "not an executable (no ELF header)", None


@dataclass(frozen=True)
class OtherFile:
    """An entry of a tree that is not an ELF file: what it is, in a phrase (cheap: a tree holds thousands)."""

    path: str
    format: str  # as ElfFacts.format, plus symlink, special and unreadable
    describe: str

    is_elf = False


def walk(root: str) -> Iterator[ElfFacts | OtherFile]:
    """Every entry under root except directories, depth first in name order: ElfFacts for ELF files,
    OtherFile for the rest. Symlinks are not followed. Paths are relative to root. Never raises for an entry."""
    try:
        top = _listing(root)
    except OSError as exc:
        raise InputError(f"{root}: cannot read ({exc.strerror})") from None
    # The directories open in the walk, each with the entries it has left: the loop reads the top one, and a
    # subdirectory it meets goes on top, to be read before the rest. This runs once per entry of a whole root
    # filesystem, so it is flat: no call per entry that is not an ELF file.
    stack: list[tuple[str, Iterator[os.DirEntry]]] = [("", iter(top))]
    while stack:
        prefix, entries = stack[-1]
        for entry in entries:
            rel = prefix + entry.name
            try:
                if entry.is_file(follow_symlinks=False):  # most entries: tested first
                    # os.open/os.read, not open(): no file object for the thousands of files that are not ELF
                    fd = os.open(entry.path, _OPEN_FLAGS)
                    try:
                        head = os.read(fd, 64)
                        if head[:4] == ELF_MAGIC:
                            item: ElfFacts | OtherFile = _elf_entry(fd, rel)
                        else:
                            fmt, describe, _ = _classify(head)
                            item = OtherFile(rel, fmt, describe) if fmt != "elf" else _elf_entry(fd, rel)
                    finally:
                        os.close(fd)
                    yield item
                elif entry.is_dir(follow_symlinks=False):
                    try:
                        inner = _listing(entry.path)
                    except OSError as exc:
                        yield OtherFile(rel, "unreadable", f"cannot read this directory ({exc.strerror})")
                        continue
                    stack.append((rel + "/", iter(inner)))
                    break
                elif entry.is_symlink():
                    yield OtherFile(rel, "symlink", f"a symbolic link to {os.readlink(entry.path)}")
                else:
                    yield OtherFile(rel, "special", "a device, FIFO or socket")
            except OSError as exc:
                yield OtherFile(rel, "unreadable", f"cannot read ({exc.strerror})")
        else:
            stack.pop()  # every entry of this directory seen


_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)  # never hang on a FIFO
_by_name = operator.attrgetter("name")


def _listing(directory: str) -> list[os.DirEntry]:
    with os.scandir(directory) as it:
        return sorted(it, key=_by_name)


def _elf_entry(fd: int, rel: str) -> ElfFacts:
    st = os.fstat(fd)
    return _facts_from(_Source(None, st.st_size, fd), _Base(rel, st.st_size, bool(st.st_mode & 0o111)))


class _Base(NamedTuple):  # NamedTuple, not dataclass, for these internal records: cheaper to import
    path: str
    size: int
    executable: bool


def _broken(base: _Base, reason: str, **known: object) -> ElfFacts:
    return ElfFacts(path=base.path, format="elf", describe="an ELF file with corrupt headers", size=base.size,
                    executable=base.executable, corrupt=(reason,), **known)  # type: ignore[arg-type]


class _Source:
    """Random access to a file's bytes; the first 4 KiB are read once and served from memory."""

    def __init__(self, fh: BinaryIO | None, size: int, fd: int | None = None) -> None:
        self.fh = fh
        self.size = size
        self._fd = fd
        if fd is not None:
            self.head = os.pread(fd, _HEAD, 0)
        else:
            assert fh is not None
            fh.seek(0)
            self.head = fh.read(_HEAD)

    def read_at(self, offset: int, count: int) -> bytes:
        """Up to count bytes at offset: fewer at the end of the file, none outside it."""
        if offset < 0 or count <= 0 or offset >= self.size:
            return b""
        end = min(offset + count, self.size)
        if end <= len(self.head):
            return self.head[offset:end]
        if self._fd is not None:
            return os.pread(self._fd, end - offset, offset)
        assert self.fh is not None
        self.fh.seek(offset)
        return self.fh.read(end - offset)


class _Layout(NamedTuple):
    ehdr: struct.Struct
    phdr: struct.Struct
    shdr: struct.Struct
    dyn: struct.Struct
    sym: struct.Struct
    word: struct.Struct
    note: struct.Struct  # namesz, descsz, type
    abi_tag: struct.Struct  # os, major, minor, tiny
    sh_type: struct.Struct  # only sh_type of a section header: all that most files need


def _layout(elf_class: int, order: str) -> _Layout:
    words = (struct.Struct(order + "I"), struct.Struct(order + "III"), struct.Struct(order + "IIII"))
    if elf_class == 64:
        return _Layout(struct.Struct(order + "HHIQQQIHHHHHH"), struct.Struct(order + "IIQQQQQQ"),
                       struct.Struct(order + "IIQQQQIIQQ"), struct.Struct(order + "qQ"),
                       struct.Struct(order + "IBBHQQ"), *words, struct.Struct(order + "4xI56x"))
    return _Layout(struct.Struct(order + "HHIIIIIHHHHHH"), struct.Struct(order + "IIIIIIII"),
                   struct.Struct(order + "IIIIIIIIII"), struct.Struct(order + "iI"),
                   struct.Struct(order + "IIIBBH"), *words, struct.Struct(order + "4xI32x"))


_LAYOUTS = {(cls, endian): _layout(cls, "<" if endian == "little" else ">")
            for cls in (32, 64) for endian in ("little", "big")}


class _Reading:
    """One ELF file being read: its bytes, its ELF header's fields (set by _header), and the problems found so far,
    in the order the kernel and loader meet them. Slots, not a NamedTuple: cheaper to build and read, per file."""

    __slots__ = ("src", "base", "lay", "corrupt", "elf_class", "endianness", "etype", "machine_no", "machine",
                 "entry", "flags", "phoff", "phnum", "phentsize", "shoff", "shnum", "shentsize")
    elf_class: int
    endianness: str
    etype: str  # ET_EXEC, ET_DYN, ...
    machine_no: int
    machine: str  # pyelftools' e_machine name
    entry: int
    flags: int
    phoff: int
    phnum: int
    phentsize: int
    shoff: int
    shnum: int
    shentsize: int

    def __init__(self, src: _Source, base: _Base, lay: _Layout) -> None:
        self.src = src
        self.base = base
        self.lay = lay
        self.corrupt: list[str] = []


def _parse(src: _Source, base: _Base) -> ElfFacts:
    """One ELF file's facts, its headers read in the order the kernel reads them."""
    f = _header(src, base)
    if not isinstance(f, _Reading):  # too broken to read on
        return f
    load, interp, dynamic, notes = _segments(f)
    sections = _sections(f)
    has_symtab = SHT_SYMTAB in sections.types

    interpreter = _interpreter(f, interp) if interp else None
    dyn = _dynamic(f, dynamic, load) if dynamic else _Dynamic()
    build_id, abi_tag_os, min_kernel = _notes(f, notes)

    etype, elf_class, endianness, machine = f.etype, f.elf_class, f.endianness, f.machine
    static = interpreter is None and not dyn.needed
    loadable = etype in ("ET_EXEC", "ET_DYN") and not f.corrupt
    symbols = _symbol_names(f, sections) if static and loadable and has_symtab else set()
    markers = _scan_markers(f, () if has_symtab else _NSS_FILES_MARKERS) if static and loadable else set()
    # A shared library also lacks PT_INTERP; a static-pie says DF_1_PIE, or has an entry and no soname.
    static_pie = (etype == "ET_DYN" and static and dynamic is not None
                  and (dyn.pie_flag or (f.entry != 0 and dyn.soname is None)))

    matches = targets.for_elf(elf_class, endianness, machine)
    arch = matches[0].architecture if matches else None
    arm_eabi = arm_float = arm_arch = None
    if f.machine_no == EM_ARM:
        arm_eabi, arm_float, arm_arch = _arm(f, sections)
        if arm_arch is not None:  # every ARM variant whose CPUs run this code, not only the table's match
            matches = targets.arm_targets_running(arm_arch)
    osabi_byte = src.head[7]
    return ElfFacts(
        path=base.path, format="elf", size=base.size, executable=base.executable,
        describe=_describe(elf_class, endianness, etype, interpreter, static_pie, arch or machine),
        elf_class=elf_class, endianness=endianness, machine=machine, arch=arch,
        variants=tuple(t.variant for t in matches if t.variant),
        osabi=_OSABI.get(osabi_byte, f"OS/ABI {osabi_byte}"), abi_tag_os=abi_tag_os, min_kernel=min_kernel,
        type=etype, entry=f.entry, interpreter=interpreter, needed=dyn.needed, soname=dyn.soname,
        rpath=dyn.rpath, runpath=dyn.runpath, has_dynamic=dynamic is not None, static_pie=static_pie,
        stripped=not has_symtab, build_id=build_id,
        libc=_libc(interpreter, dyn.needed, markers, symbols) if not f.corrupt else "unknown",
        runtime_loading=_runtime_loading(symbols, markers), nss_builtin=_nss_builtin(symbols, markers),
        reads=_reads(symbols, markers), data_dirs=_data_dirs(markers),
        arm_eabi=arm_eabi, arm_float_abi=arm_float, arm_arch=arm_arch, corrupt=tuple(f.corrupt))


def _header(src: _Source, base: _Base) -> _Reading | ElfFacts:
    """The ELF identification and header; for a file too broken to read on, its facts instead."""
    head = src.head
    if len(head) < 16:
        return _broken(base, f"truncated: the file ends after {base.size} bytes, inside the ELF header")
    cls_byte, data_byte = head[4], head[5]
    if cls_byte not in (1, 2):
        return _broken(base, f"corrupt ELF header: class byte {cls_byte} is neither 32-bit nor 64-bit")
    if data_byte not in (1, 2):
        return _broken(base, f"corrupt ELF header: data byte {data_byte} is neither LSB nor MSB")
    elf_class = 64 if cls_byte == 2 else 32
    endianness = "little" if data_byte == 1 else "big"
    lay = _LAYOUTS[(elf_class, endianness)]
    header_size = 16 + lay.ehdr.size
    if base.size < header_size or len(head) < header_size:
        return _broken(base, f"truncated: the file ends after {base.size} bytes, inside the "
                             f"{header_size}-byte ELF header", elf_class=elf_class, endianness=endianness)
    f = _Reading(src, base, lay)
    f.elf_class, f.endianness = elf_class, endianness
    (etype_no, f.machine_no, _version, f.entry, f.phoff, f.shoff, f.flags, _ehsize, f.phentsize, phnum,
     f.shentsize, f.shnum, _shstrndx) = lay.ehdr.unpack_from(head, 16)
    f.etype = _E_TYPES.get(etype_no, f"0x{etype_no:x}")
    f.machine = targets.machine_name(f.machine_no) or _other_machine_name(f.machine_no)
    if phnum == PN_XNUM:  # more than 65534 program headers: the count is in section 0's sh_info
        first = src.read_at(f.shoff, lay.shdr.size) if f.shoff else b""
        phnum = lay.shdr.unpack(first)[7] if len(first) == lay.shdr.size else 0
    f.phnum = phnum
    return f


def _past_end(f: _Reading, what: str, end: int) -> None:
    f.corrupt.append(f"{what} ends at byte {end:,}, past the end of the file ({f.base.size:,} bytes): "
                     "truncated or corrupt")


def _segments(f: _Reading) -> tuple[list[tuple[int, int, int]], tuple[int, int] | None, tuple[int, int] | None,
                                    list[tuple[int, int, int]]]:
    """PT_LOAD as [(offset, vaddr, filesz)], PT_INTERP and PT_DYNAMIC as (offset, filesz) or None, and
    PT_NOTE as [(offset, filesz, align)]; segments reaching past the end of the file are noted as corrupt."""
    lay, etype, phoff, phnum, phentsize = f.lay, f.etype, f.phoff, f.phnum, f.phentsize
    load: list[tuple[int, int, int]] = []
    interp: tuple[int, int] | None = None
    dynamic: tuple[int, int] | None = None
    notes: list[tuple[int, int, int]] = []
    if phnum == 0:
        if etype in ("ET_EXEC", "ET_DYN"):
            f.corrupt.append("no program headers: there is nothing the kernel could load")
        return load, interp, dynamic, notes
    if phentsize != lay.phdr.size:
        f.corrupt.append(f"corrupt ELF header: program header entries are {phentsize} bytes, "
                         f"not {lay.phdr.size}")
        return load, interp, dynamic, notes
    end = phoff + phnum * phentsize
    if end > f.base.size:
        _past_end(f, "the program header table", end)
        return load, interp, dynamic, notes
    is64 = lay.phdr.size == 56
    for rec in lay.phdr.iter_unpack(f.src.read_at(phoff, phnum * phentsize)):
        if is64:
            ptype, offset, vaddr, filesz, align = rec[0], rec[2], rec[3], rec[5], rec[7]
        else:
            ptype, offset, vaddr, filesz, align = rec[0], rec[1], rec[2], rec[4], rec[7]
        if ptype == PT_LOAD:
            if filesz and offset + filesz > f.base.size:
                if not any("PT_LOAD" in c for c in f.corrupt):
                    _past_end(f, "a PT_LOAD segment", offset + filesz)
            load.append((offset, vaddr, filesz))
        elif ptype in (PT_INTERP, PT_DYNAMIC, PT_NOTE):
            name = {PT_INTERP: "PT_INTERP", PT_DYNAMIC: "PT_DYNAMIC", PT_NOTE: "a PT_NOTE segment"}[ptype]
            if offset + filesz > f.base.size:
                _past_end(f, name, offset + filesz)
            elif ptype == PT_INTERP and interp is None:  # the kernel uses the first one
                interp = (offset, filesz)
            elif ptype == PT_DYNAMIC and dynamic is None:
                dynamic = (offset, filesz)
            elif ptype == PT_NOTE:
                notes.append((offset, filesz, align))
    if etype in ("ET_EXEC", "ET_DYN") and not load:
        f.corrupt.append("no PT_LOAD segment: there is nothing the kernel could load")
    return load, interp, dynamic, notes


def _sections(f: _Reading) -> _Sections:
    lay, shoff, shnum, shentsize = f.lay, f.shoff, f.shnum, f.shentsize
    if not shoff or shentsize != lay.shdr.size:
        return _Sections(lay, b"")
    if shnum == 0:  # 65280 sections or more: the count is in section 0's sh_size
        first = f.src.read_at(shoff, shentsize)
        shnum = lay.shdr.unpack(first)[5] if len(first) == shentsize else 0
        if not shnum or shnum * shentsize > _META_CAP:
            return _Sections(lay, b"")
    end = shoff + shnum * shentsize
    if end > f.base.size:
        _past_end(f, "the section header table", end)
        return _Sections(lay, b"")
    return _Sections(lay, f.src.read_at(shoff, shnum * shentsize))


def _interpreter(f: _Reading, interp: tuple[int, int]) -> str:
    offset, filesz = interp
    data = f.src.read_at(offset, min(filesz, _PATH_MAX + 1))
    if filesz > _PATH_MAX or filesz < 2 or b"\0" not in data:
        f.corrupt.append(f"corrupt PT_INTERP ({filesz} bytes, not a NUL-terminated path): the kernel "
                         "refuses to run it")
    return data.split(b"\0", 1)[0].decode("utf-8", "replace") or "(empty)"


def _dynamic(f: _Reading, dynamic: tuple[int, int], load: list[tuple[int, int, int]]) -> _Dynamic:
    lay = f.lay
    offset, filesz = dynamic
    count = min(filesz, _META_CAP) // lay.dyn.size
    data = f.src.read_at(offset, count * lay.dyn.size)
    strtab = strsz = None
    pie = False
    wanted: list[tuple[int, int]] = []  # (tag, string offset), in file order
    for tag, val in lay.dyn.iter_unpack(data):
        if tag == DT_NULL:
            break
        if tag in (DT_NEEDED, DT_SONAME, DT_RPATH, DT_RUNPATH):
            wanted.append((tag, val))
        elif tag == DT_STRTAB:
            strtab = val
        elif tag == DT_STRSZ:
            strsz = val
        elif tag == DT_FLAGS_1:
            pie = bool(val & DF_1_PIE)
    out = _Dynamic(pie_flag=pie)
    if not wanted:
        return out
    strings = b""
    stroff = _vaddr_to_offset(strtab, load) if strtab is not None else None
    if stroff is None:
        f.corrupt.append("corrupt PT_DYNAMIC: DT_STRTAB does not lie in a loaded segment, so the "
                         "loader cannot read the names of the libraries it needs")
    else:
        strings = f.src.read_at(stroff, min(strsz if strsz else _META_CAP, _META_CAP))
    for tag, val in wanted:
        end = strings.find(b"\0", val) if val < len(strings) else -1
        if end < 0:
            if stroff is not None:
                f.corrupt.append(f"corrupt PT_DYNAMIC: a name at string offset {val} lies outside "
                                 "the string table")
            name = "(unreadable)"
        else:
            name = strings[val:end].decode("utf-8", "replace")
        if tag == DT_NEEDED:
            out.needed += (name,)
        elif tag == DT_SONAME:
            out.soname = name
        elif tag == DT_RPATH:
            out.rpath += tuple(p for p in name.split(":") if p)
        else:
            out.runpath += tuple(p for p in name.split(":") if p)
    return out


def _notes(f: _Reading, notes: list[tuple[int, int, int]]) -> tuple[str | None, str | None, str | None]:
    lay = f.lay
    build_id = abi_os = min_kernel = None
    for offset, filesz, align in notes:
        data = f.src.read_at(offset, min(filesz, _META_CAP))
        step = 8 if align == 8 else 4
        pos = 0
        while pos + 12 <= len(data):
            namesz, descsz, ntype = lay.note.unpack_from(data, pos)
            name_at = pos + 12
            desc_at = _align(name_at + namesz, step)
            end = desc_at + descsz
            if end > len(data):
                break
            if data[name_at:name_at + namesz].rstrip(b"\0") == b"GNU":
                desc = data[desc_at:end]
                if ntype == NT_GNU_BUILD_ID and desc:
                    build_id = desc.hex()
                elif ntype == NT_GNU_ABI_TAG and descsz >= 16:
                    os_no, major, minor, tiny = lay.abi_tag.unpack_from(desc)
                    abi_os = _ABI_TAG_OS.get(os_no, f"OS {os_no}")
                    min_kernel = f"{major}.{minor}.{tiny}"
            pos = _align(end, step)
    return build_id, abi_os, min_kernel


def _symbol_names(f: _Reading, sections: _Sections) -> set[str]:
    """Names in .symtab (static binaries have no .dynsym)."""
    sym = f.lay.sym
    for index, sh_type in enumerate(sections.types):
        sh = sections.entry(index)
        if sh_type != SHT_SYMTAB or not 0 <= sh[6] < len(sections.types):
            continue
        strtab = sections.entry(sh[6])
        names = f.src.read_at(strtab[4], min(strtab[5], _SYMTAB_CAP))
        table = f.src.read_at(sh[4], min(sh[5], _SYMTAB_CAP))
        table = table[:len(table) - len(table) % sym.size]
        out = set()
        for rec in sym.iter_unpack(table):
            start = rec[0]
            if 0 < start < len(names):
                end = names.find(b"\0", start)
                out.add(names[start:end if end >= 0 else len(names)].decode("utf-8", "replace"))
        return out
    return set()


def _scan_markers(f: _Reading, extra: tuple[bytes, ...] = ()) -> set[bytes]:
    """Which known byte strings occur in the file, read in chunks so a huge binary stays cheap in memory."""
    wanted = [*_RUNTIME_LOADING_MARKERS, *_RUNTIME_DATA_MARKERS, *extra, *_GLIBC_MARKERS, *_MUSL_MARKERS, _DEV_NULL,
              _GO_BUILDINFO]
    overlap = max(len(m) for m in wanted)
    found: set[bytes] = set()
    tail = b""
    offset = 0
    while len(found) < len(wanted) and offset < f.base.size:
        chunk = f.src.read_at(offset, _SCAN_CHUNK)
        if not chunk:
            break
        offset += len(chunk)
        window = tail + chunk
        # the eight terminfo directory markers are looked for only where the word is: one pass, not eight, over
        # the many programs that have none
        terminfo = _TERMINFO_WORD in window
        found.update(m for m in wanted if m not in found and (terminfo or _TERMINFO_WORD not in m) and m in window)
        tail = window[-overlap:]
    return found


def _runtime_loading(symbols: set[str], markers: set[bytes]) -> tuple[str, ...]:
    """The NSS/iconv calls named in the symbol table; with no symbols, NSS_MACHINERY when its strings are there."""
    if symbols:
        calls = _RUNTIME_LOADING_SYMBOLS & symbols
        # getpwnam brings getpwnam_r along: name the call the program made
        return tuple(sorted(c for c in calls if not (c.endswith("_r") and c[:-2] in calls)))
    return (NSS_MACHINERY,) if any(m in markers for m in _RUNTIME_LOADING_MARKERS) else ()


def _reads(symbols: set[str], markers: set[bytes]) -> tuple[str, ...]:
    """The kinds of run-time data the program's libraries read, in READS order."""
    terminfo = not _TERMINFO_SYMBOLS.isdisjoint(symbols) or any(m in markers for m in _TERMINFO_MARKERS)
    found = {
        "terminfo": terminfo,
        # stripped, nl_langinfo leaves no string; ncurses calls it itself (is the locale UTF-8?), so its strings do
        "locale": not _LOCALE_SYMBOLS.isdisjoint(symbols) or (not symbols and terminfo),
        "ca-certificates": any(m in markers for m in _CA_MARKERS),
        "zoneinfo": not _ZONEINFO_SYMBOLS.isdisjoint(symbols) or any(m in markers for m in _ZONEINFO_MARKERS),
    }
    return tuple(kind for kind in READS if found[kind])


def _data_dirs(markers: set[bytes]) -> tuple[str, ...]:
    """The terminfo directories (and Debian's OPENSSLDIR) compiled into the program, in TERMINFO_DIRS order."""
    dirs = [d for d in TERMINFO_DIRS if d.encode() + b"\0" in markers or d.encode() + b":" in markers]
    return (*dirs, OPENSSL_DEBIAN_DIR) if _OPENSSL_DIR_MARKER in markers else tuple(dirs)


def _nss_builtin(symbols: set[str], markers: set[bytes]) -> bool:
    """Whether the NSS files (and with it dns) service is linked in: by its functions, or, stripped, by the
    databases it names next to the NSS machinery's own strings."""
    if symbols:
        return not _NSS_FILES_SYMBOLS.isdisjoint(symbols)
    return (all(m in markers for m in _NSS_FILES_MARKERS)
            and any(m in markers for m in _RUNTIME_LOADING_MARKERS))


def _arm(f: _Reading, sections: _Sections) -> tuple[int, str | None, int | None]:
    """(EABI version, float ABI, architecture version) of an ARM ELF: from e_flags, then .ARM.attributes."""
    flags = f.flags
    arm_float = "hard" if flags & 0x400 else "soft" if flags & 0x200 else None
    cpu_arch, vfp_args = _arm_attributes(f, sections)
    arm_arch = _ARM_CPU_ARCH.get(cpu_arch, 8) if cpu_arch is not None else None
    if arm_float is None and vfp_args is not None:
        arm_float = "hard" if vfp_args == 1 else "soft"
    return (flags >> 24) & 0xFF, arm_float, arm_arch


def _arm_attributes(f: _Reading, sections: _Sections) -> tuple[int | None, int | None]:
    """(Tag_CPU_arch, Tag_ABI_VFP_args) from the "aeabi" subsection of .ARM.attributes."""
    if SHT_ARM_ATTRIBUTES not in sections.types:
        return None, None
    sec = sections.entry(sections.types.index(SHT_ARM_ATTRIBUTES))
    data = f.src.read_at(sec[4], min(sec[5], 1 << 16))
    if data[:1] != b"A":
        return None, None
    word = f.lay.word
    cpu_arch = vfp_args = None
    pos = 1
    while pos + 4 <= len(data):
        length = word.unpack_from(data, pos)[0]
        if length < 5 or pos + length > len(data):
            break
        vendor, _, body = data[pos + 4:pos + length].partition(b"\0")
        if vendor == b"aeabi":
            sub = 0
            while sub + 5 <= len(body):
                tag, size = body[sub], word.unpack_from(body, sub + 1)[0]
                if size < 5:
                    break
                if tag == 1:  # Tag_File: attributes of the whole file
                    found = _arm_file_attributes(body[sub + 5:sub + size])
                    cpu_arch = found.get(6, cpu_arch)
                    vfp_args = found.get(28, vfp_args)
                sub += size
        pos += length
    return cpu_arch, vfp_args


class _Sections:
    """The section header table: every sh_type at once, a whole entry only when asked for."""

    def __init__(self, lay: _Layout, table: bytes) -> None:
        self._lay = lay
        self._table = table
        self.types = [t for (t,) in lay.sh_type.iter_unpack(table)]

    def entry(self, index: int) -> tuple:
        """(name, type, flags, addr, offset, size, link, info, addralign, entsize)"""
        return self._lay.shdr.unpack_from(self._table, index * self._lay.shdr.size)


@dataclass
class _Dynamic:
    needed: tuple[str, ...] = ()
    soname: str | None = None
    rpath: tuple[str, ...] = ()
    runpath: tuple[str, ...] = ()
    pie_flag: bool = False


def _arm_file_attributes(data: bytes) -> dict[int, int]:
    """Integer attributes of an ARM EABI attribute list; string-valued ones are skipped."""
    out: dict[int, int] = {}
    pos = 0
    while pos < len(data):
        tag, pos = _uleb128(data, pos)
        if tag in (4, 5, 67) or (tag > 32 and tag % 2 == 1):  # NUL-terminated string values
            end = data.find(b"\0", pos)
            if end < 0:
                break
            pos = end + 1
        elif tag == 32:  # Tag_compatibility: a number, then a string
            _, pos = _uleb128(data, pos)
            end = data.find(b"\0", pos)
            if end < 0:
                break
            pos = end + 1
        else:
            value, pos = _uleb128(data, pos)
            out[tag] = value
    return out


def _uleb128(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data):
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80 or shift > 63:
            break
    return value, pos if pos <= len(data) else len(data)


def _align(value: int, step: int) -> int:
    return (value + step - 1) & ~(step - 1)


def _vaddr_to_offset(addr: int, load: list[tuple[int, int, int]]) -> int | None:
    for offset, vaddr, filesz in load:
        if vaddr <= addr < vaddr + filesz:
            return addr - vaddr + offset
    return None


def _describe(elf_class: int, endianness: str, etype: str, interpreter: str | None, static_pie: bool,
              machine: str) -> str:
    if etype == "ET_DYN" and interpreter:
        kind = "pie executable"
    elif static_pie:
        kind = "static-pie executable"
    else:
        kind = _TYPE_PHRASES.get(etype, f"file of type {etype}")
    return f"ELF {elf_class}-bit {'LSB' if endianness == 'little' else 'MSB'} {kind}, {machine}"


def _other_machine_name(number: int) -> str:
    """pyelftools' name for a machine outside the table (rare, so its import cost is paid only then)."""
    from elftools.elf.enums import ENUM_E_MACHINE

    for name, value in ENUM_E_MACHINE.items():
        if value == number and name != "_default_":
            return name
    return f"e_machine {number}"


def _libc(interpreter: str | None, needed: tuple[str, ...], markers: set[bytes], symbols: set[str]) -> str:
    if interpreter and "ld-musl" in interpreter or any("musl" in n for n in needed):
        return "musl"
    if interpreter and "ld-linux" in interpreter or "libc.so.6" in needed:
        return "glibc"
    if any(m in markers for m in _GLIBC_MARKERS) or "__libc_start_call_main" in symbols:
        return "glibc"
    if any(m in markers for m in _MUSL_MARKERS) or "__init_libc" in symbols:
        return "musl"
    if _GO_BUILDINFO in markers:
        return "none"
    if _DEV_NULL in markers and not symbols:
        return "musl"
    if symbols and not any(s.startswith("__libc") for s in symbols):
        return "none"
    return "unknown"
