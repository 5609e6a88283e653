"""The rules a root filesystem's entries must pass before they become a layer: nothing may reach outside the root.

Applied the same way to a tarball's members and to a directory's files, in the order they will be written.
"""

from __future__ import annotations

import posixpath

from ..errors import InputError

DEVICE_KINDS = ("chardev", "blockdev")
_MAX_HOPS = 40  # as the kernel's ELOOP limit: past it a chain of links resolves nowhere, let alone outside


class UnsafeEntry(InputError):
    """An entry that would escape the root, or a device node nobody asked for."""


class Checker:
    """Feed entries in order with add(); finish() checks the links that need the whole tree to resolve."""

    def __init__(self, source: str, allow_devices: bool = False) -> None:
        self.source = source
        self.allow_devices = allow_devices
        self._kind: dict[str, str] = {}  # clean name -> kind, as extraction would leave it so far
        self._symlinks: dict[str, tuple[str, str]] = {}  # clean name -> (raw name, target)
        self._hardlinks: dict[str, str] = {}  # clean name -> clean target

    def __contains__(self, name: str) -> bool:
        return name in self._kind

    def kind(self, name: str) -> str | None:
        return self._kind.get(name)

    def add(self, raw: str, kind: str, link: str = "", device: tuple[int, int] | None = None) -> str:
        """Check one entry; returns its clean name ("" for the root itself)."""
        name = self._clean(raw, raw, "its path")
        parent = self._through_symlink(name)
        if parent is not None:
            self._refuse(raw, f"is written through the symbolic link {parent!r}")
        if kind in DEVICE_KINDS and not self.allow_devices:
            what = "a character device" if kind == "chardev" else "a block device"
            numbers = f" ({device[0]}, {device[1]})" if device else ""
            raise UnsafeEntry(f"{self.source}: entry {raw!r} is {what}{numbers}",
                              hint="an image gets its /dev from the engine; pass --allow-devices to keep it")
        if kind == "hardlink":
            target = self._clean(raw, link, f"its hard link target {link!r}")
            if self._through_symlink(target) is not None:
                self._refuse(raw, f"is a hard link through a symbolic link ({link!r})")
            if self._kind.get(target) in (None, "dir"):
                self._refuse(raw, f"is a hard link to {link!r}, which is not an earlier file in the archive")
            self._hardlinks[name] = self._hardlinks.get(target, target)
        else:
            self._hardlinks.pop(name, None)
        if kind == "symlink":
            self._symlinks[name] = (raw, link)
        else:
            self._symlinks.pop(name, None)
        self._kind[name] = kind
        return name

    def finish(self) -> None:
        """Every symbolic link must resolve inside the root, following the other links in the tree."""
        for name, (raw, target) in sorted(self._symlinks.items()):
            if self._escapes(name, target):
                self._refuse(raw, f"is a symbolic link to {target!r}, which points outside the root")

    def _clean(self, raw: str, path: str, what: str) -> str:
        if path.startswith("/"):
            self._refuse(raw, f"has an absolute path in {what}" if what != "its path" else "has an absolute path")
        clean = posixpath.normpath(path) if path else "."
        if clean == ".." or clean.startswith("../"):
            self._refuse(raw, "climbs out of the root with '..'" if what == "its path"
                         else f"climbs out of the root with '..' in {what}")
        return "" if clean == "." else clean

    def _through_symlink(self, name: str) -> str | None:
        parts = name.split("/")
        for i in range(1, len(parts)):
            prefix = "/".join(parts[:i])
            if self._kind.get(prefix) == "symlink":
                return prefix
        return None

    def resolve(self, path: str) -> str | None:
        """Where path leads inside the tree, following its symbolic links; None for a loop."""
        parts, _ = self._walk([], path, anchored=True)
        return None if parts is None else "/".join(parts)

    def file_for(self, path: str) -> str | None:
        """The entry that holds path's bytes: symbolic links followed, a hard link taken to its first name."""
        found = self.resolve(path)
        if found is None or self._kind.get(found) not in ("file", "hardlink"):
            return None
        return self._hardlinks.get(found, found)

    def _escapes(self, name: str, target: str) -> bool:
        """True when resolving target from name's directory climbs above the root by '..'.

        An absolute target means the image's own root (that is how the container sees it), so it anchors the walk:
        a '..' at the root then stays at the root, as the kernel does.
        """
        return self._walk(name.split("/")[:-1], target, anchored=target.startswith("/"))[1]

    def _walk(self, parts: list[str], target: str, anchored: bool) -> tuple[list[str] | None, bool]:
        """Resolve target from the directory parts: (the final path's parts or None for a loop, escaped)."""
        parts = [] if target.startswith("/") else list(parts)
        todo = _components(target)
        hops = 0
        while todo:
            part = todo.pop()
            if part == "..":
                if parts:
                    parts.pop()
                elif not anchored:
                    return parts, True
                continue
            parts.append(part)
            here = "/".join(parts)
            if here in self._symlinks:
                hops += 1
                if hops > _MAX_HOPS:
                    return None, False
                parts.pop()
                inner = self._symlinks[here][1]
                if inner.startswith("/"):
                    parts, anchored = [], True
                todo.extend(_components(inner))
        return parts, False

    def _refuse(self, raw: str, reason: str) -> None:
        raise UnsafeEntry(f"{self.source}: entry {raw!r} {reason}",
                          hint="a root filesystem's entries must stay inside it; fix or rebuild the archive")


def _components(path: str) -> list[str]:
    """Path components in reverse order (a stack to pop), without empty and '.' parts."""
    return [p for p in reversed(path.split("/")) if p not in ("", ".")]
