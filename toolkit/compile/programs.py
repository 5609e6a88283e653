"""The build tools a project declares it runs (compile/found.py maps them to the Debian packages that install
them on the build machine): the programs its configure.ac, Makefile.am, meson.build and CMakeLists.txt look for,
and the known tools its Makefiles' recipes and the scripts they run call, each with the file and line that names
it. Analysis only, bounded as compile/deps.py's reads are; nothing of the project is run."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from .deps import _SKIP_DIRS, Declared, _args, _calls, _lines, _walk, build_file, once

# A program's name as a project may write it: no quote, no $, no slash, no space, no leading dash: anything else
# (a path, a command substitution, a shell word) is not a name to look up.
_PROGRAM = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")
# Tools a Makefile recipe's command may be, and the ones a build script's line may start with: the build tools
# Debian's Build-Depends name most often. (A recipe's other commands are the project's own or the base's.)
KNOWN = frozenset("""
tclsh msgfmt xgettext msgmerge msgcat msginit msgconv makeinfo texi2any po4a po4a-translate po4a-updatepo
po4a-gettextize bison yacc byacc flex lex re2c help2man perl python3 python xxd gperf ed m4 autopoint pod2man
pod2text pod2html gawk groff nroff xsltproc rst2man nasm yasm txt2man gengetopt intltool-merge itstool ruby
glib-compile-resources glib-mkenums glib-genmarshal wayland-scanner patch bc dc lzip
""".split())
# Never installed, though declared: what costs hundreds of megabytes for documentation or a path a program only
# names (LaTeX, Doxygen, Sphinx; xterm and the X libraries), or changes what a build does (a VCS, a memory checker,
# a compiler: the build image's gcc is the one the wrappers drive).
NOT_INSTALLED = frozenset("""
doxygen dot sphinx-build sphinx-build-3 latex pdflatex xelatex lualatex tex dvips ps2pdf gs xmlto asciidoc a2x
asciidoctor pandoc ronn docbook2man docbook2html db2x_docbook2man gtkdoc-scan gtkdoc-mkdb git hg svn bzr cvs
valgrind gdb strace ccache sccache distcc clang-format clang-tidy cppcheck lcov genhtml gcovr java javac jar
rustc cargo go node nodejs npm mono php ghc bundle gem cl clang clang++ icc tcc g++ gcc cc c++ true false none
xterm x-terminal-emulator
""".split())
# CMake's find_package names for tools, as the program each finds.
CMAKE = {"BISON": "bison", "FLEX": "flex", "Gettext": "msgfmt", "Perl": "perl", "PerlLibs": "perl",
         "PythonInterp": "python3", "Python": "python3", "Python3": "python3", "TCL": "tclsh", "Tclsh": "tclsh",
         "TclStub": "tclsh", "Ruby": "ruby", "Patch": "patch", "LATEX": "latex", "Doxygen": "doxygen",
         "Git": "git", "Subversion": "svn", "Java": "java", "Gperf": "gperf", "GPERF": "gperf", "RE2C": "re2c"}
# Autoconf's macros that look for a program of their own: the names each tries, in order.
_AC_FIXED = {"AC_PROG_YACC": "bison byacc yacc", "AC_PROG_LEX": "flex lex", "AM_PROG_LEX": "flex lex",
             "AM_GNU_GETTEXT": "msgfmt", "AM_GNU_GETTEXT_VERSION": "autopoint", "AM_PATH_PYTHON": "python3",
             "IT_PROG_INTLTOOL": "intltool-merge"}
_AC_FIXED_RE = re.compile(rf"\b({'|'.join(_AC_FIXED)})\b")
# ... and those whose second argument names them: AC_PATH_PROG(VAR, name), AC_CHECK_PROGS(VAR, names), ...
_AC = re.compile(r"\b(AC_PATH_PROGS?|AC_CHECK_PROGS?|AC_PATH_TOOLS?|AC_CHECK_TOOLS?|AM_MISSING_PROG)\s*\(")
_MESON_FIND = re.compile(r"\b(find_program)\s*\(")
_MESON_I18N = re.compile(r"\bimport\s*\(\s*'i18n'\s*\)")
_CMAKE = re.compile(r"\b(find_package|find_program)\s*\(", re.IGNORECASE)
_CMAKE_WORDS = frozenset({"NAMES", "PATHS", "HINTS", "DOC", "REQUIRED", "NO_DEFAULT_PATH", "NAMES_PER_DIR",
                          "PATH_SUFFIXES", "QUIET", "NO_CACHE", "VALIDATOR", "REGISTRY_VIEW", "ENV", "OPTIONAL"})
_ASSIGN = re.compile(r"^\s*(?:override\s+|export\s+)?([A-Za-z0-9_]+)\s*[+:?!]?=\s*(.*)")
_VAR = re.compile(r"^\$[({]([A-Za-z0-9_]+)[)}]$")
_ENV_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=\S*")
_SCRIPT_MAX = 64  # scripts a project's recipes run, read in one walk


def declared(root: Path, subdir: str = "", system: str = "make") -> tuple[Declared, ...]:
    """The build tools the project at root declares for a build in root/subdir with system (as compile/plan.py
    detected it), kind "program": a name, or alternatives a|b|c when any one will do (AC_CHECK_PROGS,
    AC_PROG_YACC, find_program(NAMES ...)). Documentation directories are read too: their tools run in `make
    all` as much as the program's do. Each name once, where it is first named (files in a sorted walk)."""
    top = root / subdir if subdir else root
    found: list[Declared] = []
    scripts: dict[Path, None] = {}  # the project's scripts its recipes run
    po = False
    readers = {"configure": _autoconf, "makefile": lambda p, r: _makefile(p, r, scripts), "meson": _meson,
               "cmake": _cmake}
    for path in _walk(top, _SKIP_DIRS - {"doc", "docs"}):
        rel = path.relative_to(root).as_posix()
        name = path.name
        role = build_file(path, top, system)
        if role:
            found += readers[role](path, rel)
        if system == "autotools" and name.endswith(".po") and path.parent.name == "po" and not po:
            po = True  # translations: msgfmt makes the catalogues `make all` installs
            found.append(Declared("program", "msgfmt", rel))
    for script in list(scripts)[:_SCRIPT_MAX]:
        found += _script(script, script.relative_to(root).as_posix())
    return once(found)


def _names(text: str) -> list[str]:
    """The program names of a list ("tclsh8.6 tclsh", "'bison -y' byacc"): each item's first word, names only;
    none from a list that holds shell ($VAR, $(...), `...`, ; | & < >): what it runs is not a name to look up."""
    if re.search(r"[$`;|&<>(){}\\]", text):
        return []
    items = re.findall(r"'([^']*)'|\"([^\"]*)\"|([^\s\[\],'\"]+)", text)
    firsts = [(q1 or q2 or bare).split()[:1] for q1, q2, bare in items]
    return [w[0] for w in firsts if w and _PROGRAM.fullmatch(w[0])]


def _program(names: list[str], where: str) -> list[Declared]:
    """One declaration of names (alternatives), none when there is no name or one is never installed."""
    names = list(dict.fromkeys(names))
    if not names or any(n in NOT_INSTALLED for n in names):
        return []
    return [Declared("program", "|".join(names), where)]


def _autoconf(path: Path, rel: str) -> list[Declared]:
    out: list[Declared] = []
    lines = _lines(path)
    comment = r"\bdnl\b|(?:^|\s)#"
    for number, _, body in _calls(lines, comment, _AC):
        args = _args(body)
        if len(args) > 1:
            out += _program(_names(args[1]), f"{rel}:{number}")
    for i, line in enumerate(lines):  # AC_PROG_YACC is often written without parentheses
        for macro in _AC_FIXED_RE.findall(re.split(comment, line, maxsplit=1)[0]):
            out += _program(_AC_FIXED[macro].split(), f"{rel}:{i + 1}")
    return sorted(out, key=lambda d: int(d.where.rsplit(":", 1)[1]))  # in the file's order


def _meson(path: Path, rel: str) -> list[Declared]:
    out: list[Declared] = []
    lines = _lines(path)
    for number, _, body in _calls(lines, r"#", _MESON_FIND):
        positional = [a for a in _args(body) if ":" not in a]
        out += _program([n for a in positional for n in _names(a)], f"{rel}:{number}")
    for i, line in enumerate(lines):
        if _MESON_I18N.search(line.split("#", 1)[0]):
            out.append(Declared("program", "msgfmt", f"{rel}:{i + 1}"))
    return out


def _cmake(path: Path, rel: str) -> list[Declared]:
    out: list[Declared] = []
    for number, command, body in _calls(_lines(path), r"#", _CMAKE):
        args = [a.strip('"') for a in body.split()]
        where = f"{rel}:{number}"
        if command.lower() == "find_package" and args and args[0] in CMAKE:
            out += _program([CMAKE[args[0]]], where)
        elif command.lower() == "find_program" and len(args) > 1:
            names = args[2:] if args[1] == "NAMES" else args[1:2]
            taken = []
            for n in names:
                if n in _CMAKE_WORDS:
                    break
                taken.append(n)
            out += _program([n for n in taken if _PROGRAM.fullmatch(n)], where)
    return out


def _makefile(path: Path, rel: str, scripts: dict[Path, None]) -> list[Declared]:
    """Known tools a recipe runs: each command's first word (after VAR=value words), a $(VAR) the file sets
    taken as its value's first known tool, one it does not as the tool it names ($(HELP2MAN): help2man);
    Texinfo manuals (automake's info_TEXINFOS: makeinfo); and the scripts of the project a recipe runs
    (./fix-libmath_h, $(srcdir)/mk.sh), kept in scripts to be read after the walk."""
    lines = _lines(path)
    values: dict[str, str] = {}
    for line in lines:
        m = _ASSIGN.match(line.split("#", 1)[0])
        if m and not line.startswith("\t"):
            values.setdefault(m.group(1), m.group(2))
    out: list[Declared] = []
    for i, line in enumerate(lines):
        if re.match(r"\s*info_TEXINFOS\s*\+?=\s*\S", line):
            out.append(Declared("program", "makeinfo", f"{rel}:{i + 1}"))
        if not line.startswith("\t"):
            continue
        for word in _commands(line.split("#", 1)[0]):
            var = _VAR.match(word)
            if var and var.group(1) in values:
                word = next((w for w in values[var.group(1)].split() if w in KNOWN), "")
            elif var:  # set by configure (automake's $(HELP2MAN), $(MSGFMT), $(YACC)): named for its program
                word = var.group(1).lower()
            if word in KNOWN:
                out.append(Declared("program", word, f"{rel}:{i + 1}"))
            elif re.fullmatch(r"(?:\./|\$[({]srcdir[)}]/)[A-Za-z0-9_.-]+", word):
                script = path.parent / word.rsplit("/", 1)[1]
                if script.is_file() and not script.is_symlink():
                    scripts.setdefault(script, None)
    return out


def _commands(line: str) -> Iterator[str]:
    """The first word of each command of a recipe line (split at ; | && ||; make's @ - + prefixes and leading
    VAR=value words dropped)."""
    for part in re.split(r";|\|\|?|&&", line):
        words = part.strip().lstrip("@-+").split()
        while words and _ENV_WORD.fullmatch(words[0]):
            words.pop(0)
        if words:
            yield words[0]


def _script(path: Path, rel: str) -> list[Declared]:
    """Known tools a project's script (one a recipe runs) starts a command with: `ed libmath.h <<EOF`."""
    out = []
    for i, line in enumerate(_lines(path)[:2000]):
        for word in _commands(line.split("#", 1)[0]):
            if word in KNOWN:
                out.append(Declared("program", word, f"{rel}:{i + 1}"))
    return out
