"""Checking a whole image without running it: its filesystem (its layers, read as tar streams, whiteouts applied),
its CMD/ENTRYPOINT program, and every ELF's interpreter and libraries as the loader would find them (check/ldso.py).

The checks work on an ImageFS and the image's config dict; only `inspect_image` talks to the engine (an image in a
registry comes through image/pulled.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
import posixpath
import shutil
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import IO, Any

from .. import targets
from ..engine import client as engine
from ..errors import EngineError, InputError
from . import elf, ldso
from . import verify as policy
from .elf import ElfFacts

log = logging.getLogger(__name__)

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # what Docker sets when unset
_MAX_SYMLINKS = 40  # the kernel's limit (ELOOP)
_MAX_SHEBANG_DEPTH = 4  # the kernel's limit on nested #! interpreters
# What the kernel says when a path leads nowhere (strerror of ENOENT, ELOOP, ENOTDIR), as `docker run` shows it.
_ENOENT, _ELOOP, _ENOTDIR = "no such file or directory", "too many levels of symbolic links", "not a directory"
_TEXT_MAX = 64 << 10  # small files under /etc are kept, for ld.so.conf and its includes
_SPOOL_MAX = 32 << 20  # an ELF bigger than this is spooled to disk while its headers are read
LABEL = "org.fromscratch.role"


@dataclass
class Node:
    """One path of the image: a regular file, directory, symlink, or other (device, FIFO)."""

    kind: str
    mode: int = 0
    link: str = ""
    size: int = 0
    facts: ElfFacts | None = None  # ELF files only
    head: bytes = b""  # first bytes of other regular files, to say what they are
    text: bytes | None = None


class ImageFS:
    """An image's merged filesystem, held as paths -> Node, with symlinks resolved inside the image."""

    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {"/": Node("dir", 0o755)}
        self.children: dict[str, set[str]] = {"/": set()}

    @classmethod
    def from_tar(cls, fileobj: IO[bytes]) -> ImageFS:
        """Read a filesystem tar (what `docker export` writes) as a stream: each member is read once."""
        return cls.from_layers([fileobj])

    @classmethod
    def from_layers(cls, layers: Iterable[IO[bytes]]) -> ImageFS:
        """An image's filesystem from its layer tars (plain or gzip-compressed), bottom first, each read once as a
        stream: a later layer's file replaces an earlier one, and its whiteouts (.wh.NAME, .wh..wh..opq) remove
        what lies below, as overlayfs merges them."""
        fs = cls()
        try:
            for fileobj in layers:
                with tarfile.open(fileobj=fileobj, mode="r|*") as tar:
                    for member in tar:
                        fs._add(tar, member)
        except (tarfile.TarError, EOFError, OSError) as exc:  # gzip's errors are OSError and EOFError
            raise EngineError(f"the image's filesystem is not a readable tar ({exc})") from exc
        return fs

    def _add(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        path = _normalize(member.name)
        if path == "/":
            return
        parent, name = posixpath.split(path)
        if name == ".wh..wh..opq":  # the directory's lower contents are hidden
            for child in list(self.children.get(parent, ())):
                self._remove(posixpath.join(parent, child))
            return
        if name.startswith(".wh."):
            self._remove(posixpath.join(parent, name[4:]))
            return
        if path in self.nodes and not (member.isdir() and self.nodes[path].kind == "dir"):
            self._remove(path)  # replaced: a directory by a file drops what was under it
        if member.isdir():
            node = Node("dir", member.mode)
        elif member.issym():
            node = Node("symlink", member.mode, link=member.linkname)
        elif member.islnk():
            original = self.nodes.get(_normalize(member.linkname))
            node = original if original is not None else Node("other")
        elif member.isreg():
            node = _regular(tar, member, path)
        else:
            node = Node("other", member.mode)
        self._put(path, node)

    def _remove(self, path: str) -> None:
        for child in list(self.children.get(path, ())):
            self._remove(posixpath.join(path, child))
        self.children.pop(path, None)
        if self.nodes.pop(path, None) is not None:
            parent, name = posixpath.split(path)
            self.children.get(parent, set()).discard(name)

    def _put(self, path: str, node: Node) -> None:
        self.nodes[path] = node
        parent, name = posixpath.split(path)
        while True:
            self.children.setdefault(parent, set()).add(name)
            if parent in self.nodes:
                break
            self.nodes[parent] = Node("dir", 0o755)  # a parent the tar did not list
            parent, name = posixpath.split(parent)
        if node.kind == "dir":
            self.children.setdefault(path, set())

    # -- the ldso.RootFS view --

    def resolve(self, path: str) -> str | None:
        return self._resolve(path, follow_last=True)[0]

    def failure(self, path: str) -> str | None:
        """What the kernel would say opening path, when it cannot: "no such file or directory", "too many levels
        of symbolic links" (a loop) or "not a directory"; None when path leads to something."""
        return self._resolve(path, follow_last=True)[1]

    def lookup(self, path: str) -> Node | None:
        resolved = self.resolve(path)
        return self.nodes.get(resolved) if resolved else None

    def _resolve(self, path: str, follow_last: bool) -> tuple[str | None, str | None]:
        parts = [p for p in path.split("/") if p and p != "."]
        parts.reverse()  # a stack: the next component is at the end
        current = ""
        hops = 0
        while parts:
            name = parts.pop()
            if name == "..":
                current = posixpath.dirname(current) if current else ""  # ".." at the root stays at the root
                current = "" if current == "/" else current
                continue
            candidate = f"{current}/{name}"
            node = self.nodes.get(candidate)
            if node is None:
                return None, _ENOENT
            if node.kind == "symlink" and (parts or follow_last):
                hops += 1
                if hops > _MAX_SYMLINKS:
                    return None, _ELOOP
                if node.link.startswith("/"):
                    current = ""
                parts.extend(reversed([p for p in node.link.split("/") if p and p != "."]))
                continue
            if parts and node.kind != "dir":
                return None, _ENOTDIR  # a file used as a directory
            current = candidate
        return current or "/", None

    def facts(self, path: str) -> ElfFacts | None:
        node = self.nodes.get(path)
        if node is None or node.kind != "file":
            return None
        if node.facts is not None:
            return node.facts
        return elf.sniff(node.head, path, node.size, bool(node.mode & 0o111))

    def text(self, path: str) -> str | None:
        node = self.nodes.get(path)
        if node is None or node.text is None:
            return None
        return node.text.decode("utf-8", "replace")

    def listdir(self, path: str) -> list[str]:
        return sorted(self.children.get(path, ()))

    def elf_files(self) -> list[tuple[str, ElfFacts]]:
        """Every ELF file once (a hardlink's other names are the same file), in path order."""
        seen: set[int] = set()
        out = []
        for path in sorted(self.nodes):
            node = self.nodes[path]
            if node.facts is not None and id(node) not in seen:
                seen.add(id(node))
                out.append((path, node.facts))
        return out


def _regular(tar: tarfile.TarFile, member: tarfile.TarInfo, path: str) -> Node:
    """A regular file of the tar, read as it streams past: an ELF's facts, else its first bytes (and the whole of
    a small file under /etc)."""
    node = Node("file", member.mode, size=member.size)
    src = tar.extractfile(member)
    if src is None:
        return node
    head = src.read(64)
    if head[:4] == elf.ELF_MAGIC:
        # a stream cannot seek back: the ELF is copied to memory (or disk, when big) to read its headers
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL_MAX) as buf:
            buf.write(head)
            while chunk := src.read(1 << 20):
                buf.write(chunk)
            node.facts = elf.read_stream(buf, path, member.size, member.mode)  # type: ignore[arg-type]
    else:
        node.head = head
        if path.startswith("/etc/") and member.size <= _TEXT_MAX:
            node.text = head + src.read()
    return node


def _normalize(name: str) -> str:
    """A member name as an absolute path: "./usr/bin/ls", "usr/bin/ls" and "/usr/bin/ls" are all /usr/bin/ls."""
    return posixpath.normpath("/" + name.lstrip("/"))


@dataclass(frozen=True)
class Problem:
    """An ELF in the image whose interpreter or library the loader would not find."""

    path: str
    kind: str  # interpreter or library
    name: str
    detail: str
    searched: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImageVerdict:
    ref: str
    platform: str
    checks: tuple[policy.Check, ...]
    problems: tuple[Problem, ...]
    files: int
    elf_files: int
    warnings: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def to_dict(self) -> dict:
        return {"image": self.ref, "platform": self.platform, "ok": self.ok, "files": self.files,
                "elf_files": self.elf_files, "checks": [asdict(c) for c in self.checks],
                "problems": [asdict(p) for p in self.problems], "warnings": list(self.warnings)}

    def render(self, limit: int = 50) -> str:
        lines = [f"{self.ref} ({self.platform}): {self.files:,} file(s), {self.elf_files:,} ELF"]
        for check in self.checks:
            lines.append(f"  {'PASS' if check.ok else 'FAIL'}  {check.name:<9} {check.detail}")
            if check.name == "loader":
                for problem in self.problems[:limit]:
                    lines.append(f"          {problem.path}: {problem.detail}")
                if len(self.problems) > limit:
                    lines.append(f"          ... and {len(self.problems) - limit} more (--json lists all)")
        lines += [f"  WARN  {w}" for w in self.warnings]
        lines.append(f"  {'ok' if self.ok else 'not ok'}: " + (
            "the command and every ELF's interpreter and libraries are inside the image" if self.ok
            else f"{sum(1 for c in self.checks if not c.ok)} check(s) failed"))
        return "\n".join(lines)


def check(fs: ImageFS, config: dict, ref: str) -> ImageVerdict:
    """Judge an image from its filesystem and its engine attributes (Architecture, Variant, Os, Config)."""
    cfg = config.get("Config") or {}
    env = _env(cfg.get("Env") or [])
    loader = ldso.Loader(fs, tuple(p for p in env.get("LD_LIBRARY_PATH", "").split(":") if p),
                         cfg.get("WorkingDir") or "/")
    platform_check, target = _platform(config)
    elves = fs.elf_files()
    problems = _loader_problems(fs, loader, elves)
    command, program = _command(fs, loader, cfg, env, target)
    checks = [platform_check, command]
    if problems:
        files = len({p.path for p in problems})
        checks.append(policy.Check("loader", False, f"{files} ELF file(s) need what the image does not have:"))
    else:
        dynamic = sum(1 for _, f in elves if f.interpreter or f.needed)
        checks.append(policy.Check("loader", True, f"{len(elves)} ELF file(s), {dynamic} dynamic: every "
                                                   "interpreter and library is inside the image"))
    corrupt = [p for p, f in elves if f.corrupt]
    warnings = [f"{len(corrupt)} ELF file(s) have corrupt headers: {', '.join(corrupt[:5])}"
                + (" ..." if len(corrupt) > 5 else "")] if corrupt else []
    if program is not None:
        warnings += _data_warnings(fs, program, env)
    files = sum(1 for n in fs.nodes.values() if n.kind == "file")
    platform = target.platform if target else _platform_string(config)
    return ImageVerdict(ref, platform, tuple(checks), tuple(problems), files, len(elves), tuple(warnings))


def _data_warnings(fs: ImageFS, program: str, env: dict[str, str]) -> list[str]:
    """What the command's program reads at run time (terminfo, its locale...) that the image lacks."""
    facts = fs.facts(program)
    if facts is None or not facts.is_elf or not facts.is_static:
        return []
    held = frozenset(fs.nodes)
    out = [f"{program}: {w}" for w in policy.data_warnings(facts, held)]
    if "locale" in facts.reads and facts.libc == "glibc" and policy.has_data("locale", held, facts) \
            and not any(k in env for k in ("LANG", "LC_ALL", "LC_CTYPE")):
        out.append(f"{program}: the image holds {policy.LOCALE_FILE.rsplit('/', 1)[0]} but sets none of LANG, "
                   "LC_ALL, LC_CTYPE: setlocale(LC_ALL, \"\") keeps the C locale unless `docker run -e "
                   "LANG=C.UTF-8`")
    return out


def _env(items: list[str]) -> dict[str, str]:
    return dict(item.split("=", 1) for item in items if "=" in item)


def _platform_string(config: dict) -> str:
    parts = [config.get("Os") or "?", config.get("Architecture") or "?"] + \
        ([config["Variant"]] if config.get("Variant") else [])
    return "/".join(parts)


def _platform(config: dict) -> tuple[policy.Check, targets.Target | None]:
    text = _platform_string(config)
    if config.get("Os", "linux") != "linux":
        return policy.Check("platform", False, f"{text}: not a Linux image"), None
    try:
        target = targets.parse_platform(text) if config.get("Variant") else \
            targets.lookup(config.get("Architecture") or "")
    except InputError:
        return policy.Check("platform", False, f"{text}: not an architecture this toolkit knows "
                                               f"({targets.known_names()})"), None
    return policy.Check("platform", True, target.platform), target


def _loader_problems(fs: ImageFS, loader: ldso.Loader, elves: list[tuple[str, ElfFacts]]) -> list[Problem]:
    problems = []
    for path, facts in elves:
        if facts.corrupt or facts.type not in ("ET_EXEC", "ET_DYN") or facts.is_static:
            continue
        for res in loader.resolve_all(facts, path):
            if not res.ok:
                problems.append(Problem(path, res.kind, res.name, _missing(fs, res, loader), res.searched))
    return problems


def _missing(fs: ImageFS, res: ldso.Resolution, loader: ldso.Loader) -> str:
    wrong = f" ({', '.join(res.wrong)} is there, but is not an ELF file for this architecture and ABI)" \
        if res.wrong else ""
    named = res.name if res.name.startswith("/") else posixpath.join(loader.workdir, res.name)
    if (res.kind == "interpreter" or "/" in res.name) and fs.failure(named) == _ELOOP:
        fails = "no such file or directory" if res.kind == "interpreter" else "error while loading shared libraries"
        return (f"{res.kind} {res.name} is a loop of symbolic links in the image: opening it fails with \"{_ELOOP}\", "
                f"so running it would fail with \"{fails}\"")
    if res.kind == "interpreter":
        return (f"interpreter {res.name} is not in the image{wrong}: running it would fail with "
                "\"no such file or directory\"")
    where = f" (searched {', '.join(res.searched)})" if res.searched else ""
    return (f"library {res.name} is not in the image{wrong}{where}: running it would fail with \"error while "
            "loading shared libraries\"")


def _command(fs: ImageFS, loader: ldso.Loader, cfg: dict, env: dict[str, str],
             target: targets.Target | None) -> tuple[policy.Check, str | None]:
    """The command's check, and the program it runs (its path in the image) when the kernel would run it."""
    argv = list(cfg.get("Entrypoint") or []) + list(cfg.get("Cmd") or [])
    if not argv:
        return policy.Check("command", False, "the image has no CMD or ENTRYPOINT: `docker run` would say "
                                              "\"No command specified\""), None
    program = argv[0]
    workdir = cfg.get("WorkingDir") or "/"
    if "/" not in program:
        for directory in (env.get("PATH") or DEFAULT_PATH).split(":"):
            candidate = posixpath.join(directory or workdir, program)
            node = fs.lookup(candidate if candidate.startswith("/") else posixpath.join(workdir, candidate))
            if node is not None and node.kind == "file" and node.mode & 0o111:
                program = candidate
                break
        else:
            return policy.Check("command", False, f"{program} is not in any $PATH directory of the image: the "
                                                  f"container would fail with \"exec: \\\"{program}\\\": executable "
                                                  "file not found in $PATH\""), None
    path = program if program.startswith("/") else posixpath.join(workdir, program)
    ok, chain = _runnable(fs, loader, path, target, depth=0)
    return policy.Check("command", ok, chain), fs.resolve(path) if ok else None


def _runnable(fs: ImageFS, loader: ldso.Loader, path: str, target: targets.Target | None,
              depth: int) -> tuple[bool, str]:
    """Whether the kernel could exec path inside the image, and the story of why, in one line."""
    resolved = fs.resolve(path)
    node = fs.nodes.get(resolved) if resolved else None
    if node is None or resolved is None:
        failure = fs.failure(path) or _ENOENT
        said = {_ELOOP: "is a loop of symbolic links in the image", _ENOTDIR: "goes through a file as if it were a "
                "directory"}.get(failure, "is not in the image")
        return False, f"{path} {said}: the container would fail with \"exec {path}: {failure}\""
    shown = path if resolved == path else f"{path} (-> {resolved})"
    if node.kind != "file":
        return False, f"{shown} is not a regular file: the container would fail with \"permission denied\""
    if not node.mode & 0o111:
        return False, f"{shown} is not executable (mode {node.mode & 0o7777:o}): the container would fail " \
                      "with \"permission denied\""
    facts = fs.facts(resolved)
    assert facts is not None
    if facts.format == "script":
        interp = facts.script_interpreter
        if not interp:
            return False, f"{shown}: a script whose #! line names no interpreter: \"exec format error\""
        if depth >= _MAX_SHEBANG_DEPTH:
            return False, f"{shown}: too many nested #! interpreters for the kernel"
        ok, rest = _runnable(fs, loader, interp, target, depth + 1)
        crlf = " (its #! line ends in a carriage return: Windows line endings)" if "\r" in interp else ""
        return ok, f"{shown}: a script for {interp!r}{crlf} -> {rest}" if crlf else \
            f"{shown}: a script for {interp} -> {rest}"
    if not facts.is_elf:
        return False, f"{shown}: {facts.describe}: {policy.EXEC_FORMAT_ERROR}"
    failed = [c.detail for c in policy.runnable(facts, target) if not c.ok]
    if failed:
        return False, f"{shown}: {facts.describe}: " + "; ".join(failed)
    missing = [r for r in loader.resolve_all(facts, resolved) if not r.ok]
    if missing:
        return False, f"{shown}: {facts.describe}: " + "; ".join(_missing(fs, r, loader) for r in missing)
    how = f", interpreter {facts.interpreter} found" if facts.interpreter else ", static"
    return True, f"{shown}: {facts.describe}{how}"


def inspect_image(client: engine.Client, ref: str, scratch: str | None = None) -> tuple[dict, ImageFS]:
    """The engine's attributes of ref and its filesystem: its own layers, from `docker save` (what the image
    holds, not the files the engine adds to every container)."""
    image = engine.get_image(client, ref)
    if image is None:
        raise InputError(f"no image {ref} in the engine", hint="check the name with `docker images`; an image "
                         "in a registry: verify-image --remote (or docker pull it)")
    with tempfile.TemporaryDirectory(prefix="fromscratch-verify-", dir=scratch) as tmp:
        with engine.step(f"reading the layers of {ref}"):
            layers = _saved_layers(engine.ChunkReader(image.save(chunk_size=1 << 20, named=False)), tmp)
        return image.attrs, _from_files(layers)


def _saved_layers(stream: Any, tmp: str) -> list[str]:
    """The layer files of a `docker save` stream, bottom first (its manifest.json lists them, and may come after
    them: each is written to tmp as it streams past)."""
    import json

    saved: dict[str, str] = {}
    manifest = None
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            if not member.isfile():
                continue
            src = tar.extractfile(member)
            assert src is not None
            if member.name == "manifest.json":
                manifest = json.loads(src.read(1 << 20))
                continue
            path = os.path.join(tmp, str(len(saved)))
            with open(path, "wb") as fh:
                shutil.copyfileobj(src, fh, 1 << 20)
            saved[member.name] = path
    try:
        return [saved[name] for name in manifest[0]["Layers"]]  # type: ignore[index]
    except (TypeError, KeyError, IndexError) as exc:
        raise EngineError(f"the engine's `docker save` has no usable manifest.json ({exc!r})") from None


def _from_files(paths: Iterable[str]) -> ImageFS:
    with contextlib.ExitStack() as stack:
        return ImageFS.from_layers([stack.enter_context(open(p, "rb")) for p in paths])


def attrs_from_config(config: dict) -> dict:
    """An OCI image config (what a registry holds) in the shape of the engine's attributes, which check() reads."""
    return {"Os": config.get("os"), "Architecture": config.get("architecture"), "Variant": config.get("variant"),
            "Config": config.get("config") or {}}


def verify_layers(config: dict, layers: Iterable[str], ref: str) -> ImageVerdict:
    """Judge an image from its OCI config and its layer files, bottom first (an image read from a registry)."""
    return check(_from_files(layers), attrs_from_config(config), ref)


def verify_image(client: engine.Client, ref: str, scratch: str | None = None) -> ImageVerdict:
    attrs, fs = inspect_image(client, ref, scratch)
    return check(fs, attrs, ref)
