"""verify's and verify-image's human output, held against reference files in tests/unit/expected/.

The inputs are byte-for-byte deterministic (tests/elfgen.py), so any change to the wording shows up here as a
diff to review. After an intended change: FROMSCRATCH_UPDATE_REFERENCE=1 pytest tests/unit/test_reference_output.py
rewrites the files; read the diff before committing it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests import elfgen
from tests.elfgen import EM, Spec
from toolkit import targets
from toolkit.check import elf, verify
from toolkit.check import image as imagecheck

EXPECTED = Path(__file__).parent / "expected"
GLIBC_SYMBOLS = ("main", "__libc_start_call_main")
# What glibc's NSS machinery leaves in a stripped static binary; since 2.34 also the databases of the files
# service, which is then inside libc (its functions in .symtab when not stripped)
NSS_STRINGS = ("GLIBC_PRIVATE", "/etc/nsswitch.conf", "libnss_%s.so%s")
NSS_FILES_STRINGS = ("/etc/hosts", "/etc/ethers", "/etc/passwd")
NSS_FILES_SYMBOLS = ("_nss_files_getpwnam_r", "_nss_files_gethostbyname4_r", "_nss_dns_gethostbyname4_r")

# name -> (bytes, mode, --arch)
ELF_CASES: dict[str, tuple[bytes, int, str | None]] = {
    "static": (elfgen.build(Spec()), 0o755, "amd64"),
    "static-unstripped-nss": (elfgen.build(Spec(symbols=(*GLIBC_SYMBOLS, "getaddrinfo", "getpwnam", "getpwnam_r",
                                                          "iconv_open", *NSS_FILES_SYMBOLS),
                                                 build_id=None)), 0o644, None),
    "static-stripped-nss": (elfgen.build(Spec(strings=(*NSS_STRINGS, *NSS_FILES_STRINGS))), 0o755, None),
    "static-old-glibc-nss": (elfgen.build(Spec(symbols=("main", "__libc_start_main", "getaddrinfo", "getpwnam",
                                                        "getpwnam_r", "iconv_open"), strings=NSS_STRINGS)),
                             0o755, None),
    "static-old-glibc-stripped-nss": (elfgen.build(Spec(strings=NSS_STRINGS)), 0o755, None),
    "static-musl-nss": (elfgen.build(Spec(symbols=("main", "getaddrinfo", "getpwuid", "iconv_open"), abi_tag=None,
                                          strings=("No error information", "/etc/hosts", "/etc/passwd"))),
                        0o755, None),
    "static-pie": (elfgen.build(Spec(etype=3, entry=0x1000, dynamic=True, pie_flag=True)), 0o755, None),
    "dynamic": (elfgen.build(Spec(etype=3, entry=0x1040, interp="/lib64/ld-linux-x86-64.so.2",
                                  needed=("libz.so.1", "libc.so.6"))), 0o755, None),
    "musl-pie-with-interpreter": (elfgen.build(Spec(etype=3, entry=0x1040, interp="/lib/ld-musl-x86_64.so.1",
                                                    abi_tag=None)), 0o755, None),
    "shared-library": (elfgen.build(Spec(etype=3, entry=0, soname="libz.so.1", needed=("libc.so.6",))), 0o644,
                       None),
    "relocatable": (elfgen.build(Spec(etype=1, entry=0, build_id=None, abi_tag=None)), 0o644, None),
    "core": (elfgen.build(Spec(etype=4, entry=0, build_id=None, abi_tag=None)), 0o600, None),
    "freebsd": (elfgen.build(Spec(osabi=9, abi_tag=None)), 0o755, None),
    "abi-tag-solaris": (elfgen.build(Spec(abi_tag=(2, 2, 11, 0))), 0o755, None),
    "s390x-for-amd64": (elfgen.build(Spec(little=False, machine=EM["s390"])), 0o755, "amd64"),
    "armv7-hard-for-v6": (elfgen.build(Spec(elf_class=32, machine=EM["arm"], flags=0x5000400, entry=0x10000,
                                            arm_attributes=elfgen.arm_attributes(10, 1))), 0o755, "arm32v6"),
    "armv5-for-v7": (elfgen.build(Spec(elf_class=32, machine=EM["arm"], flags=0x5000200, entry=0x10000,
                                       arm_attributes=elfgen.arm_attributes(4, 0))), 0o755, "linux/arm/v7"),
    "arm-oabi": (elfgen.build(Spec(elf_class=32, machine=EM["arm"], flags=0, entry=0x10000)), 0o755, None),
    "arm64-for-arm64": (elfgen.build(Spec(machine=EM["aarch64"])), 0o755, "aarch64"),
    "sparc64": (elfgen.build(Spec(little=False, machine=EM["sparcv9"])), 0o755, None),
    "truncated": (elfgen.build(Spec(payload=b"\x90" * 4096))[:2000], 0o755, None),
}
OTHER_CASES: dict[str, bytes] = {
    "empty": b"",
    "script": b"#!/usr/bin/env python3\nprint('hi')\n",
    "script-crlf": b"#!/bin/sh\r\necho hi\r\n",
    "mach-o": b"\xcf\xfa\xed\xfe\x0c\x00\x00\x01" + b"\0" * 56,
    "mach-o-universal": b"\xca\xfe\xba\xbe\x00\x00\x00\x02" + b"\0" * 56,
    "pe": b"MZ\x90\x00" + b"\0" * 60,
    "data": b"just text\n",
}


def compare(name: str, text: str) -> None:
    path = EXPECTED / name
    if os.environ.get("FROMSCRATCH_UPDATE_REFERENCE"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"no reference {path}: run with FROMSCRATCH_UPDATE_REFERENCE=1 and review it"
    assert text == path.read_text(), f"output differs from {path}"


@pytest.mark.parametrize("name", sorted(ELF_CASES))
def test_verify_output_of_elf_files(name, tmp_path, monkeypatch):
    data, mode, arch = ELF_CASES[name]
    (tmp_path / name).write_bytes(data)
    (tmp_path / name).chmod(mode)
    monkeypatch.chdir(tmp_path)
    compare(f"verify-{name}.txt", verify.verify(elf.read(name), targets.lookup(arch) if arch else None).render() + "\n")


@pytest.mark.parametrize("name", sorted(OTHER_CASES))
def test_verify_output_of_other_files(name, tmp_path, monkeypatch):
    (tmp_path / name).write_bytes(OTHER_CASES[name])
    monkeypatch.chdir(tmp_path)
    compare(f"verify-{name}.txt", verify.verify(elf.read(name)).render() + "\n")


def test_verify_output_of_a_directory(tmp_path, monkeypatch):
    root = tmp_path / "rootfs"
    (root / "usr" / "bin").mkdir(parents=True)
    for name in ("static", "dynamic", "s390x-for-amd64"):
        (root / "usr" / "bin" / name).write_bytes(ELF_CASES[name][0])
        (root / "usr" / "bin" / name).chmod(0o755)
    (root / "usr" / "bin" / "tool.sh").write_bytes(OTHER_CASES["script"])
    (root / "bin").symlink_to("usr/bin")
    (root / "etc").mkdir()
    (root / "etc" / "hostname").write_text("box\n")
    monkeypatch.chdir(tmp_path)
    compare("verify-directory.txt", verify.verify_tree("rootfs", targets.lookup("amd64")).render() + "\n")


def test_verify_image_output(tmp_path):
    lib = elfgen.build(Spec(etype=3, entry=0, soname="libz.so.1", needed=("libc.so.6",)))
    files: dict[str, bytes | str | tuple[bytes, int]] = {
        "app": ELF_CASES["dynamic"][0],
        "lib": "usr/lib",
        "usr/lib/x86_64-linux-gnu/libz.so.1": lib,
        "etc/ld.so.conf": b"include /etc/ld.so.conf.d/*.conf\n",
    }
    fs = imagecheck.ImageFS.from_tar(elfgen.image_tar(files))
    config = {"Os": "linux", "Architecture": "amd64", "Config": {"Cmd": ["/app"]}}
    compare("verify-image-missing.txt", imagecheck.check(fs, config, "example:broken").render() + "\n")
    scratch = imagecheck.ImageFS.from_tar(elfgen.image_tar({"hello": ELF_CASES["static"][0]}))
    config = {"Os": "linux", "Architecture": "amd64", "Config": {"Cmd": ["/hello"]}}
    compare("verify-image-scratch.txt", imagecheck.check(scratch, config, "example:scratch").render() + "\n")
