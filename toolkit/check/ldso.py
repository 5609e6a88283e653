"""Where the dynamic loader would find an ELF's interpreter and libraries inside a root filesystem, without
running anything: glibc's and musl's search order over a read-only view of an image's files (check/image.py
supplies the view; this module never talks to an engine)."""

from __future__ import annotations

import fnmatch
import posixpath
import re
from dataclasses import dataclass
from typing import Protocol

from .. import targets
from .elf import ElfFacts

# glibc's system directories: Debian's multiarch pair, then upstream's lib64 pair (64-bit only), then the
# plain pair. glibc itself searches one build's subset; the union makes no Debian or Fedora image fail.
_MULTIARCH_DIRS = ("/lib/{}", "/usr/lib/{}")
_LIB64_DIRS = ("/lib64", "/usr/lib64")
_PLAIN_DIRS = ("/lib", "/usr/lib")
_MUSL_DEFAULT = ("/lib", "/usr/local/lib", "/usr/lib")
# Names musl's loader answers itself (it is libc, libm, libpthread, ... in one file).
_MUSL_SELF = re.compile(r"^lib(c|pthread|rt|m|dl|util|xnet)\.")
_MAX_INCLUDE_DEPTH = 8


class RootFS(Protocol):
    """A read-only view of a root filesystem, with symlinks resolved inside the root, never outside it."""

    def resolve(self, path: str) -> str | None:
        """The absolute path with every symlink followed inside the root; None when nothing is there."""

    def facts(self, path: str) -> ElfFacts | None:
        """Facts of the regular file at a resolved path (sniffed when it is not an ELF); None for others."""

    def text(self, path: str) -> str | None:
        """Contents of a small configuration file at a resolved path (ld.so.conf and friends)."""

    def listdir(self, path: str) -> list[str]:
        """Names in the directory at a resolved path, sorted."""


@dataclass(frozen=True)
class Resolution:
    """Where one name (a PT_INTERP path or a DT_NEEDED library) leads inside the root."""

    kind: str  # interpreter or library
    name: str
    found: str | None  # resolved path of the file the loader would use
    searched: tuple[str, ...] = ()  # directories tried, in order (libraries searched by name)
    wrong: tuple[str, ...] = ()  # files with that name the loader cannot use: not ELF, or another arch or ABI

    @property
    def ok(self) -> bool:
        return self.found is not None


class Loader:
    """The dynamic loader's view of one root: ld.so.conf read once, searches answered per ELF."""

    def __init__(self, fs: RootFS, library_path: tuple[str, ...] = (), workdir: str = "/") -> None:
        self.fs = fs
        self.library_path = library_path  # LD_LIBRARY_PATH from the image's environment
        self.workdir = workdir or "/"
        self._conf: tuple[str, ...] | None = None
        self._musl_path: tuple[str, ...] | None = None

    def resolve_all(self, facts: ElfFacts, path: str) -> list[Resolution]:
        """The interpreter and every DT_NEEDED of the ELF at path (an absolute path inside the root)."""
        out = []
        if facts.interpreter:
            out.append(self.interpreter(facts))
        out += [self.library(facts, path, name) for name in facts.needed]
        return out

    def interpreter(self, facts: ElfFacts) -> Resolution:
        name = facts.interpreter or ""
        found = self.fs.resolve(self._absolute(name))
        if found is None:
            return Resolution("interpreter", name, None)
        if self.fs.facts(found) is None:  # a directory or a device
            return Resolution("interpreter", name, None)
        if not self._usable(facts, found):
            return Resolution("interpreter", name, None, wrong=(found,))
        return Resolution("interpreter", name, found)

    def library(self, facts: ElfFacts, path: str, name: str) -> Resolution:
        if "/" in name:
            found = self.fs.resolve(self._absolute(name))
            ok = found is not None and self._usable(facts, found)
            return Resolution("library", name, found if ok else None)
        musl = _is_musl(facts)
        if musl and _MUSL_SELF.match(name) and facts.interpreter:
            return self._musl_self(facts, name)
        searched: list[str] = []
        wrong: list[str] = []
        for directory in self.search_dirs(facts, path, musl):
            if directory in searched:
                continue
            searched.append(directory)
            found = self.fs.resolve(f"{directory.rstrip('/')}/{name}")
            if found is None:
                continue
            if self._usable(facts, found):
                return Resolution("library", name, found, tuple(searched))
            if found not in wrong:
                wrong.append(found)
        return Resolution("library", name, None, tuple(searched), tuple(wrong))

    def search_dirs(self, facts: ElfFacts, path: str, musl: bool | None = None) -> list[str]:
        """The directories the loader tries, in its order, for libraries that facts' ELF (at path) needs."""
        origin = posixpath.dirname(path) or "/"
        rpath = [self._expand(d, origin) for d in facts.rpath]
        runpath = [self._expand(d, origin) for d in facts.runpath]
        env = [self._absolute(d) for d in self.library_path]
        if musl if musl is not None else _is_musl(facts):
            dirs = env + rpath + runpath + list(self._musl_dirs())
        else:
            # DT_RPATH counts only when there is no DT_RUNPATH; LD_LIBRARY_PATH comes between them.
            dirs = (rpath if not runpath else []) + env + runpath + list(self._conf_dirs())
            dirs += self._system_dirs(facts)
        return [d for d in dirs if d]

    def _system_dirs(self, facts: ElfFacts) -> list[str]:
        dirs: list[str] = []
        for target in targets.for_elf(facts.elf_class or 0, facts.endianness or "", facts.machine or ""):
            dirs += [d.format(target.lib_dir_name) for d in _MULTIARCH_DIRS]
        if facts.elf_class == 64:
            dirs += _LIB64_DIRS
        return dirs + list(_PLAIN_DIRS)

    def _musl_self(self, facts: ElfFacts, name: str) -> Resolution:
        interp = self.interpreter(facts)
        return Resolution("library", name, interp.found, ("(the musl loader itself)",))

    def _usable(self, facts: ElfFacts, found: str) -> bool:
        target = self.fs.facts(found)
        return target is not None and target.is_elf and not target.corrupt and _compatible(facts, target)

    def _absolute(self, path: str) -> str:
        return path if path.startswith("/") else posixpath.join(self.workdir, path)

    @staticmethod
    def _expand(directory: str, origin: str) -> str:
        """$ORIGIN and ${ORIGIN} become the ELF's own directory; a path still holding $LIB or $PLATFORM is
        left out (their values depend on the host's loader build)."""
        expanded = directory.replace("${ORIGIN}", origin).replace("$ORIGIN", origin)
        if "$" in expanded or not expanded.startswith("/"):
            return ""
        return posixpath.normpath(expanded)

    def _conf_dirs(self) -> tuple[str, ...]:
        """glibc's ld.so.conf directories, read once per root."""
        if self._conf is None:
            self._conf = tuple(_read_conf(self.fs, "/etc/ld.so.conf", 0, set()))
        return self._conf

    def _musl_dirs(self) -> tuple[str, ...]:
        """musl's library path, read once per root."""
        if self._musl_path is None:
            self._musl_path = _read_musl_path(self.fs)
        return self._musl_path


def _read_conf(fs: RootFS, path: str, depth: int, read: set[str]) -> list[str]:
    """Directories from an ld.so.conf, following `include` globs (relative ones from the file's directory). Each
    file is read once, however often it is included (as ldconfig does): files that include each other again
    cost one read each, not one per path through the includes."""
    resolved = fs.resolve(path)
    if resolved is None or resolved in read or depth > _MAX_INCLUDE_DEPTH:
        return []
    read.add(resolved)
    text = fs.text(resolved)
    if text is None:
        return []
    dirs: list[str] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("hwcap "):
            continue
        if line.startswith(("include ", "include\t")):
            for pattern in line[len("include"):].split():
                if not pattern.startswith("/"):
                    pattern = posixpath.join(posixpath.dirname(path), pattern)
                for match in _glob(fs, pattern):
                    dirs += _read_conf(fs, match, depth + 1, read)
            continue
        # old ldconfig syntax allowed "dir=libtype"; directories may be split by spaces, tabs, colons, commas
        dirs += [d.split("=", 1)[0] for d in re.split(r"[\s:,]+", line) if d.startswith("/")]
    return dirs


def _read_musl_path(fs: RootFS) -> tuple[str, ...]:
    """musl reads /etc/ld-musl-<arch>.path when it exists, else its three default directories."""
    for path in _glob(fs, "/etc/ld-musl-*.path"):
        resolved = fs.resolve(path)
        text = fs.text(resolved) if resolved else None
        if text is not None:
            dirs = [d for d in re.split(r"[\n:]+", text) if d.startswith("/")]
            return tuple(dirs) if dirs else _MUSL_DEFAULT
    return _MUSL_DEFAULT


def _glob(fs: RootFS, pattern: str) -> list[str]:
    """Matches of a glob whose wildcards are in the last component, sorted as glob(3) sorts them."""
    directory, base = posixpath.split(pattern)
    resolved = fs.resolve(directory)
    if resolved is None:
        return []
    return [f"{directory}/{n}" for n in fs.listdir(resolved) if fnmatch.fnmatchcase(n, base)]


def _is_musl(facts: ElfFacts) -> bool:
    return bool(facts.interpreter and "ld-musl" in facts.interpreter) or facts.libc == "musl"


def _compatible(facts: ElfFacts, other: ElfFacts) -> bool:
    """What ld.so checks before it uses a library: same class, byte order and machine (and ARM float ABI)."""
    same = (other.elf_class, other.endianness, other.machine) == (facts.elf_class, facts.endianness, facts.machine)
    if same and facts.machine == "EM_ARM" and facts.arm_float_abi and other.arm_float_abi:
        return facts.arm_float_abi == other.arm_float_abi
    return same
