"""What a build system is told about its target, generated from the target's row: compiler wrappers, the tool
variables, a pkg-config that sees only the target's .pc files, a CMake toolchain file and a Meson machine file.

The same files serve the native, container and zig toolchains; only the programs they name differ.
"""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .. import targets
from ..sbom import links

BINUTILS = ("ar", "ranlib", "strip", "nm", "ld", "objcopy")
# The environment variable each program goes by (make's, autoconf's and dockcross's names).
_VARIABLES = {"cc": "CC", "c++": "CXX", "ar": "AR", "ranlib": "RANLIB", "strip": "STRIP", "nm": "NM", "ld": "LD",
              "objcopy": "OBJCOPY", "pkg-config": "PKG_CONFIG"}


@dataclass(frozen=True)
class Toolset:
    """The real programs behind one target's tools: a command (argv prefix) per wrapper name."""

    target: targets.Target
    cross: bool  # the target is not the build machine's own architecture
    commands: dict[str, tuple[str, ...]]  # "cc", "c++", "ar", ... -> argv prefix
    pkg_config_libdir: str  # "" finds nothing: Debian's .pc files describe glibc archives
    emulator: str | None  # runs the target's programs on the build machine (try_run, Meson's exe_wrapper)
    linker: str = links.GNU  # how a link names its inputs (links.GNU, links.ZIG)
    drivers: dict[str, str] = field(default_factory=dict)  # "cc", "c++" -> the gcc an SBOM names as the compiler
    # where the target's static archives are, for completing a static link (wrapper.sh); () completes nothing
    archive_dirs: tuple[str, ...] = ()

    @property
    def triplet(self) -> str:
        return self.target.triplet


def gcc(target: targets.Target, build_machine: targets.Target, libc: str = "glibc") -> Toolset:
    """Debian/Ubuntu's gcc for the build machine itself, or its cross gcc (<triplet>-gcc, -g++, -ar...); with
    musl, the <musl>-gcc that musl-dev:<arch> ships (gcc with musl's specs) and no C++ (no libstdc++ for musl)."""
    cross = target.name != build_machine.name
    prefix = f"{target.triplet}-" if cross else ""
    commands: dict[str, tuple[str, ...]] = {"cc": (f"{prefix}gcc", *target.cflags),
                                            "c++": (f"{prefix}g++", *target.cflags)}
    drivers = {"cc": f"{prefix}gcc", "c++": f"{prefix}g++"}
    libdirs = f"/usr/lib/{target.lib_dir_name}/pkgconfig:/usr/share/pkgconfig"
    # Debian's multiarch directories (-dev:<arch> packages install there); /usr/lib holds the build machine's own
    archives = (f"/usr/lib/{target.lib_dir_name}", f"/lib/{target.lib_dir_name}", *(() if cross else ("/usr/lib",)))
    if libc == "musl":
        commands = {"cc": (f"{target.musl}-gcc", *target.cflags), "c++": NO_CXX_WITH_MUSL}
        drivers = {"cc": f"{prefix}gcc"}  # <musl>-gcc runs the target's gcc with musl's specs
        libdirs = ""  # Debian's .pc files describe glibc builds
        archives = ()  # and its archives were built against glibc
    commands.update({tool: (f"{prefix}{tool}",) for tool in BINUTILS})
    return Toolset(target, cross, commands, libdirs, f"/usr/bin/qemu-{target.qemu}-static" if cross else None,
                   drivers=drivers, archive_dirs=archives)


# What CXX runs in a musl gcc build: Debian has no libstdc++ built for musl.
NO_CXX_WITH_MUSL = ("sh", "-c", "echo 'fromscratch: no C++ with --libc musl and gcc: Debian has no libstdc++ for musl; "
                    "use --toolchain zig (zig c++ links libc++ with musl)' >&2; exit 1", "c++")


def zig(target: targets.Target, build_machine: targets.Target, python: str) -> Toolset:
    """zig cc and c++ for <arch>-linux-musl, with zig's own ar and ranlib (musl: no Debian .pc file applies)."""
    cpu = (f"-mcpu={target.zig_cpu}",) if target.zig_cpu else ()
    zig_cmd = (python, "-m", "ziglang")
    commands = {"cc": (*zig_cmd, "cc", "-target", target.zig, *cpu),
                "c++": (*zig_cmd, "c++", "-target", target.zig, *cpu),
                "ar": (*zig_cmd, "ar"), "ranlib": (*zig_cmd, "ranlib")}
    cross = target.name != build_machine.name
    return Toolset(target, cross, commands, "", f"/usr/bin/qemu-{target.qemu}-static" if cross else None,
                   linker=links.ZIG)


WRAPPER = Path(__file__).with_name("wrapper.sh")  # fs_cc, which every compiler wrapper runs


def compiler_wrapper(command: Sequence[str], linker: str = links.GNU, driver: str = "", strip: bool = False,
                     archive_dirs: Sequence[str] = (), pc_dirs: str = "") -> str:
    """A compiler that links statically unless asked for a shared object (wrapper.sh's fs_cc says how), its link
    traced for the SBOM; strip: every program is linked with -s too (--strip); archive_dirs and pc_dirs (colon-
    separated): where the target's archives and their .pc files are, to complete each static link from."""
    words = " ".join(shlex.quote(c) for c in command)
    places = f"{shlex.quote(':'.join(archive_dirs))} {shlex.quote(pc_dirs)}"  # shlex.quote("") is ''
    return ("#!/bin/sh\n"
            "# made by fromscratch: every program linked static; a shared object (-shared) without -static\n"
            "# shellcheck source=/dev/null\n"
            '. "${0%/*}/links.sh"\n'
            "# shellcheck source=/dev/null\n"
            '. "${0%/*}/wrapper.sh"\n'
            f'fs_cc {linker} {shlex.quote(driver) or chr(39) * 2} {int(strip)} {places} {len(command)} {words} '
            '"$@"\n')


def tool_wrapper(command: Sequence[str]) -> str:
    return f"#!/bin/sh\nexec {' '.join(shlex.quote(c) for c in command)} \"$@\"\n"


def pkg_config_wrapper(libdir: str) -> str:
    """pkg-config over the target's .pc files only, with the private libraries a static link needs."""
    return ("#!/bin/sh\n"
            f"PKG_CONFIG_LIBDIR={shlex.quote(libdir)}\n"
            "export PKG_CONFIG_LIBDIR\n"
            "unset PKG_CONFIG_PATH\n"
            "exec pkg-config --static \"$@\"\n")


def wrappers(tools: Toolset, strip: bool = False) -> dict[str, str]:
    """File name -> script text, for the tools directory."""
    out = {name: (compiler_wrapper(cmd, tools.linker, tools.drivers.get(name, ""), strip, tools.archive_dirs,
                                   tools.pkg_config_libdir) if name in ("cc", "c++")
                  else tool_wrapper(cmd)) for name, cmd in tools.commands.items()}
    out["pkg-config"] = pkg_config_wrapper(tools.pkg_config_libdir)
    return out


def environment(tools: Toolset, tools_dir: str, cflags: Sequence[str] = (),
                ldflags: Sequence[str] = ()) -> dict[str, str]:
    """What every step of the build sees: each tool by its variable, flags, the triplet, the machine files."""
    env = {_VARIABLES[name]: f"{tools_dir}/{name}" for name in [*tools.commands, "pkg-config"]}
    flags = " ".join(shlex.quote(f) for f in ["-O2", *cflags])
    env.update({
        "CFLAGS": flags, "CXXFLAGS": flags,
        "LDFLAGS": " ".join(shlex.quote(f) for f in ["-static", *ldflags]),
        "PKG_CONFIG_LIBDIR": tools.pkg_config_libdir, "PKG_CONFIG_ALLOW_CROSS": "1",
        "CROSS_TRIPLE": tools.triplet, "FROMSCRATCH_TARGET": tools.target.name,
        # where the compiler wrappers keep each link's trace (the work directory's links/)
        "FROMSCRATCH_LINKS": posixpath.join(posixpath.dirname(tools_dir), "links"),
        # CMake 3.21+ reads the toolchain file from the environment, also in a --run command
        "CMAKE_TOOLCHAIN_FILE": f"{tools_dir}/toolchain.cmake",
        "FROMSCRATCH_MESON_FILE": f"{tools_dir}/meson.ini",
    })
    if tools.cross:
        env["CROSS_COMPILE"] = f"{tools.triplet}-"
    return env


def cmake_toolchain(tools: Toolset, tools_dir: str) -> str:
    """A CMake toolchain file: the compilers, static links, and for a foreign target the system, the find
    modes (programs from the build machine, libraries and headers for the target) and QEMU for try_run."""
    t = tools.target
    lines = ["# made by fromscratch for " + t.platform,
             f'set(CMAKE_C_COMPILER "{tools_dir}/cc")', f'set(CMAKE_CXX_COMPILER "{tools_dir}/c++")']
    for name in ("ar", "ranlib", "strip", "nm", "objcopy"):
        if name in tools.commands:
            lines.append(f'set(CMAKE_{name.upper()} "{tools_dir}/{name}" CACHE FILEPATH "")')
    lines += ['set(PKG_CONFIG_EXECUTABLE "' + tools_dir + '/pkg-config" CACHE FILEPATH "")',
              'set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")',
              'set(BUILD_SHARED_LIBS OFF CACHE BOOL "static libraries only")',
              # CMake's platform files set the suffixes again after this file (.so first): static.cmake, run at
              # the end of every project() (CMake 3.15+), sets them after that; a project's own include runs instead
              'if(NOT CMAKE_PROJECT_INCLUDE)', f'  set(CMAKE_PROJECT_INCLUDE "{tools_dir}/static.cmake")', 'endif()',
              'set(CMAKE_FIND_LIBRARY_SUFFIXES ".a")']
    if tools.cross:
        lines += ["set(CMAKE_SYSTEM_NAME Linux)", f"set(CMAKE_SYSTEM_PROCESSOR {t.cpu})",
                  f"set(CMAKE_LIBRARY_ARCHITECTURE {t.lib_dir_name})",
                  f'set(CMAKE_FIND_ROOT_PATH "/usr/{t.triplet}" "/")',
                  "set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)",
                  "set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)",
                  "set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)",
                  "set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)"]
        if tools.emulator:
            lines.append(f'set(CMAKE_CROSSCOMPILING_EMULATOR "{tools.emulator}")')
    return "\n".join(lines) + "\n"


def cmake_static() -> str:
    """What every project() of a CMake build ends with (CMAKE_PROJECT_INCLUDE): find_library and the Find modules
    built on it (FindPNG, FindZLIB, pkg_check_modules' libraries) take the static archive, never the .so."""
    return ("# made by fromscratch: run after CMake's platform files, which put .so first\n"
            'set(CMAKE_FIND_LIBRARY_SUFFIXES ".a")\n')


def meson_machine(tools: Toolset, tools_dir: str) -> str:
    """A Meson cross file for a foreign target (a native file otherwise): binaries, static defaults and, when
    cross, the host machine and QEMU as the exe_wrapper."""
    t = tools.target
    lines = ["# made by fromscratch for " + t.platform, "[binaries]",
             f"c = '{tools_dir}/cc'", f"cpp = '{tools_dir}/c++'"]
    lines += [f"{name} = '{tools_dir}/{name}'" for name in ("ar", "strip") if name in tools.commands]
    lines.append(f"pkgconfig = '{tools_dir}/pkg-config'")  # the name every Meson since 0.50 reads
    if tools.cross and tools.emulator:
        lines.append(f"exe_wrapper = '{tools.emulator}'")
    lines += ["", "[built-in options]", "default_library = 'static'", "prefer_static = true",
              "c_link_args = ['-static']", "cpp_link_args = ['-static']"]
    if tools.cross:
        lines += ["", "[host_machine]", "system = 'linux'", f"cpu_family = '{t.cpu_family}'", f"cpu = '{t.cpu}'",
                  f"endian = '{t.endianness}'"]
    return "\n".join(lines) + "\n"


def files(tools: Toolset, tools_dir: str, strip: bool = False) -> dict[str, str]:
    """Every file of the tools directory: the wrappers (executable; strip: each program linked with -s), the two
    machine files (and the CMake file the toolchain file runs after the platform's) and the link tracing functions
    the wrappers and the build script source."""
    return {**wrappers(tools, strip), "toolchain.cmake": cmake_toolchain(tools, tools_dir),
            "static.cmake": cmake_static(), "meson.ini": meson_machine(tools, tools_dir), "links.sh": links.script(),
            "wrapper.sh": WRAPPER.read_text()}
