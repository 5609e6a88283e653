"""Kept build state: a project's build tree kept between its builds for one target, toolchain, build image and set
of flags (in a volume on the engine, or under the user's cache directory for a native build), so that a rebuild
sends in only the files whose content changed, deletes those the project no longer has, and its own build system
rebuilds only what they touch. The toolchains move the files; here what changed, and what `invoke clean` lists
and removes."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from .. import files, targets
from . import plan

log = logging.getLogger(__name__)

STATE_DIR = ".fromscratch"  # in the work directory, beside src/, build/ and the tools
MANIFEST, DIRTY, GONE, SENT = "manifest.json", "dirty", "gone", "sent"
RUNNER = Path(__file__).with_name("kept.sh")
PREFIX = "fromscratch-state-"  # a kept state's volume, or directory under cache_dir()/state
LABEL = "org.fromscratch.state."  # its labels: project, target, toolchain, image, place


@dataclass(frozen=True)
class Key:
    """Which kept state a build uses: name (its volume or directory) follows everything the build's result
    depends on; place only the project, target and toolchain (a newer state of a place replaces the older)."""

    name: str
    place: str
    labels: tuple[tuple[str, str], ...]


def key(job: plan.Plan, target: targets.Target, toolchain: str, image: str, libc: str) -> Key:
    """The kept state of job for target with toolchain, in image (a build image's tag, or what the host's
    compiler is), linking libc: a changed flag, tool, package or build image is another state."""
    where = json.dumps([str(job.root), target.name, toolchain])
    what = json.dumps([where, image, libc, repr(replace(job, by_target=()))])
    place = hashlib.sha256(where.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    name = PREFIX + hashlib.sha256(what.encode("utf-8", "surrogateescape")).hexdigest()[:24]
    labels = (("project", str(job.root)), ("target", target.name), ("toolchain", toolchain), ("image", image),
              ("place", place))
    return Key(name, place, tuple((LABEL + k, v.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
                                  for k, v in labels))


def lock_name(name: str) -> str:
    return f"state-{name.replace('/', '_')}"


@dataclass(frozen=True)
class Changes:
    """What a rebuild sends: the new manifest, the entries to send (new or changed content, mode or link), and
    the paths to delete (the project no longer has them)."""

    manifest: dict[str, list]
    send: list[files.TreeEntry]
    gone: list[str]

    def gone_list(self) -> bytes:
        """The paths to delete as kept.sh reads them: NUL-separated, each ./ relative (never an option)."""
        return _paths(self.gone)

    def sent_list(self) -> bytes:
        """The files sent, for kept.sh to touch, in the same form."""
        return _paths(e.rel for e in self.send if e.kind == "file")

    def manifest_bytes(self) -> bytes:
        return json.dumps(self.manifest, sort_keys=True).encode()


def _paths(rels: Iterable[str]) -> bytes:
    return b"".join(b"./" + os.fsencode(rel) + b"\0" for rel in rels)


def _digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def changes(entries: Iterable[files.TreeEntry], old: dict[str, list] | None) -> Changes:
    """Compare the project's entries with the manifest of the kept state (None: there is none; everything is
    sent). A file whose size and modification time are unchanged is taken as unchanged; one whose times changed
    is read, and sent only when its content did."""
    old = old or {}
    manifest: dict[str, list] = {}
    send: list[files.TreeEntry] = []
    for entry in entries:
        before = old.get(entry.rel)
        if entry.kind == "dir":
            manifest[entry.rel] = ["dir", entry.mode & 0o7777, 0, 0, ""]
            if not before or before[0] != "dir":
                send.append(entry)
            continue
        if entry.kind == "link":
            manifest[entry.rel] = ["link", 0o777, 0, 0, entry.link]
            if manifest[entry.rel] != before:
                send.append(entry)
            continue
        st = os.stat(entry.source)
        mode = entry.mode & 0o7777
        if before and before[:4] == ["file", mode, st.st_size, entry.mtime_ns]:
            manifest[entry.rel] = before
            continue
        digest = _digest(entry.source)
        manifest[entry.rel] = ["file", mode, st.st_size, entry.mtime_ns, digest]
        if not before or before[0] != "file" or before[1] != mode or before[4] != digest:
            send.append(entry)
    gone = sorted(rel for rel in old if rel not in manifest and rel and not _under_gone(rel, old, manifest))
    return Changes(manifest, send, gone)


def _under_gone(rel: str, old: dict[str, list], manifest: dict[str, list]) -> bool:
    """Whether a gone path's parent directory is gone too (deleting the parent deletes it)."""
    parent = os.path.dirname(rel)
    return bool(parent) and parent in old and parent not in manifest


def read_manifest(found: dict[str, bytes] | None) -> tuple[dict[str, list] | None, bool]:
    """The manifest of a kept state's state directory (None: none, or unreadable: everything is sent) and
    whether the state was left mid-change (a build stopped half-way: it must be built from nothing)."""
    if found is None:
        return None, False
    if DIRTY in found or any(name.startswith(CHANGING) for name in found):  # a change cut short
        return None, True
    try:
        manifest = json.loads(found.get(MANIFEST, b"null"))
    except ValueError:
        return None, True
    if not isinstance(manifest, dict) or not all(isinstance(v, list) and len(v) == 5 for v in manifest.values()):
        return None, bool(found)
    return manifest, False


DONE = "done"  # under state_root(): per place, what its last build delivered and the tree it was built from


def done_dir(k: Key) -> Path:
    """Where the outputs of the last build of k's place are kept on this machine, with the manifest of the tree
    it was built from and the key and build image it was built under (done.json)."""
    return state_root() / DONE / k.place


@dataclass(frozen=True)
class Done:
    """The record of the last build of a state (done_dir): its work directory (out/ holds the programs and the
    records of their links), the manifest of the tree it was built from, and the generation it wrote into the
    state (kept.sh checks it before trusting that manifest as the state's)."""

    path: Path
    manifest: dict[str, list]
    generation: str


# in the state directory: its generation, the one a rebuild expects, and the mark of a change being sent
GENERATION, EXPECT, CHANGING = "generation", "expect", "changing."
STALE = 75  # kept.sh's exit code when the state is not the generation the host expected (nothing was built)


def last_done(k: Key, image_id: str) -> Done | None:
    """The record of the last build of k's place when that build was of k (the same flags, toolchain, target,
    libc and build image tag) in the build image whose ID is image_id; None otherwise."""
    d = done_dir(k)
    try:
        said = json.loads((d / "done.json").read_text())
        old, _dirty = read_manifest({MANIFEST: (d / MANIFEST).read_bytes()})
    except (OSError, ValueError):
        return None
    if (not image_id or not isinstance(said, dict) or said.get("name") != k.name or said.get("image") != image_id
            or old is None or not (d / "out").is_dir()):
        return None
    generation = said.get("generation")
    return Done(d, old, generation if isinstance(generation, str) and re.fullmatch(r"[0-9a-f]{32}", generation)
                else "")


def unchanged(done: Done, change: Changes) -> Path | None:
    """done's work directory when change (the tree against done's manifest) sends nothing and deletes nothing:
    nothing needs building again. A file whose times changed but not its content is noted in the kept manifest
    (not read again next time)."""
    if change.send or change.gone:
        return None
    if change.manifest != done.manifest:  # times only: noted, so that the next check reads no file
        files.keep(done.path / MANIFEST, change.manifest_bytes())
    return done.path


def new_generation() -> str:
    return os.urandom(16).hex()


def keep_done(k: Key, image_id: str, change: Changes, made: Path, generation: str = "") -> None:
    """Keep what a build of k in image image_id delivered (made/out) from the tree change describes, and the
    generation it wrote into the state, for last_done(): written whole under a temporary name, then renamed (the
    caller holds the state's lock). A record that cannot be written is only not kept."""
    import shutil

    d = done_dir(k)
    tmp = d.with_name(f".{d.name}.{os.getpid()}")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        shutil.copytree(made / "out", tmp / "out", symlinks=True)
        (tmp / MANIFEST).write_bytes(change.manifest_bytes())
        (tmp / "done.json").write_text(json.dumps({"name": k.name, "image": image_id, "generation": generation},
                                                  sort_keys=True))
        forget_done(k)
        os.rename(tmp, d)
    except OSError as exc:
        log.info("not keeping what the build of %s delivered: %s", k.name, exc)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def forget_done(k: Key | None, name: str | None = None) -> None:
    """No build takes the shortcut of unchanged() from the record of k's place (or, with name, from any record
    of the kept state called name: `invoke clean` removed it)."""
    import shutil

    places = [done_dir(k)] if k is not None else sorted((state_root() / DONE).glob("[!.]*"))
    for d in places:
        if name is not None:
            try:
                if json.loads((d / "done.json").read_text()).get("name") != name:
                    continue
            except (OSError, ValueError, AttributeError):
                pass
        shutil.rmtree(d, ignore_errors=True)


def forget_done_except(names: set[str]) -> None:
    """Forget every record of a state whose name is not in names (the states that exist)."""
    import shutil

    for d in sorted((state_root() / DONE).glob("[!.]*")):
        try:
            name = json.loads((d / "done.json").read_text()).get("name")
        except (OSError, ValueError, AttributeError):
            name = None
        if name not in names:
            shutil.rmtree(d, ignore_errors=True)


def used_dir() -> Path:
    """Where the time a kept state was last used on this machine is noted (a volume says only when it was made)."""
    return files.cache_dir() / "state" / "used"


def used(name: str) -> None:
    """Note that the kept state called name was used now (for `invoke clean --older-than`)."""
    try:
        used_dir().mkdir(parents=True, exist_ok=True)
        (used_dir() / name).touch()
    except OSError as exc:  # only `clean --older-than` reads it
        log.info("could not note the use of %s: %s", name, exc)


def last_used(name: str, created: float) -> float:
    try:
        return max(created, (used_dir() / name).stat().st_mtime)
    except OSError:
        return created


@dataclass(frozen=True)
class Held:
    """Something kept between builds that `invoke clean` lists and removes: a kept state's volume on the engine
    or directory on this machine, or (with --all) what the toolkit caches for every build."""

    name: str
    where: str  # "engine" or "host"
    size: int | None  # bytes; None: the engine did not say
    last: float  # when it was last used (seconds since the epoch)
    what: str
    project: str | None = None  # a kept state's project directory (its label); None for a cache

    def line(self) -> str:
        size = "?" if self.size is None else f"{self.size / (1 << 20):.1f} MiB"
        return f"{self.name} ({self.where}, {size}): {self.what}"


def _describe(labels: dict[str, str]) -> str:
    project, target = labels.get(LABEL + "project", "?"), labels.get(LABEL + "target", "?")
    return f"{project} for {target} ({labels.get(LABEL + 'toolchain', '?')})"


def state_root() -> Path:
    """Where native builds keep their state: one directory per kept state (named like the volumes)."""
    return files.cache_dir() / "state"


def _tree_size(path: Path) -> int:
    total = 0
    for top, _dirs, names in os.walk(path):
        for n in names:
            try:
                total += os.lstat(os.path.join(top, n)).st_size
            except OSError:
                pass
    return total


def held_on_host(caches: bool) -> list[Held]:
    """The kept states of native builds; with caches also the dpkg answers of links.sh."""
    found = []
    root = state_root()
    for d in sorted(root.glob(PREFIX + "*")) if root.is_dir() else []:
        labels: dict[str, str] = {}
        try:
            labels = json.loads((d / STATE_DIR / "labels.json").read_text())
        except (OSError, ValueError):
            pass
        labels = labels if isinstance(labels, dict) else {}
        found.append(Held(d.name, "host", _tree_size(d), last_used(d.name, d.stat().st_mtime), _describe(labels),
                          labels.get(LABEL + "project")))
    dpkg = files.cache_dir() / "dpkg-owners"
    if caches and dpkg.is_dir():
        found.append(Held(dpkg.name, "host", _tree_size(dpkg), dpkg.stat().st_mtime,
                          "what dpkg said owns each input of a link (native builds' SBOMs)"))
    ccache = files.cache_dir() / "ccache"
    for d in sorted(ccache.iterdir()) if caches and ccache.is_dir() else []:
        found.append(Held(f"ccache/{d.name}", "host", _tree_size(d), d.stat().st_mtime,
                          f"compiler cache for {d.name} (native builds)"))
    return found


def remove_held(held: Held, client: object | None) -> bool:
    """Remove one thing kept; False when a build uses it now."""
    import shutil

    if held.where == "engine":
        from ..engine import volume

        assert client is not None
        if not volume.remove(client, held.name):  # type: ignore[arg-type]
            return False
        forget_done(None, held.name)  # no build delivers what it made again without building it
        return True
    shared = held.name == "dpkg-owners" or held.name.startswith("ccache/")
    path = files.cache_dir() / held.name if shared else state_root() / held.name
    with files.exclusive(lock_name(held.name), waiting=f"waiting for the build that uses {held.name}"):
        shutil.rmtree(path, ignore_errors=True)
    (used_dir() / held.name).unlink(missing_ok=True)
    return True


def held_on_engine(client: object, caches: bool) -> list[Held]:
    """The kept states of container builds: volumes of ours on the engine; with caches the compiler caches too."""
    from ..engine import volume

    roles = ("state", *CACHE_ROLES) if caches else ("state",)
    return [Held(v.name, "engine", v.size, last_used(v.name, v.created), _describe(v.labels) if role == "state"
                 else f"compiler cache and dpkg's answers for links, {v.labels.get(LABEL + 'target', '?')}",
                 v.labels.get(LABEL + "project") if role == "state" else None)
            for role in roles for v in volume.kept(client, role=role)]  # type: ignore[arg-type]


CACHE_ROLES = ("ccache",)  # the roles of the volumes that hold compiler caches
CCACHE_MOUNT = "/ccache"  # where a container build's compiler cache is
DPKG_OWNERS = "dpkg-owners"  # beside it (ccache reads only its own hex directories): links.sh's dpkg answers


def ccache_on() -> bool:
    """Whether builds compile through the compiler cache: yes unless FROMSCRATCH_CCACHE=0 (a benchmark of a
    build from nothing, a suspected cache)."""
    return os.environ.get("FROMSCRATCH_CCACHE", "1") != "0"


def ccache_here(target: str) -> Path:
    """The compiler cache of native builds for target (a target name: data, by the table's grammar)."""
    return files.cache_dir() / "ccache" / f"{_ccache_set()}{target}"


def ccache_volume(target: str, cache_set: str | None = None) -> tuple[str, dict[str, str]]:
    """The volume of container builds' compiler cache for target (and of what dpkg said owns each input of their
    links), and its labels: shared by every project (but those of another cache_set, by default
    FROMSCRATCH_CCACHE_SET's)."""
    return f"fromscratch-ccache-{_ccache_set(cache_set)}{target}", {LABEL + "target": target}


def _ccache_set(name: str | None = None) -> str:
    """FROMSCRATCH_CCACHE_SET=NAME: a compiler cache of its own ("NAME-" before the target), so that a benchmark's
    cold build starts from an empty cache without removing the one every build shares."""
    name = os.environ.get("FROMSCRATCH_CCACHE_SET", "") if name is None else name
    if name and not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,39}", name):
        from ..errors import InputError

        raise InputError(f"FROMSCRATCH_CCACHE_SET={name!r}: give lower-case letters, digits, '_', '.' or '-'")
    return f"{name}-" if name else ""


def clean(connect: Callable[[], object], caches: bool, older_than: float | None, dry_run: bool,
          say: Callable[[str], None], project: str | None = None) -> int:
    """List what is kept (with sizes) and remove it (all of it, or what was not used for older_than days, or only
    the states of the project directory project, a real path); returns how many were removed. An engine that
    cannot be reached is said in one line; this machine's are still cleaned."""
    from ..errors import EngineUnavailable, InputError

    if older_than is not None and older_than < 0:
        raise InputError(f"--older-than {older_than:g}: give a number of days, 0 or more")
    if project is not None and caches:
        raise InputError("--all with --project: the caches --all adds are every project's",
                         hint="clean one project's states with --project, the shared caches with --all alone")
    client = None
    found = held_on_host(caches)
    try:
        client = connect()
        found = held_on_engine(client, caches) + found
    except EngineUnavailable as exc:
        say(f"not listing the engine's kept volumes: {exc}")
    if client is not None and not dry_run:  # records of states that are no more (removed behind our back)
        forget_done_except({held.name for held in found})
    if project is not None:
        found = [held for held in found if held.project == project]
    cutoff = None if older_than is None else time.time() - older_than * 86400
    removed = 0
    for held in found:
        if cutoff is not None and held.last > cutoff:
            say(f"kept    {held.line()}")
            continue
        if dry_run:
            say(f"would remove {held.line()}")
        elif remove_held(held, client):
            removed += 1
            say(f"removed {held.line()}")
        else:
            say(f"in use  {held.line()}: a build uses it now, not removed")
    if not found:
        say("nothing is kept" if project is None else f"nothing is kept for {project}")
    return removed


def read_here(work: Path) -> tuple[dict[str, list] | None, bool]:
    """read_manifest() of a kept state on this machine."""
    state = work / STATE_DIR
    if not state.is_dir():
        return None, False
    found = {}
    for name in (MANIFEST, DIRTY):
        with contextlib.suppress(OSError):
            found[name] = (state / name).read_bytes()
    return read_manifest(found)


def apply_here(change: Changes, src: Path, touched: float | None) -> None:
    """A kept state's copy of the project on this machine brought up to date: what is gone deleted, what changed
    written (its modification time touched, when given). Nothing is followed out of src: a path whose parent the
    build made a symlink is replaced, not written through."""
    import shutil

    top = os.path.realpath(src)

    def clear(path: Path) -> None:
        parent = os.path.realpath(path.parent)
        if parent != top and not parent.startswith(top + os.sep):
            from ..errors import BuildFailed

            raise BuildFailed(f"{path}: the kept build state leads outside itself", hint="build with --clean")
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif os.path.lexists(path):
            path.unlink()

    for rel in change.gone:
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            clear(src / rel)
    src.mkdir(mode=0o700, exist_ok=True)
    for entry in change.send:
        path = src / entry.rel if entry.rel else src
        if entry.kind == "dir":
            if path != src and not (path.is_dir() and not path.is_symlink()):
                clear(path)
                path.mkdir(mode=0o700)
            os.chmod(path, (entry.mode & 0o7777) | 0o700)
            continue
        clear(path)
        if entry.kind == "link":
            os.symlink(entry.link, path)
            continue
        shutil.copyfile(entry.source, path, follow_symlinks=False)
        os.chmod(path, entry.mode & 0o7777)
        when = int(touched * 1e9) if touched is not None else entry.mtime_ns
        os.utime(path, ns=(when, when))


def begin_here(work: Path, labels: tuple[tuple[str, str], ...]) -> None:
    """Mark a kept state on this machine as changing (kept.sh takes the mark away when its build ends)."""
    state = work / STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    (state / DIRTY).touch()
    (state / "labels.json").write_text(json.dumps(dict(labels), sort_keys=True))


def finish_here(work: Path, change: Changes) -> None:
    """The new manifest written, whole (under a temporary name first)."""
    state = work / STATE_DIR
    (state / (MANIFEST + ".new")).write_bytes(change.manifest_bytes())
    os.replace(state / (MANIFEST + ".new"), state / MANIFEST)
