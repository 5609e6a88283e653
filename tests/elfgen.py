"""Writes test data: small, well-formed ELF files for identities the host's gcc cannot produce (other OSes
and architectures, ARM ABI flags, cores), byte for byte as the gABI lays them out, and filesystem tars as
`docker export` writes them. Not mocks: verify reads these exactly as it reads gcc's output and an engine's
export, and tests/unit/test_elf.py checks the ELF files with pyelftools."""

from __future__ import annotations

import io
import struct
import tarfile
from dataclasses import dataclass, field

EM = {"x86_64": 62, "aarch64": 183, "arm": 40, "s390": 22, "386": 3, "riscv": 243, "sparcv9": 43, "ppc64": 21}


@dataclass
class Spec:
    elf_class: int = 64
    little: bool = True
    machine: int = EM["x86_64"]
    etype: int = 2  # ET_EXEC
    osabi: int = 0
    flags: int = 0
    entry: int = 0x401000
    interp: str | None = None
    needed: tuple[str, ...] = ()
    soname: str | None = None
    rpath: str | None = None
    runpath: str | None = None
    pie_flag: bool = False
    dynamic: bool = False  # a PT_DYNAMIC even with no names (static-pie)
    abi_tag: tuple[int, int, int, int] | None = (0, 3, 2, 0)  # os, major, minor, tiny
    build_id: bytes | None = bytes(range(20))
    symbols: tuple[str, ...] | None = None  # a .symtab with these names (None: stripped)
    arm_attributes: bytes | None = None
    payload: bytes = b"\x90" * 64  # stands in for code
    strings: tuple[str, ...] = ()  # NUL-terminated after the code, as a libc's .rodata holds them
    extra_notes: list[tuple[bytes, int, bytes]] = field(default_factory=list)


def arm_attributes(cpu_arch: int, vfp_args: int | None = None) -> bytes:
    """An .ARM.attributes section body: Tag_conformance, Tag_CPU_arch and optionally Tag_ABI_VFP_args."""
    attrs = bytes([67]) + b"2.09\0" + bytes([6, cpu_arch]) + (bytes([28, vfp_args]) if vfp_args is not None else b"")
    file_sub = bytes([1]) + struct.pack("<I", 5 + len(attrs)) + attrs
    vendor = b"aeabi\0" + file_sub
    return b"A" + struct.pack("<I", 4 + len(vendor)) + vendor


def build(spec: Spec) -> bytes:
    e = "<" if spec.little else ">"
    is64 = spec.elf_class == 64
    ehsize, phentsize, shentsize = (64, 56, 64) if is64 else (52, 32, 40)
    base = 0x400000 if spec.etype == 2 else 0
    align = 8 if is64 else 4

    def pad(buf: bytearray, to: int = align) -> None:
        buf.extend(b"\0" * (-len(buf) % to))

    # body: everything after the headers, built first so that offsets are known
    has_dyn = bool(spec.needed or spec.soname or spec.rpath or spec.runpath or spec.dynamic or spec.pie_flag)
    nphdr = 1 + (spec.interp is not None) + has_dyn + 1  # LOAD, INTERP, DYNAMIC, NOTE
    body_at = ehsize + nphdr * phentsize
    body = bytearray()

    def at() -> int:
        return body_at + len(body)

    interp_off = at()
    if spec.interp is not None:
        body.extend(spec.interp.encode() + b"\0")
        pad(body)
    notes = bytearray()
    note_list = list(spec.extra_notes)
    if spec.abi_tag:
        note_list.append((b"GNU\0", 1, struct.pack(e + "IIII", *spec.abi_tag)))
    if spec.build_id:
        note_list.append((b"GNU\0", 3, spec.build_id))
    for name, ntype, desc in note_list:
        notes.extend(struct.pack(e + "III", len(name), len(desc), ntype) + name)
        pad(notes, 4)
        notes.extend(desc)
        pad(notes, 4)
    note_off = at()
    body.extend(notes)
    pad(body)
    dynstr = bytearray(b"\0")
    dyn_entries: list[tuple[int, int]] = []

    def string(text: str) -> int:
        off = len(dynstr)
        dynstr.extend(text.encode() + b"\0")
        return off

    for lib in spec.needed:
        dyn_entries.append((1, string(lib)))
    if spec.soname:
        dyn_entries.append((14, string(spec.soname)))
    if spec.rpath:
        dyn_entries.append((15, string(spec.rpath)))
    if spec.runpath:
        dyn_entries.append((29, string(spec.runpath)))
    dynstr_off = at()
    if has_dyn:
        body.extend(dynstr)
        pad(body)
    dyn_entries += [(5, base + dynstr_off), (10, len(dynstr))]
    if spec.pie_flag:
        dyn_entries.append((0x6FFFFFFB, 0x08000000))
    dyn_entries.append((0, 0))
    dyn_fmt = e + ("qQ" if is64 else "iI")
    dynamic = b"".join(struct.pack(dyn_fmt, t, v) for t, v in dyn_entries)
    dyn_off = at()
    if has_dyn:
        body.extend(dynamic)
    code_off = at()
    body.extend(spec.payload)
    for text in spec.strings:
        body.extend(text.encode() + b"\0")
    pad(body)

    # sections (only when there is something a reader looks at: a symbol table, ARM attributes)
    sections: list[tuple[str, int, int, int, int, int]] = []  # name, type, offset, size, link, entsize
    if spec.symbols is not None:
        strtab = bytearray(b"\0")
        sym_fmt = e + ("IBBHQQ" if is64 else "IIIBBH")
        syms = bytearray(struct.calcsize(sym_fmt))
        for name in spec.symbols:
            off = len(strtab)
            strtab.extend(name.encode() + b"\0")
            fields = (off, 0x12, 0, 1, base + code_off, 0) if is64 else (off, base + code_off, 0, 0x12, 0, 1)
            syms.extend(struct.pack(sym_fmt, *fields))
        sym_off = at()
        body.extend(syms)
        str_off = at()
        body.extend(strtab)
        pad(body)
        # link of .symtab -> index of .strtab (null section is 0, .symtab 1, .strtab 2)
        sections += [(".symtab", 2, sym_off, len(syms), 2, struct.calcsize(sym_fmt)),
                     (".strtab", 3, str_off, len(strtab), 0, 0)]
    if spec.arm_attributes is not None:
        attr_off = at()
        body.extend(spec.arm_attributes)
        pad(body)
        sections.append((".ARM.attributes", 0x70000003, attr_off, len(spec.arm_attributes), 0, 0))
    shoff = shnum = shstrndx = 0
    if sections:
        shstr = bytearray(b"\0")
        names = []
        for name, *_ in sections + [(".shstrtab",)]:  # type: ignore[list-item]
            names.append(len(shstr))
            shstr.extend(name.encode() + b"\0")
        shstr_off = at()
        body.extend(shstr)
        pad(body)
        sections.append((".shstrtab", 3, shstr_off, len(shstr), 0, 0))
        shoff = at()
        shnum = len(sections) + 1
        shstrndx = shnum - 1
        sh_fmt = e + ("IIQQQQIIQQ" if is64 else "IIIIIIIIII")
        body.extend(b"\0" * shentsize)
        for (_name, stype, off, size, link, entsize), name_off in zip(sections, names, strict=True):
            info = 1 if stype == 2 else 0  # .symtab: index of the first global symbol
            body.extend(struct.pack(sh_fmt, name_off, stype, 0, 0, off, size, link, info, 1, entsize))

    total = body_at + len(body)
    ph_fmt = e + ("IIQQQQQQ" if is64 else "IIIIIIII")

    def phdr(ptype: int, off: int, size: int, palign: int, pflags: int = 4) -> bytes:
        if is64:
            return struct.pack(ph_fmt, ptype, pflags, off, base + off, base + off, size, size, palign)
        return struct.pack(ph_fmt, ptype, off, base + off, base + off, size, size, pflags, palign)

    phdrs = phdr(1, 0, total, 0x1000, 5)
    if spec.interp is not None:
        phdrs += phdr(3, interp_off, len(spec.interp) + 1, 1)
    if has_dyn:
        phdrs += phdr(2, dyn_off, len(dynamic), align, 6)
    phdrs += phdr(4, note_off, len(notes), 4)

    ident = b"\x7fELF" + bytes([2 if is64 else 1, 1 if spec.little else 2, 1, spec.osabi]) + b"\0" * 8
    eh_fmt = e + ("HHIQQQIHHHHHH" if is64 else "HHIIIIIHHHHHH")
    header = ident + struct.pack(eh_fmt, spec.etype, spec.machine, 1, spec.entry, ehsize, shoff, spec.flags,
                                 ehsize, phentsize, nphdr, shentsize if sections else 0, shnum, shstrndx)
    out = header + phdrs + bytes(body)
    assert len(out) == total
    return out


def image_tar(files: dict[str, bytes | str | tuple[bytes, int]]) -> io.BytesIO:
    """A filesystem tar as `docker export` writes it: bytes are files (mode 0755), (bytes, mode) files with that
    mode, str values symlink targets, and a path ending in / a directory."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path, content in files.items():
            info = tarfile.TarInfo(path.rstrip("/"))
            if path.endswith("/"):
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif isinstance(content, str):
                info.type, info.linkname = tarfile.SYMTYPE, content
                tar.addfile(info)
            else:
                data, mode = content if isinstance(content, tuple) else (content, 0o755)
                info.size, info.mode = len(data), mode
                tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf
