"""The record of a link, as links.sh's fs_resolve prints it: the compiler, the distribution of the machine that
linked, and every input with the package that owns it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DebPackage:
    """A package as dpkg-query describes it: its name (with :arch for a foreign or Multi-Arch: same one)."""

    binary: str  # ${binary:Package}: zlib1g-dev:arm64, libc6-dev-arm64-cross
    version: str
    arch: str
    source: str
    source_version: str
    maintainer: str

    @property
    def name(self) -> str:
        return self.binary.split(":", 1)[0]


@dataclass(frozen=True)
class Input:
    """A file the linker used: an archive it took members from, or an object it linked whole."""

    kind: str  # archive, object (file: an image's file, resolved the same way)
    path: str  # as the linker named it, normalised
    real: str  # every symlink resolved
    sha256: str | None
    owner: DebPackage | None = None


@dataclass(frozen=True)
class Record:
    """One program's link: the compiler, the distribution of the machine that linked, and every input with the
    package that owns it (None: no package manager knows it)."""

    output: str | None = None
    linker: str | None = None
    compiler: str | None = None  # the driver as run (gcc, aarch64-linux-gnu-g++)
    compiler_version: str | None = None
    compiler_owner: DebPackage | None = None
    os_id: str = ""
    os_version: str = ""
    os_codename: str = ""
    inputs: tuple[Input, ...] = ()

    @property
    def seen(self) -> bool:
        """Whether a link of the program was seen at all (a program linked behind the wrappers' back was not)."""
        return self.output is not None


def parse(text: str) -> Record:
    """The record fs_resolve printed; lines it does not know are ignored."""
    fields: dict[str, str] = {}
    compiler: list[str] = []
    os_row = ["", "", ""]
    rows: list[list[str]] = []
    owners: dict[str, list[str]] = {}
    packages: dict[str, DebPackage] = {}
    for line in text.splitlines():
        kind, _, rest = line.partition("\t")
        cols = rest.split("\t")
        if kind in ("output", "linker"):
            fields[kind] = rest
        elif kind == "compiler" and len(cols) == 3:
            compiler = cols
        elif kind == "os" and len(cols) == 3:
            os_row = cols
        elif kind == "input" and len(cols) == 4:
            rows.append(cols)
        elif kind == "owner" and len(cols) == 2:
            owners[cols[1]] = [p.strip() for p in cols[0].split(",")]
        elif kind == "package" and len(cols) == 6:
            packages[cols[0]] = DebPackage(*cols)

    def owner(*paths: str) -> DebPackage | None:
        """The one package that owns the first path dpkg knows; a directory many packages share has none."""
        for p in paths:
            if p in owners:
                names = owners[p]
                return packages.get(names[0]) if len(names) == 1 else None
        return None

    inputs = tuple(Input(kind, path, real, None if digest == "-" else digest, owner(path, real))
                   for kind, path, real, digest in rows)
    return Record(fields.get("output"), fields.get("linker"), compiler[0] if compiler else None,
                  (compiler[1] or None) if compiler else None, owner(compiler[2]) if compiler else None,
                  os_id=os_row[0], os_version=os_row[1], os_codename=os_row[2], inputs=inputs)
