"""check/elf.py's facts, held against pyelftools on real binaries, and what it says about files that are not ELF."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest

from tests import elfgen
from tests.conftest import gcc
from toolkit.check import elf

HOST_DIRS = ("/usr/bin", "/usr/lib/x86_64-linux-gnu")


def reference(path: Path) -> dict:
    """The same facts, read the slow idiomatic way with pyelftools."""
    from elftools.elf.elffile import ELFFile

    with open(path, "rb") as fh:
        e = ELFFile(fh)
        out: dict = {"type": e.header["e_type"], "machine": e.header["e_machine"], "entry": e.header["e_entry"],
                     "elf_class": e.elfclass, "endianness": "little" if e.little_endian else "big",
                     "interpreter": None, "needed": (), "soname": None, "rpath": (), "runpath": (),
                     "build_id": None, "min_kernel": None,
                     "stripped": not any(s["sh_type"] == "SHT_SYMTAB" for s in e.iter_sections())}
        for seg in e.iter_segments():
            if seg["p_type"] == "PT_INTERP" and out["interpreter"] is None:
                out["interpreter"] = seg.get_interp_name()
            elif seg["p_type"] == "PT_DYNAMIC":
                for tag in seg.iter_tags():
                    kind = tag.entry.d_tag
                    if kind == "DT_NEEDED":
                        out["needed"] += (tag.needed,)
                    elif kind == "DT_SONAME":
                        out["soname"] = tag.soname
                    elif kind in ("DT_RPATH", "DT_RUNPATH"):
                        key = kind[3:].lower()
                        out[key] += tuple(p for p in getattr(tag, key).split(":") if p)
            elif seg["p_type"] == "PT_NOTE":
                for note in seg.iter_notes():
                    if note["n_type"] == "NT_GNU_BUILD_ID":
                        out["build_id"] = note["n_desc"]
                    elif note["n_type"] == "NT_GNU_ABI_TAG":
                        d = note["n_desc"]
                        out["min_kernel"] = f"{d['abi_major']}.{d['abi_minor']}.{d['abi_tiny']}"
        if e.header["e_machine"] == "EM_ARM":
            out["arm_eabi"] = (e.header["e_flags"] >> 24) & 0xFF
    return out


def host_elves(limit: int = 40) -> list[Path]:
    """A deterministic sample of this machine's own ELF files: executables and libraries."""
    found: list[Path] = []
    for directory in HOST_DIRS:
        if not os.path.isdir(directory):
            continue
        for name in sorted(os.listdir(directory)):
            path = Path(directory) / name
            if path.is_file() and not path.is_symlink() and path.read_bytes()[:4] == b"\x7fELF":
                found.append(path)
                if len(found) % (limit // 2) == 0:
                    break
    return found


SYNTHETIC = {
    "pie": elfgen.Spec(etype=3, entry=0x1040, interp="/lib64/ld-linux-x86-64.so.2", needed=("libc.so.6",),
                       runpath="$ORIGIN/../lib", rpath="/opt/old"),
    "library": elfgen.Spec(etype=3, entry=0, soname="libfoo.so.1", needed=("libc.so.6",)),
    "arm": elfgen.Spec(elf_class=32, machine=elfgen.EM["arm"], flags=0x5000400, entry=0x10000,
                       arm_attributes=elfgen.arm_attributes(10, 1), symbols=("main",)),
    "s390x": elfgen.Spec(little=False, machine=elfgen.EM["s390"], abi_tag=(0, 3, 2, 0)),
    "i386": elfgen.Spec(elf_class=32, machine=elfgen.EM["386"], entry=0x8049000, build_id=None, abi_tag=None),
}


def test_facts_agree_with_pyelftools(binaries, tmp_path):
    paths = list(binaries.values()) + host_elves()
    for name, spec in SYNTHETIC.items():
        (tmp_path / name).write_bytes(elfgen.build(spec))
        paths.append(tmp_path / name)
    assert len(paths) > 20
    for path in paths:
        want = reference(path)
        facts = elf.read(str(path))
        got = {key: getattr(facts, key) for key in want}
        assert got == want, path
        assert facts.corrupt == (), (path, facts.corrupt)


def test_the_static_binary_from_gcc(binaries):
    facts = elf.read(str(binaries["static"]))
    assert (facts.type, facts.arch, facts.variants, facts.libc) == ("ET_EXEC", "amd64", (), "glibc")
    assert facts.is_static and not facts.static_pie and facts.osabi in ("SYSV", "GNU/Linux")
    assert facts.min_kernel and facts.build_id and facts.executable
    assert facts.describe == "ELF 64-bit LSB executable, amd64"


def test_static_pie_and_shared_library_are_told_apart(binaries):
    pie, lib = elf.read(str(binaries["static_pie"])), elf.read(str(binaries["shared"]))
    assert pie.type == lib.type == "ET_DYN"
    assert pie.static_pie and pie.describe.startswith("ELF 64-bit LSB static-pie executable")
    assert not lib.static_pie and "shared object" in lib.describe


def test_dynamic_pie_names_interpreter_libraries_and_libc(binaries):
    facts = elf.read(str(binaries["dynamic"]))
    assert facts.interpreter == "/lib64/ld-linux-x86-64.so.2" and "libc.so.6" in facts.needed
    assert facts.libc == "glibc" and facts.describe == "ELF 64-bit LSB pie executable, amd64"


@pytest.fixture(scope="module")
def nss_binaries(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("nss")
    gai = ('#include <netdb.h>\nint main(void){ struct addrinfo *r; '
           'return getaddrinfo("localhost", "80", 0, &r); }\n')
    pw = '#include <pwd.h>\nint main(void){ return getpwnam("root") == 0; }\n'
    iconv = '#include <iconv.h>\nint main(void){ return iconv_open("UTF-8", "LATIN1") == (iconv_t)-1; }\n'
    return {"gai_stripped": gcc(tmp, gai, "-static", "-s", name="gai"),
            "pw_symbols": gcc(tmp, pw, "-static", name="pw"),
            "iconv_symbols": gcc(tmp, iconv, "-static", name="iconv")}


def test_glibc_runtime_loading_is_found_by_symbol_or_by_string(nss_binaries, binaries):
    assert elf.read(str(nss_binaries["gai_stripped"])).runtime_loading == (elf.NSS_MACHINERY,)
    assert elf.read(str(nss_binaries["pw_symbols"])).runtime_loading == ("getpwnam",)
    assert elf.read(str(nss_binaries["iconv_symbols"])).runtime_loading == ("iconv_open",)
    assert elf.read(str(binaries["static"])).runtime_loading == ()


@pytest.mark.skipif(tuple(int(n) for n in os.confstr("CS_GNU_LIBC_VERSION").split()[-1].split(".")[:2]) < (2, 34),
                    reason="the host's glibc is older than 2.34: its NSS services are not built in")
def test_nss_services_built_in_are_found_by_symbol_or_by_string(nss_binaries, binaries):
    from elftools.elf.elffile import ELFFile

    with open(nss_binaries["pw_symbols"], "rb") as fh:
        symtab = ELFFile(fh).get_section_by_name(".symtab")
        names = {sym.name for sym in symtab.iter_symbols()}
    assert any(n.startswith("_nss_files_") for n in names) and any(n.startswith("_nss_dns_") for n in names)
    assert elf.read(str(nss_binaries["pw_symbols"])).nss_builtin
    stripped = nss_binaries["gai_stripped"]
    assert b"/etc/hosts\0" in stripped.read_bytes() and elf.read(str(stripped)).nss_builtin
    assert not elf.read(str(nss_binaries["iconv_symbols"])).nss_builtin  # no NSS call: no NSS service linked
    assert not elf.read(str(binaries["static"])).nss_builtin


def test_nss_strings_across_a_read_chunk_are_found():
    strings = ("GLIBC_PRIVATE", "libnss_%s.so%s", "/etc/ethers", "/etc/hosts")
    probe = elfgen.build(elfgen.Spec(strings=strings))
    pad = (1 << 20) - 4 - probe.index(b"/etc/hosts")  # the chunk ends inside "/etc/hosts"
    data = elfgen.build(elfgen.Spec(payload=b"\x90" * (64 + pad), strings=strings))
    assert data.index(b"/etc/hosts") == (1 << 20) - 4
    facts = elf.read_stream(io.BytesIO(data), "big", len(data))
    assert facts.libc == "glibc" and facts.runtime_loading == (elf.NSS_MACHINERY,) and facts.nss_builtin
    older = elfgen.build(elfgen.Spec(strings=strings[:3]))  # the NSS machinery without the files service
    assert not elf.read_stream(io.BytesIO(older), "old", len(older)).nss_builtin


@pytest.mark.parametrize("cpu_arch, flags, variants, level, float_abi", [
    (10, 0x5000400, ("v7",), 7, "hard"),  # armhf: ARMv7, hard float from e_flags
    (6, 0x5000200, ("v6", "v7"), 6, "soft"),  # Raspberry Pi 1 class code runs on v6 and v7
    (4, 0x5000000, ("v5", "v6", "v7"), 5, "soft"),  # armel v5TE; float ABI from Tag_ABI_VFP_args
    (14, 0x5000400, (), 8, "hard"),  # 32-bit ARMv8: no arm variant in the table runs it for sure
])
def test_arm_variant_and_float_abi_come_from_eabi_attributes(cpu_arch, flags, variants, level, float_abi):
    spec = elfgen.Spec(elf_class=32, machine=elfgen.EM["arm"], flags=flags, entry=0x10000,
                       arm_attributes=elfgen.arm_attributes(cpu_arch, 0))
    data = elfgen.build(spec)
    facts = elf.read_stream(io.BytesIO(data), "arm", len(data))
    assert (facts.arch, facts.variants, facts.arm_arch, facts.arm_float_abi) == ("arm", variants, level, float_abi)
    assert facts.arm_eabi == 5


def test_arm_without_attributes_keeps_every_candidate_variant():
    data = elfgen.build(elfgen.Spec(elf_class=32, machine=elfgen.EM["arm"], flags=0x4000000, entry=0x10000))
    facts = elf.read_stream(io.BytesIO(data), "arm", len(data))
    assert facts.variants == ("v5", "v6", "v7") and facts.arm_eabi == 4 and facts.arm_float_abi is None


def test_machine_outside_the_table_is_named_from_pyelftools():
    data = elfgen.build(elfgen.Spec(little=False, machine=elfgen.EM["sparcv9"]))
    facts = elf.read_stream(io.BytesIO(data), "sparc", len(data))
    assert facts.arch is None and facts.machine == "EM_SPARCV9"


@pytest.mark.parametrize("cut, phrase", [
    (lambda d: d[:30], "inside the 64-byte ELF header"),
    (lambda d: d[:64 + 20], "program header table ends at byte"),
    (lambda d: d[:len(d) // 2], "a PT_LOAD segment ends at byte"),
    (lambda d: d[:len(d) - 100], "section header table ends at byte"),
    (lambda d: d[:10], "inside the ELF header"),
    (lambda d: d[:3], "inside the ELF identification"),
])
def test_truncation_is_named(binaries, tmp_path, cut, phrase):
    path = tmp_path / "cut"
    path.write_bytes(cut(binaries["static"].read_bytes()))
    facts = elf.read(str(path))
    assert facts.is_elf and facts.corrupt, facts
    assert phrase in facts.corrupt[0]
    assert "truncated" in facts.corrupt[0]


def test_wrong_program_header_size_is_corrupt(binaries):
    data = bytearray(binaries["static"].read_bytes())
    data[54:56] = (40).to_bytes(2, "little")  # e_phentsize
    facts = elf.read_stream(io.BytesIO(bytes(data)), "x", len(data))
    assert "program header entries are 40 bytes, not 56" in facts.corrupt[0]


@pytest.mark.parametrize("content, fmt, phrase", [
    (b"", "empty", "an empty file"),
    (b"#!/bin/sh\necho hi\n", "script", "a script for /bin/sh"),
    (b"#! /usr/bin/env python3\n", "script", "a script for /usr/bin/env"),
    (b"#!/bin/sh\r\necho hi\r\n", "script", "a script for '/bin/sh\\r'"),
    (b"\xcf\xfa\xed\xfe" + b"\0" * 60, "mach-o", "Mach-O binary (macOS)"),
    (b"\xca\xfe\xba\xbe\0\0\0\x02" + b"\0" * 56, "mach-o-universal", "universal Mach-O"),
    (b"\xca\xfe\xba\xbe\0\x03\0\x34" + b"\0" * 56, "data", "no ELF header"),  # a Java class file
    (b"MZ\x90\0" + b"\0" * 60, "pe", "PE/COFF"),
    (b"hello, world\n", "data", "no ELF header"),
])
def test_non_elf_formats(tmp_path, content, fmt, phrase):
    path = tmp_path / "input"
    path.write_bytes(content)
    facts = elf.read(str(path))
    assert facts.format == fmt and phrase in facts.describe, facts


def test_walk_lists_everything_but_directories_and_follows_no_symlink(binaries, tmp_path):
    (tmp_path / "bin").mkdir()
    shutil.copy(binaries["static"], tmp_path / "bin" / "app")
    (tmp_path / "bin" / "run.sh").write_text("#!/bin/sh\n")
    (tmp_path / "link").symlink_to("bin/app")
    (tmp_path / "loop").symlink_to("loop")
    (tmp_path / "dirlink").symlink_to("bin")
    os.mkfifo(tmp_path / "fifo")  # must be listed, never opened (opening a FIFO would block)
    (tmp_path / "empty").write_bytes(b"")
    items = list(elf.walk(str(tmp_path)))
    assert [i.path for i in items] == ["bin/app", "bin/run.sh", "dirlink", "empty", "fifo", "link", "loop"]
    kinds = {i.path: i.format for i in items}
    assert kinds == {"bin/app": "elf", "bin/run.sh": "script", "dirlink": "symlink", "empty": "empty",
                     "fifo": "special", "link": "symlink", "loop": "symlink"}
    assert isinstance(items[0], elf.ElfFacts) and items[0].is_static
    assert all(isinstance(i, elf.OtherFile) for i in items[1:])


def test_missing_path_is_an_input_error(tmp_path):
    from toolkit.errors import InputError

    with pytest.raises(InputError, match="no such file"):
        elf.read(str(tmp_path / "nope"))
    with pytest.raises(InputError, match="cannot read"):
        list(elf.walk(str(tmp_path / "nope")))
