"""What a project declares it needs, read before it is built (compile/found.py maps it to Debian packages): the
libraries, pkg-config modules, CMake packages and system headers its configure.ac, meson.build, CMakeLists.txt,
Makefiles and sources name, each with the file and line that names it. Analysis only: files are read, bounded
(a capped walk, capped reads), and nothing of the project is run."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

KINDS = ("pkg-config", "library", "cmake", "header", "program")


@dataclass(frozen=True, order=True)
class Declared:
    """One thing the project names: kind (one of KINDS), its name, and where (file:line, relative to the project)."""

    kind: str
    name: str
    where: str

    def said(self) -> str:
        """How a line names it: "pkg-config module ncursesw", "-lz", "CMake package ZLIB", "<zlib.h>", "program
        tclsh" (compile/programs.py's: a|b names alternatives)."""
        return {"pkg-config": f"pkg-config module {self.name}", "library": f"-l{self.name}",
                "cmake": f"CMake package {self.name}", "header": f"<{self.name}>",
                "program": f"program {' or '.join(self.name.split('|'))}"}[self.kind]


# Headers the C library or the compiler ships: not looked up (hello.c needs no index at all).
_LIBC_HEADERS = frozenset("""
assert.h complex.h ctype.h errno.h fenv.h float.h inttypes.h iso646.h limits.h locale.h math.h setjmp.h signal.h
stdalign.h stdarg.h stdatomic.h stdbool.h stddef.h stdint.h stdio.h stdlib.h stdnoreturn.h string.h tgmath.h
threads.h time.h uchar.h wchar.h wctype.h aio.h arpa/inet.h cpio.h dirent.h dlfcn.h fcntl.h fnmatch.h glob.h grp.h
iconv.h langinfo.h libgen.h libintl.h monetary.h mqueue.h netdb.h net/if.h netinet/in.h netinet/tcp.h nl_types.h
poll.h pthread.h pwd.h regex.h sched.h search.h semaphore.h spawn.h strings.h syslog.h tar.h termios.h ulimit.h
unistd.h utime.h utmp.h utmpx.h wordexp.h getopt.h err.h error.h paths.h alloca.h malloc.h memory.h features.h
endian.h byteswap.h execinfo.h ifaddrs.h mntent.h pty.h shadow.h crypt.h sysexits.h stdio_ext.h link.h elf.h
fts.h ftw.h values.h argp.h obstack.h resolv.h ttyent.h lastlog.h ucontext.h termio.h wait.h syscall.h printf.h
mcheck.h argz.h envz.h fmtmsg.h sgtty.h ieee754.h fpu_control.h gshadow.h aliases.h thread_db.h nss.h sysexits.h
""".split())
_LIBC_DIRS = ("sys/", "bits/", "linux/", "asm/", "asm-generic/", "netinet/", "net/", "arpa/", "scsi/", "gnu/",
              "rpc/", "protocols/", "netpacket/")


def wanted(declared: Sequence[Declared]) -> tuple[Declared, ...]:
    """The declarations worth a lookup: not the C library's or the compiler's own headers."""
    # a name without a dot (<vector>, <cstdio>) is one of C++'s own headers
    return tuple(d for d in declared if not (d.kind == "header" and (
        d.name in _LIBC_HEADERS or d.name.startswith(_LIBC_DIRS) or "." not in d.name)))


_READ_MAX = 512 << 10  # of each file, the first 512 KiB (a configure.ac or a source file is far smaller)
_FILES_MAX = 4000  # files looked at in one walk
_DEPTH_MAX = 4  # directories below the build directory
# Trees that hold other projects' code, tests or examples, or another system's port (Info-ZIP's unzip keeps one
# directory per system: what beos/ and theos/ include found libtse3-dev and libp4est-dev, and their MPI, for a
# Linux build): what they include is not what the build needs.
_SKIP_DIRS = frozenset({".git", ".hg", ".svn", "contrib", "third_party", "third-party", "thirdparty", "vendor",
                        "vendored", "external", "deps", "examples", "example", "test", "tests", "testsuite", "doc",
                        "docs", "win32", "win64", "windows", "wince", "msvc", "vs", "mingw", "android", "ios",
                        "macos", "osx", "node_modules", "msdos", "dos", "os2", "amiga", "atari", "beos", "haiku",
                        "vms", "openvms", "human68k", "theos", "qdos", "tandem", "acorn", "riscos", "cmsmvs",
                        "aosvs", "flexos", "netware", "novell"})
_SOURCES = (".c", ".h", ".cc", ".cpp", ".cxx", ".hh", ".hpp", ".hxx", ".C")
_HEADERS = (".h", ".hh", ".hpp", ".hxx")  # read only as they are included: their own includes may be a platform's
_MAKEFILES = r"(GNUmakefile|[Mm]akefile(\.am|\.in)?|.*\.mk)"
_NAME = r"[A-Za-z0-9_][A-Za-z0-9_.+-]*"

# The patterns of a project's build files are kept as text, compiled (and kept) by re when a project is read:
# a --src build reads only #include lines.
# configure.ac: the first argument of each macro, brackets and quotes stripped; PKG_CHECK_MODULES' second is a
# list of modules with optional version constraints.
_AC = (r"\b(PKG_CHECK_MODULES(?:_STATIC)?|PKG_CHECK_EXISTS|AC_CHECK_LIB|AC_SEARCH_LIBS|"
       r"AC_CHECK_HEADERS?(?:_ONCE)?)\s*\(")
_MESON_DEP = r"\bdependency\s*\(\s*'([^']+)'"
_MESON_LIB = r"\bfind_library\s*\(\s*'([^']+)'"
_CMAKE = (r"(?i)\b(find_package|pkg_check_modules|pkg_search_module|find_library|"
          r"check_include_files?|check_library_exists)\s*\(")
_MAKE_VAR = r"^\s*(?:override\s+)?([A-Za-z0-9_]*(?:LIBS|LDADD|LDFLAGS|LIBADD|LIB))\s*[+:?]?=(.*)"
_LINK_LINE = r"\$[({](?:CC|CXX|LD|LINK|CCLD|CXXLD)[)}]"
_LFLAG = rf"(?:^|\s)-l({_NAME})"
_INCLUDE = re.compile(r"^\s*#\s*include\s*<([A-Za-z0-9_./+-]+)>")
_COND = re.compile(r"^\s*#\s*(if|ifdef|ifndef|elif|else|endif)\b\s*(\w*)")


def declared(root: Path, subdir: str = "", system: str = "make") -> tuple[Declared, ...]:
    """What the project at root declares to its build system (system, as compile/plan.py detected it) for a build
    in root/subdir: autotools' configure.ac (and its Makefile.am files), Meson's meson.build files, CMake's
    CMakeLists.txt files; a plain Makefile's -l flags and the system headers its C and C++ files include
    unconditionally (not those the project ships itself). Each name of each kind once, where it is first named
    (files in a sorted walk)."""
    top = root / subdir if subdir else root
    found: list[Declared] = []
    sources: list[Path] = []
    own: set[str] = set()
    readers = {"configure": lambda p, r: [*_autoconf(p, r), *_shell_libs(p, r)], "makefile": _makefile,
               "meson": _meson, "cmake": _cmake}
    for path in _walk(top):
        rel = path.relative_to(root).as_posix()
        name = path.name
        role = build_file(path, top, system)
        if role:
            found += readers[role](path, rel)
        if name.endswith(_SOURCES):
            own.add(name)
            own.add(path.relative_to(top).as_posix())
            if system in ("make", "run") and not name.endswith(_HEADERS):
                sources.append(path)
    for path in sources:
        found += (d for d in _includes(path, path.relative_to(root).as_posix())
                  if d.name not in own and d.name.rsplit("/", 1)[-1] not in own)
    return once(found)


def build_file(path: Path, top: Path, system: str) -> str | None:
    """What path is to a build with system whose files are in top: its "configure" script's source, a
    "makefile" (autotools' Makefile.am; any of a plain make project's), a "meson" or "cmake" file; None if none."""
    name = path.name
    if system == "autotools" and name in ("configure.ac", "configure.in") and path.parent == top:
        return "configure"
    plain_make = system in ("make", "run") and re.fullmatch(_MAKEFILES, name) is not None
    if (system == "autotools" and name == "Makefile.am") or plain_make:
        return "makefile"
    if (system, name) in (("meson", "meson.build"), ("cmake", "CMakeLists.txt")):
        return system
    return None


def included(root: Path, files: Sequence[str]) -> tuple[Declared, ...]:
    """The system headers --src files (relative to root) include unconditionally, the files' own left out."""
    own = {os.path.basename(f) for f in files} | set(files)
    found = [d for f in files for d in _includes(root / f, f) if d.name not in own]
    return once(found)


def once(found: Iterable[Declared]) -> tuple[Declared, ...]:
    seen: dict[tuple[str, str], Declared] = {}
    for d in found:
        seen.setdefault((d.kind, d.name), d)
    return tuple(seen.values())


def _walk(top: Path, skip: frozenset[str] = _SKIP_DIRS) -> Iterator[Path]:
    """The regular files under top, sorted, at most _DEPTH_MAX directories down and _FILES_MAX in all, none in a
    directory named in skip; symlinks are not followed (a link could lead anywhere on the machine)."""
    count = 0
    for dirpath, dirnames, filenames in os.walk(top):
        depth = len(Path(dirpath).relative_to(top).parts)
        dirnames[:] = sorted(d for d in dirnames if d.lower() not in skip and not d.startswith(".")
                             and depth < _DEPTH_MAX)
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.is_symlink() or not path.is_file():
                continue
            count += 1
            if count > _FILES_MAX:
                return
            yield path


def _lines(path: Path) -> list[str]:
    """The first _READ_MAX bytes of path as lines (undecodable bytes replaced); none if it cannot be read."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(_READ_MAX)
    except OSError:
        return []
    return data.decode("utf-8", "replace").splitlines()


def _args(text: str) -> list[str]:
    """A macro's arguments: split at top-level commas, brackets and quotes stripped."""
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == "," and depth <= 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return [a.strip().strip("[]\"' \t") for a in out]


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[\s\[\]]+", text) if re.fullmatch(_NAME, w)]


def _calls(lines: list[str], comment: str, names: re.Pattern[str]) -> Iterator[tuple[int, str, str]]:
    """Each call of a macro or command that names matches: its line, its name and its arguments' text (to the
    matching parenthesis, over the next few lines: calls span lines), comments cut."""
    cut = [re.split(comment, line, maxsplit=1)[0] for line in lines]
    for i, line in enumerate(cut):
        for m in names.finditer(line):
            rest = " ".join([line[m.end():], *cut[i + 1:i + 12]])
            depth, end = 1, len(rest)
            for j, ch in enumerate(rest):
                depth += {"(": 1, ")": -1}.get(ch, 0)
                if depth == 0:
                    end = j
                    break
            yield i + 1, m.group(1), rest[:end]


def _autoconf(path: Path, rel: str) -> list[Declared]:
    out: list[Declared] = []
    for number, macro, body in _calls(_lines(path), r"\bdnl\b|(?:^|\s)#", re.compile(_AC)):
        args = _args(body)
        where = f"{rel}:{number}"
        if macro.startswith("PKG_CHECK"):
            mods = args[1] if macro != "PKG_CHECK_EXISTS" and len(args) > 1 else args[0]
            out += [Declared("pkg-config", m, where) for m in _modules(mods)]
        elif macro == "AC_CHECK_LIB":
            out += [Declared("library", w, where) for w in _words(args[0])[:1]]
        elif macro == "AC_SEARCH_LIBS" and len(args) > 1:
            out += [Declared("library", w, where) for w in _words(args[1])]
        elif macro.startswith("AC_CHECK_HEADER"):
            out += [Declared("header", w, where) for w in _words(args[0]) if w.endswith(".h")]
    return out


def _shell_libs(path: Path, rel: str) -> list[Declared]:
    """-lX that configure.ac's own shell puts in a library variable to try a link (screen's
    `LIBS="-lncursesw $olibs"`), outside any macro that names it."""
    out: list[Declared] = []
    for i, raw in enumerate(_lines(path)):
        var = re.match(_MAKE_VAR, re.split(r"\bdnl\b|(?:^|\s)#", raw, maxsplit=1)[0])
        if var:
            text = var.group(2).replace('"', " ").replace("'", " ")
            out += [Declared("library", n, f"{rel}:{i + 1}") for n in re.findall(_LFLAG, text) if "$" not in n]
    return out


def _modules(text: str) -> list[str]:
    """pkg-config modules of a list such as "glib-2.0 >= 2.40 gio-2.0" or "x>=1": the names, not the versions."""
    spaced = re.sub(r"(<=|>=|!=|=|<|>)", r" \1 ", text.replace(",", " "))
    out, skip = [], False
    for w in spaced.split():
        if w in ("<", "<=", "=", ">=", ">", "!="):
            skip = True
        elif skip:
            skip = False
        elif re.fullmatch(_NAME, w) and not w[0].isdigit():
            out.append(w)
    return out


def _meson(path: Path, rel: str) -> list[Declared]:
    out: list[Declared] = []
    for i, raw in enumerate(_lines(path)):
        line = raw.split("#", 1)[0]
        out += [Declared("pkg-config", m, f"{rel}:{i + 1}") for m in re.findall(_MESON_DEP, line)
                if re.fullmatch(_NAME, m) and m not in _MESON_SPECIAL]
        out += [Declared("library", m, f"{rel}:{i + 1}") for m in re.findall(_MESON_LIB, line)
                if re.fullmatch(_NAME, m)]
    return out


# dependency() names Meson answers itself, without a pkg-config module of that name
_MESON_SPECIAL = frozenset({"threads", "openmp", "dl", "iconv", "intl", "libc", "appleframeworks", "mpi", "cuda",
                            "blocks", "coarray", "netcdf", "hdf5", "gtest", "gmock", "boost", "python3", "qt5", "qt6"})


def _cmake(path: Path, rel: str) -> list[Declared]:
    out: list[Declared] = []
    for number, name, body in _calls(_lines(path), r"#", re.compile(_CMAKE)):
        command, args = name.lower(), [a.strip('"') for a in body.split()]
        where = f"{rel}:{number}"
        if command == "find_package" and args and re.fullmatch(_NAME, args[0]):
            out.append(Declared("cmake", args[0], where))
        elif command in ("pkg_check_modules", "pkg_search_module"):
            mods = [a for a in args[1:] if a not in ("REQUIRED", "QUIET", "IMPORTED_TARGET", "GLOBAL", "NO_CMAKE_PATH",
                                                     "NO_CMAKE_ENVIRONMENT_PATH")]
            out += [Declared("pkg-config", x, where) for x in _modules(" ".join(mods))]
        elif command == "find_library" and len(args) > 1:
            names = args[2:] if args[1] == "NAMES" else args[1:2]
            for n in names:
                if n.isupper() or "$" in n:
                    break
                if re.fullmatch(_NAME, n):
                    out.append(Declared("library", n.removeprefix("lib") if n.startswith("lib") and len(n) > 3
                                        else n, where))
        elif command in ("check_include_file", "check_include_files") and args:
            out += [Declared("header", h, where) for h in args[0].strip('"').split(";") if h.endswith(".h")]
        elif command == "check_library_exists" and args and re.fullmatch(_NAME, args[0]):
            out.append(Declared("library", args[0], where))
    return out


def _makefile(path: Path, rel: str) -> list[Declared]:
    """-lX in a Makefile's library variables (LIBS, LDLIBS, LDADD, ...) and on its link lines ($(CC) ... -o)."""
    out: list[Declared] = []
    for i, raw in enumerate(_lines(path)):
        line = raw.split("#", 1)[0]
        var = re.match(_MAKE_VAR, line)
        text = var.group(2) if var else (line if re.search(_LINK_LINE, line) else "")
        out += [Declared("library", n, f"{rel}:{i + 1}") for n in re.findall(_LFLAG, text) if "$" not in n]
    return out


def _includes(path: Path, rel: str) -> list[Declared]:
    """The <...> headers a source includes outside any #if block (an include guard's #ifndef does not count):
    what a build of it needs whatever is configured."""
    out: list[Declared] = []
    depth = 0
    guard: str | None = None
    lines = _lines(path)
    for i, line in enumerate(lines):
        if "#" not in line:
            continue
        m = _INCLUDE.match(line)
        if m and depth == 0:
            out.append(Declared("header", m.group(1), f"{rel}:{i + 1}"))
            continue
        c = _COND.match(line)
        if not c:
            continue
        word, name = c.groups()
        if word in ("if", "ifdef", "ifndef"):
            nxt = lines[i + 1] if i + 1 < len(lines) else ""
            if word == "ifndef" and guard is None and depth == 0 and re.match(rf"\s*#\s*define\s+{name}\b", nxt):
                guard = name  # an include guard: what it encloses is the whole file
                continue
            depth += 1
        elif word == "endif":
            depth = max(depth - 1, 0)
    return out
