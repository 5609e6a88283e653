"""The one table of architectures: every other module looks a target up here, never spells one out."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InputError


@dataclass(frozen=True)
class Target:
    """One architecture the official hello-world image ships, with everything needed to build and check it."""

    name: str  # our key: the OCI architecture, plus "-variant" where there is one (arm-v7)
    architecture: str  # OCI/Docker architecture
    variant: str | None  # OCI variant (v5, v6, v7, v8) or None
    triplet: str  # GNU triplet of the Debian/Ubuntu cross gcc
    debian_arch: str  # dpkg architecture name (libc6-dev-<debian_arch>-cross)
    elf_class: int  # 32 or 64
    endianness: str  # "little" or "big"
    e_machine: str  # as pyelftools names it
    qemu: str | None  # QEMU user-mode binary suffix (qemu-<qemu>-static); None for the host itself
    zig: str  # zig cc -target
    cflags: tuple[str, ...] = ()  # extra flags that pick the variant from a shared compiler
    aliases: tuple[str, ...] = ()  # other names users type: hello-world's, uname -m's, Debian's

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
    def packages(self) -> tuple[str, ...]:
        """Debian/Ubuntu packages that give a static cross compiler for this target."""
        return (f"gcc-{self.triplet}", f"libc6-dev-{self.debian_arch}-cross")

    def oci_platform(self) -> dict[str, str]:
        plat = {"os": self.os, "architecture": self.architecture}
        if self.variant:
            plat["variant"] = self.variant
        return plat


TARGETS: tuple[Target, ...] = (
    Target("amd64", "amd64", None, "x86_64-linux-gnu", "amd64", 64, "little", "EM_X86_64",
           "x86_64", "x86_64-linux-musl", aliases=("x86_64", "x86-64")),
    Target("arm-v5", "arm", "v5", "arm-linux-gnueabi", "armel", 32, "little", "EM_ARM",
           "arm", "arm-linux-musleabi", cflags=("-march=armv5te", "-marm"),
           aliases=("arm32v5", "armel", "armv5")),
    Target("arm-v6", "arm", "v6", "arm-linux-gnueabi", "armel", 32, "little", "EM_ARM",
           "arm", "arm-linux-musleabi", cflags=("-march=armv6", "-marm"),
           aliases=("arm32v6", "armv6")),
    Target("arm-v7", "arm", "v7", "arm-linux-gnueabihf", "armhf", 32, "little", "EM_ARM",
           "arm", "arm-linux-musleabihf", aliases=("arm32v7", "armhf", "armv7", "arm", "armv7l")),
    Target("arm64", "arm64", "v8", "aarch64-linux-gnu", "arm64", 64, "little", "EM_AARCH64",
           "aarch64", "aarch64-linux-musl", aliases=("arm64v8", "aarch64", "arm64-v8")),
    Target("386", "386", None, "i686-linux-gnu", "i386", 32, "little", "EM_386",
           "i386", "x86-linux-musl", aliases=("i386", "i686", "x86")),
    Target("mips64le", "mips64le", None, "mips64el-linux-gnuabi64", "mips64el", 64, "little",
           "EM_MIPS", "mips64el", "mips64el-linux-muslabi64", aliases=("mips64el",)),
    Target("ppc64le", "ppc64le", None, "powerpc64le-linux-gnu", "ppc64el", 64, "little",
           "EM_PPC64", "ppc64le", "powerpc64le-linux-musl", aliases=("ppc64el", "powerpc64le")),
    Target("riscv64", "riscv64", None, "riscv64-linux-gnu", "riscv64", 64, "little", "EM_RISCV",
           "riscv64", "riscv64-linux-musl"),
    Target("s390x", "s390x", None, "s390x-linux-gnu", "s390x", 64, "big", "EM_S390",
           "s390x", "s390x-linux-musl"),
)

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
    """The target this machine runs natively."""
    import platform

    return lookup(platform.machine() or "amd64")


def for_elf(elf_class: int, endianness: str, e_machine: str) -> list[Target]:
    """Every target whose ELF identity matches (several for ARM, whose variants share a header)."""
    return [t for t in TARGETS
            if (t.elf_class, t.endianness, t.e_machine) == (elf_class, endianness, e_machine)]
