"""A project's kept build settings: fromscratch.toml at its root, read and checked like the flags it stands for,
merged under the flags given (a flag wins, and says so), opened as a plan; and written back (--save) with what a
successful build used. No build runs here: compile/plan.py checks what a value means for the project, this module
what the file may hold."""

from __future__ import annotations

import logging
import os
import re
import shlex
import stat
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from .. import grammar, targets
from ..errors import InputError
from ..files import atomic_output
from . import plan

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 reads TOML with tomli (a dependency there)
    import tomli as tomllib

log = logging.getLogger(__name__)

FILE_NAME = "fromscratch.toml"
MAX_BYTES = 64 << 10  # a recipe is a few lines; a bigger file is not one
MAX_ITEMS = 256  # entries of one list
MAX_VALUE = 4096  # characters of one value

# The file's keys, each with the flag it stands for and its kind: "names" (Debian package names), "paths" (inside
# the project), "words" (a string split as a shell would, like the flag, or an array of words), "text" (one line)
# and "bool". The same keys may appear under [target.ARCH], for that target only.
_KEYS: dict[str, tuple[str, str]] = {
    "packages": ("--package", "names"), "tools": ("--tool", "names"), "subdir": ("--subdir", "path"),
    "system": ("--system", "text"), "run": ("--run", "text"), "configure-args": ("--configure-args", "words"),
    "make-args": ("--make-args", "words"), "cflags": ("--cflags", "words"), "ldflags": ("--ldflags", "words"),
    "artifacts": ("--artifact", "paths"), "strip": ("--strip", "bool"),
}
_TARGET = "target"


@dataclass(frozen=True)
class Settings:
    """Build settings from one source (the flags, the file, one [target.ARCH] table); None: not given there."""

    packages: tuple[str, ...] | None = None
    tools: tuple[str, ...] | None = None
    subdir: str | None = None
    system: str | None = None
    run: str | None = None
    configure_args: tuple[str, ...] | None = None
    make_args: tuple[str, ...] | None = None
    cflags: tuple[str, ...] | None = None
    ldflags: tuple[str, ...] | None = None
    artifacts: tuple[str, ...] | None = None
    strip: bool | None = None

    def given(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


def _field(key: str) -> str:
    return key.replace("-", "_")


def _key(name: str) -> str:
    return name.replace("_", "-")


@dataclass(frozen=True)
class Recipe:
    """A project's file, checked: its settings, and each target's own (by target name)."""

    path: Path
    common: Settings
    by_target: tuple[tuple[str, Settings], ...] = ()


def read(root: Path) -> Recipe | None:
    """root's fromscratch.toml, checked whole (every key, type and value); None when there is none. A file that is
    not one (a symlink, a FIFO, too big, not TOML, not UTF-8) is refused in one line."""
    path = root / FILE_NAME
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror})") from None
    if stat.S_ISLNK(st.st_mode):
        raise InputError(f"{path}: is a symlink", hint="keep the settings in the file itself")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{path}: is not a regular file")
    if st.st_size > MAX_BYTES:
        raise InputError(f"{path}: {st.st_size} bytes, more than a recipe holds ({MAX_BYTES})")
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror})") from None
    if len(raw) > MAX_BYTES:
        raise InputError(f"{path}: more than a recipe holds ({MAX_BYTES} bytes)")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise InputError(f"{path}: is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: is not TOML ({_one_line(str(exc))})") from None
    return parse(data, path)


def _one_line(text: str) -> str:
    return " ".join(text.split())[:200]


def parse(data: Mapping[str, Any], path: Path) -> Recipe:
    """The file's table, checked: known keys only, each of its kind, each value as its flag checks it."""
    by_target: dict[str, Settings] = {}
    for key, value in data.items():
        if key == _TARGET:
            if not isinstance(value, dict):
                raise InputError(f"{path}: {_TARGET} must be a table of tables, e.g. [target.arm64]")
            for arch, table in value.items():
                where = f"{_TARGET}.{_shown(arch)}"
                try:
                    name = targets.lookup(arch).name
                except InputError:
                    raise InputError(f"{path}: {where}: unknown architecture",
                                     hint=f"known: {targets.known_names()}") from None
                if not isinstance(table, dict):
                    raise InputError(f"{path}: {where} must be a table of settings")
                if name in by_target:
                    raise InputError(f"{path}: {where}: target {name} is given twice")
                by_target[name] = _settings(table, path, f"{where}.")
    common = _settings({k: v for k, v in data.items() if k != _TARGET}, path, "")
    return Recipe(path, common, tuple(sorted(by_target.items())))


def _shown(key: object) -> str:
    """A key as a message may show it: printable and short, else quoted."""
    text = str(key)
    return text if text.isprintable() and len(text) <= 40 and re.fullmatch(r"[\w./+-]+", text) else repr(text[:40])


def _settings(table: Mapping[str, Any], path: Path, prefix: str) -> Settings:
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in _KEYS:
            raise InputError(f"{path}: unknown key {prefix}{_shown(key)}",
                             hint=f"the keys are {', '.join(_KEYS)}, and [target.ARCH] tables of them")
        flag, kind = _KEYS[key]
        values[_field(key)] = _value(value, kind, f"{path}: {prefix}{key}")
    settings = Settings(**values)
    if settings.run is not None and settings.system is not None:
        raise InputError(f"{path}: {prefix}run and {prefix}system both say how to build", hint="keep one of them")
    return settings


def _line(value: object, label: str) -> str:
    """One printable line, of a bounded length: a value that can be named in a one-line message."""
    if not isinstance(value, str):
        raise InputError(f"{label}: must be a string, not {_type(value)}")
    if len(value) > MAX_VALUE:
        raise InputError(f"{label}: a value of {len(value)} characters, more than {MAX_VALUE}")
    if not value.isprintable():
        raise InputError(f"{label}: {value[:60]!r} holds a newline or control character",
                         hint="one printable line per value")
    return value


def _type(value: object) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", list: "an array", dict: "a table"}.get(
        type(value), type(value).__name__)


def _list(value: object, label: str) -> list[str]:
    if not isinstance(value, list):
        raise InputError(f"{label}: must be an array of strings, not {_type(value)}")
    if len(value) > MAX_ITEMS:
        raise InputError(f"{label}: {len(value)} entries, more than {MAX_ITEMS}")
    return [_line(v, label) for v in value]


def _value(value: object, kind: str, label: str) -> Any:
    if kind == "bool":
        if not isinstance(value, bool):
            raise InputError(f"{label}: must be true or false, not {_type(value)}")
        return value
    if kind == "names":
        names = tuple(grammar.package(n, label) for n in _list(value, label))
        for n in names:
            if ":" in n:
                raise InputError(f"{label} {n}: give the name without :ARCH",
                                 hint="the build installs it for each target's architecture itself")
        return names
    if kind == "paths":
        return tuple(_path(p, label) for p in _list(value, label))
    if kind == "path":
        return _path(_line(value, label), label)
    if kind == "words":
        if isinstance(value, str):
            try:
                return tuple(shlex.split(_line(value, label)))
            except ValueError as exc:
                raise InputError(f"{label} {value!r} does not parse ({exc})") from None
        return tuple(_list(value, label))
    text = _line(value, label)
    if label.endswith("system") and text not in plan.SYSTEMS:
        raise InputError(f"{label}: unknown build system {text!r}", hint=f"choose {', '.join(plan.SYSTEMS)}")
    if not text.strip():
        raise InputError(f"{label}: is empty")
    return text


def _path(text: str, label: str) -> str:
    """A path inside the project (grammar.inside, as its flag), none of whose parts a tool could take for an
    option."""
    normal = grammar.inside(text, label)
    if any(part.startswith("-") for part in normal.split("/")):
        raise InputError(f"{label} {text}: a path whose part starts with '-'", hint="rename it, or give the flag")
    return normal


# -- merged with the flags ---------------------------------------------------------------------------------------

def merge(flags: Settings, kept: Settings, where: str, say: Callable[[str], None] = log.warning) -> Settings:
    """kept's settings under flags: each flag given wins, and says so when kept gave another value. --run and
    --system are one setting (how to build): either flag beats both keys."""
    out = dict(kept.given())
    given = flags.given()
    if "run" in given or "system" in given:
        for how in ("run", "system"):
            if how in out and given.get(how) != out[how]:
                say(f"--{'run' if 'run' in given else 'system'} given: {where}'s {how} not used")
            out.pop(how, None)
    for name, value in given.items():
        if name in out and out[name] != value and name not in ("run", "system"):
            say(f"{_KEYS[_key(name)][0]} given: {where}'s {_key(name)} not used")
        out[name] = value
    return Settings(**out)


def open_project(root: str, flags: Settings, say: Callable[[str], None] = log.warning) -> plan.Plan:
    """The project at root with its fromscratch.toml (when it has one) under the flags: a plan whose for_target
    gives each [target.ARCH] its own."""
    top = Path(root)
    recipe = read(top) if top.is_dir() else None
    if recipe is None:
        return _plan(root, flags)
    shown = str(recipe.path)
    common = merge(flags, recipe.common, shown, say)
    job = _plan(root, common)
    per_target = []
    for name, own in recipe.by_target:
        merge(flags, own, f"{shown} [target.{name}]", say)  # said for the target's own keys only
        merged = merge(flags, merge(own, recipe.common, shown, _silent), shown, _silent)
        per_target.append((name, _plan(root, merged)))
    return replace(job, by_target=tuple(per_target))


def _silent(_: str) -> None:
    pass


def _plan(root: str, s: Settings) -> plan.Plan:
    return plan.open_project(root, s.subdir or "", s.system, s.run, bool(s.strip),
                             configure_args=s.configure_args or (), make_args=s.make_args or (),
                             packages=s.packages or (), tools=s.tools or (), artifacts=s.artifacts or (),
                             cflags=s.cflags or (), ldflags=s.ldflags or ())


# -- written back ------------------------------------------------------------------------------------------------

def used(job: plan.Plan) -> Settings:
    """What a plan builds with, as settings (the system it found included: the next build need not look)."""
    how = {"run": job.run} if job.system == "run" else {"system": job.system}
    return Settings(packages=job.packages, tools=job.tools, subdir=job.subdir or None,
                    configure_args=job.configure_args, make_args=job.make_args, cflags=job.cflags,
                    ldflags=job.ldflags, artifacts=job.artifacts, strip=job.strip, **how)


def with_found(s: Settings, found: Iterable[str]) -> Settings:
    """s with the packages a build found for itself added (the hook for compile/deps.py: what it found is kept as
    if it had been asked for, so the next build need not look)."""
    return replace(s, packages=tuple(dict.fromkeys([*(s.packages or ()), *found])))


def text(common: Settings, by_target: Sequence[tuple[str, Settings]] = ()) -> str:
    """The file: the settings, then a [target.ARCH] table for each target whose own differ; empty values left out."""
    lines = [f"# {FILE_NAME}: build settings for `fromscratch build --project DIR` (written by --save)"]
    lines += _lines(common)
    for name, own in by_target:
        differ = Settings(**{k: v for k, v in own.given().items() if common.given().get(k) != v})
        if differ.given():
            lines += ["", f"[{_TARGET}.{_toml_key(name)}]", *_lines(differ, everything=True)]
    return "\n".join(lines) + "\n"


def _lines(s: Settings, everything: bool = False) -> list[str]:
    """A line for each setting; empty ones only when everything (a target's own empty list overrides the file's)."""
    out = []
    for name, value in s.given().items():
        if not everything and (value == () or value is False):
            continue
        key = _key(name)
        if isinstance(value, bool):
            out.append(f"{key} = {'true' if value else 'false'}")
        elif isinstance(value, tuple):
            out.append(f"{key} = [{', '.join(_toml_string(v) for v in value)}]")
        else:
            out.append(f"{key} = {_toml_string(value)}")
    return out


def _toml_key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else _toml_string(name)


def _toml_string(value: str) -> str:
    """A TOML basic string: quote and backslash escaped, every other character that is not printable as \\uXXXX."""
    out = ['"']
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(f"\\U{ord(ch):08X}")
    out.append('"')
    return "".join(out)


def save(job: plan.Plan, found: Mapping[str, Iterable[str]] | None = None) -> Path:
    """Write what job built with to its project's fromscratch.toml, whole or not at all; found: packages a build
    found for itself, by target name ("" for every target), kept too."""
    found = found or {}
    common = with_found(used(job), found.get("", ()))
    per_target = [(name, with_found(used(p), found.get(name, ()))) for name, p in job.by_target]
    for name, packages in found.items():
        if name and name not in dict(job.by_target):
            per_target.append((name, with_found(common, packages)))
    path = job.root / FILE_NAME
    with atomic_output(path) as tmp:
        tmp.write_text(text(common, sorted(per_target)))
    return path
