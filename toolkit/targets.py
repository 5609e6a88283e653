"""The one table of architectures: every other module looks a target up here, never spells one out."""

from __future__ import annotations

import os
from dataclasses import dataclass

from .errors import InputError


@dataclass(frozen=True)
class Target:
    """One architecture the official hello-world image ships, with everything needed to build and check it."""

    name: str  # our key: the OCI architecture, plus "-variant" where there is one (arm-v7)
    architecture: str  # OCI/Docker architecture
    variant: str | None  # OCI variant (v5, v6, v7, v8) or None
    triplet: str  # GNU triplet of the Debian/Ubuntu cross gcc (the compiler is <triplet>-gcc)
    debian_arch: str  # dpkg architecture name (libc6-dev-<debian_arch>-cross)
    elf_class: int  # 32 or 64
    endianness: str  # "little" or "big"
    e_machine: str  # as pyelftools names it
    qemu: str  # QEMU user-mode name: /usr/bin/qemu-<qemu>-static, Debian's /usr/share/binfmts/qemu-<qemu>
    zig: str  # zig cc -target
    cflags: tuple[str, ...] = ()  # gcc flags that pick the variant from a shared cross compiler
    zig_cpu: str | None = None  # zig cc -mcpu, where the target triple alone does not pick the variant
    arm_arch: int | None = None  # ARM architecture version (5, 6, 7): the .ARM.attributes Tag_CPU_arch floor
    native_on: tuple[str, ...] = ()  # other host architectures whose kernels run this target without QEMU
    aliases: tuple[str, ...] = ()  # other names users type: hello-world's, uname -m's, Debian's
    multiarch: str | None = None  # Debian's multiarch directory name where it differs from the triplet
    cpu: str = ""  # CMAKE_SYSTEM_PROCESSOR and Meson's cpu: what `uname -m` says on such a machine
    cpu_family: str = ""  # Meson's cpu_family, one of the names in its reference table
    musl: str = ""  # Debian's musl multiarch name: musl-dev:<debian_arch> ships /usr/lib/<musl> and <musl>-gcc
    debian_since: str = ""  # the first Debian release whose archive carries this architecture, when newer than bookworm

    os: str = "linux"

    @property
    def platform(self) -> str:
        """The OCI platform string, e.g. linux/arm/v7."""
        parts = [self.os, self.architecture] + ([self.variant] if self.variant else [])
        return "/".join(parts)

    @property
    def gcc(self) -> str:
        return f"{self.triplet}-gcc"

    @property
    def gxx(self) -> str:
        return f"{self.triplet}-g++"

    @property
    def lib_dir_name(self) -> str:
        """The directory under /lib and /usr/lib where Debian keeps this architecture's libraries."""
        return self.multiarch or self.triplet

    @property
    def packages(self) -> tuple[str, ...]:
        """Debian/Ubuntu packages that give a static cross compiler for this target.

        Debian package names cannot hold "_", so x86_64's compiler is in gcc-x86-64-linux-gnu.
        """
        return (f"gcc-{self.triplet.replace('_', '-')}", f"libc6-dev-{self.debian_arch}-cross")

    @property
    def cxx_packages(self) -> tuple[str, ...]:
        """The cross g++ (and libstdc++'s static archive with it) for this target."""
        return (f"g++-{self.triplet.replace('_', '-')}",)

    def runs_natively_on(self, host: Target) -> bool:
        """True when a host of that architecture runs this target's binaries without emulation."""
        return self.architecture == host.architecture or host.architecture in self.native_on

    def oci_platform(self) -> dict[str, str]:
        plat = {"os": self.os, "architecture": self.architecture}
        if self.variant:
            plat["variant"] = self.variant
        return plat


# Checked against Debian bookworm (apt-cache policy gcc-<triplet> libc6-dev-<arch>-cross, qemu-user-static's
# /usr/share/binfmts) and zig 0.13+ target names. armel (ARMv5TE, soft float) serves v5 and v6, armhf v7.
TARGETS: tuple[Target, ...] = (
    Target("amd64", "amd64", None, "x86_64-linux-gnu", "amd64", 64, "little", "EM_X86_64",
           qemu="x86_64", zig="x86_64-linux-musl", aliases=("x86_64", "x86-64"), cpu="x86_64", cpu_family="x86_64",
           musl="x86_64-linux-musl"),
    Target("arm-v5", "arm", "v5", "arm-linux-gnueabi", "armel", 32, "little", "EM_ARM",
           qemu="arm", zig="arm-linux-musleabi", cflags=("-march=armv5te", "-marm"), zig_cpu="arm926ej_s",
           arm_arch=5, aliases=("arm32v5", "armel", "armv5", "armv5l", "armv5te"), cpu="armv5tel", cpu_family="arm",
           musl="arm-linux-musleabi"),
    Target("arm-v6", "arm", "v6", "arm-linux-gnueabi", "armel", 32, "little", "EM_ARM",
           qemu="arm", zig="arm-linux-musleabi", cflags=("-march=armv6", "-marm"), zig_cpu="arm1176jzf_s",
           arm_arch=6, aliases=("arm32v6", "armv6", "armv6l"), cpu="armv6l", cpu_family="arm",
           musl="arm-linux-musleabi"),
    Target("arm-v7", "arm", "v7", "arm-linux-gnueabihf", "armhf", 32, "little", "EM_ARM",
           qemu="arm", zig="arm-linux-musleabihf", arm_arch=7,
           aliases=("arm32v7", "armhf", "armv7", "arm", "armv7l"), cpu="armv7l", cpu_family="arm",
           musl="arm-linux-musleabihf"),
    Target("arm64", "arm64", "v8", "aarch64-linux-gnu", "arm64", 64, "little", "EM_AARCH64",
           qemu="aarch64", zig="aarch64-linux-musl", aliases=("arm64v8", "aarch64", "arm64-v8"),
           cpu="aarch64", cpu_family="aarch64",
           musl="aarch64-linux-musl"),
    Target("386", "386", None, "i686-linux-gnu", "i386", 32, "little", "EM_386",
           qemu="i386", zig="x86-linux-musl", native_on=("amd64",), aliases=("i386", "i686", "x86"),
           multiarch="i386-linux-gnu", cpu="i686", cpu_family="x86",
           musl="i386-linux-musl"),
    Target("mips64le", "mips64le", None, "mips64el-linux-gnuabi64", "mips64el", 64, "little", "EM_MIPS",
           qemu="mips64el", zig="mips64el-linux-muslabi64", aliases=("mips64el",), cpu="mips64", cpu_family="mips64",
           musl="mips64el-linux-musl"),
    Target("ppc64le", "ppc64le", None, "powerpc64le-linux-gnu", "ppc64el", 64, "little", "EM_PPC64",
           qemu="ppc64le", zig="powerpc64le-linux-musl", aliases=("ppc64el", "powerpc64le"),
           cpu="ppc64le", cpu_family="ppc64",
           musl="powerpc64le-linux-musl"),
    Target("riscv64", "riscv64", None, "riscv64-linux-gnu", "riscv64", 64, "little", "EM_RISCV",
           qemu="riscv64", zig="riscv64-linux-musl", cpu="riscv64", cpu_family="riscv64",
           musl="riscv64-linux-musl", debian_since="trixie"),
    Target("s390x", "s390x", None, "s390x-linux-gnu", "s390x", 64, "big", "EM_S390",
           qemu="s390x", zig="s390x-linux-musl", cpu="s390x", cpu_family="s390x",
           musl="s390x-linux-musl"),
)

# ELF e_machine numbers (the ELF gABI's values) of the machines above, keyed by pyelftools' names.
E_MACHINE_NUMBERS: dict[str, int] = {
    "EM_386": 3, "EM_MIPS": 8, "EM_PPC64": 21, "EM_S390": 22, "EM_ARM": 40, "EM_X86_64": 62,
    "EM_AARCH64": 183, "EM_RISCV": 243,
}
_E_MACHINE_NAMES = {number: name for name, number in E_MACHINE_NUMBERS.items()}

_BY_NAME: dict[str, Target] = {}
for _t in TARGETS:
    for _key in (_t.name, _t.platform.removeprefix("linux/"), *_t.aliases):
        _BY_NAME.setdefault(_key.lower(), _t)
        _BY_NAME.setdefault(f"linux/{_key}".lower(), _t)


def known_names() -> str:
    return ", ".join(t.name for t in TARGETS)


def lookup(name: str) -> Target:
    """A target by any name a user might type: amd64, arm64v8, aarch64, linux/arm/v7, arm32v7, i386."""
    target = _BY_NAME.get(name.strip().lower())
    if target is None:
        raise InputError(f"unknown architecture {name!r}", hint=f"known: {known_names()}")
    return target


def parse_platform(text: str) -> Target:
    """An OCI platform string (os/arch[/variant]) -> Target; only linux is supported."""
    parts = text.strip().split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise InputError(f"platform {text!r} does not parse",
                         hint="write os/arch[/variant], e.g. linux/arm64 or linux/arm/v7")
    if parts[0] != "linux":
        raise InputError(f"platform {text!r}: only linux images can be built FROM scratch here",
                         hint="use linux/<arch>")
    return lookup(text)


def parse_archs(text: str) -> list[Target]:
    """A comma-separated list of architectures or platforms, or "all"."""
    if text.strip().lower() == "all":
        return list(TARGETS)
    out: list[Target] = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        target = parse_platform(item) if "/" in item else lookup(item)
        if target not in out:
            out.append(target)
    if not out:
        raise InputError("no architecture given", hint=f"known: {known_names()}, or all")
    return out


def host() -> Target:
    """The target this machine runs natively: its machine name as platform.machine() gives it, read from os.uname()
    where there is one (importing platform costs ~2 ms of every command)."""
    if hasattr(os, "uname"):
        return lookup(os.uname().machine or "amd64")
    import platform

    return lookup(platform.machine() or "amd64")


def arm_targets_running(arch_version: int) -> list[Target]:
    """ARM targets whose CPUs run code built for this ARM architecture version, oldest first."""
    return sorted((t for t in TARGETS if t.arm_arch and t.arm_arch >= arch_version),
                  key=lambda t: t.arm_arch or 0)


def machine_name(number: int) -> str | None:
    """pyelftools' name for an e_machine number of a machine in the table (EM_X86_64); None for others."""
    return _E_MACHINE_NAMES.get(number)


def for_elf(elf_class: int, endianness: str, e_machine: str) -> list[Target]:
    """Every target whose ELF identity matches (several for ARM, whose variants share a header)."""
    return [t for t in TARGETS
            if (t.elf_class, t.endianness, t.e_machine) == (elf_class, endianness, e_machine)]
