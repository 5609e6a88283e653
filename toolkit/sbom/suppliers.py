"""Who made what, in the words of an SPDX document: the supplier the user names for the programs, a Debian
package's maintainer and package URL, and the parts of zig's bundle; the program's document is written with them."""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..errors import InputError
from . import NOASSERTION, records
from . import SUPPLIER_ENV as ENV
from .spdx import Package, spdx_id

ZIG_SUPPLIER = "Organization: Zig Software Foundation"
# SPDX 2.3 clause 7.5: "Person: person name and optional (<email>)", the same for an Organization, or NOASSERTION.
# The name holds no brackets, quotes or backslashes and the email no space either: the value is one line of text.
_SUPPLIER = re.compile(r'(Person|Organization): [^\s()<>"\\]([^()<>"\\]*[^\s()<>"\\])?( \([^\s()<>"\\]*\))?')
_SUPPLIER_MAX = 256
# Who made a libc or a compiler, where nothing names a distribution that shipped it: its upstream project, the
# originator of every distribution's package of it.
_UPSTREAM = {"glibc": "Organization: GNU Project", "musl": "Organization: musl libc project",
             "gcc": "Organization: GNU Project", "clang": "Organization: LLVM Project"}
# A gcc or g++ driver as a distribution names it: aarch64-linux-gnu-gcc-12, x86_64-linux-musl-gcc, g++.
_GCC_DRIVER = re.compile(r"([\w.]+-)*(gcc|g\+\+)(-[0-9.]+)?")
# Maintainer fields naming a team rather than a person.
_TEAM = re.compile(r"\b(maintainers|team|developers|project|group|debian|ubuntu)\b", re.IGNORECASE)
# What zig links from its own cache, by archive name: musl's and LLVM's runtimes built from the sources zig
# ships, and zig's own runtime (compiler-rt, its libc additions), which belongs to zig itself.
_ZIG_PARTS = {"libc.a": "musl", "crt1.o": "musl", "rcrt1.o": "musl", "Scrt1.o": "musl", "crti.o": "musl",
              "crtn.o": "musl", "libc++.a": "libc++", "libc++abi.a": "libc++abi", "libunwind.a": "libunwind",
              "libcompiler_rt.a": "zig", "libzigc.a": "zig", "libubsan_rt.a": "zig"}


def checked(value: str, what: str) -> str:
    """value, if it is an SPDX supplier (or NOASSERTION) on one printable line; else one line naming what gave it."""
    value = value.strip()
    if value == NOASSERTION or (len(value) <= _SUPPLIER_MAX and value.isprintable() and _SUPPLIER.fullmatch(value)):
        return value
    shown = repr(value[:_SUPPLIER_MAX]) + ("..." if len(value) > _SUPPLIER_MAX else "")
    raise InputError(f"{what} {shown} is not an SPDX supplier",
                     hint='"Organization: NAME (EMAIL)" or "Person: NAME (EMAIL)", the email optional, e.g. '
                          '"Organization: ACME (security@acme.example)"; no quotes, brackets or control characters')


def choose(given: str | None, configured: Any, environ: Mapping[str, str] = os.environ) -> str:
    """Who supplies the programs built here: --supplier, else the config key sbom.supplier, else
    FROMSCRATCH_SBOM_SUPPLIER, each checked; else NOASSERTION, since fromscratch cannot know it."""
    if given:
        return checked(given, "--supplier")
    value = environ.get(ENV, "").strip()
    if configured not in (None, ""):  # `fromscratch` reads the variable as the key when a file sets it too
        return checked(str(configured), ENV if str(configured).strip() == value else "the config key sbom.supplier")
    return checked(value, ENV) if value else NOASSERTION


def upstream(name: str) -> str:
    """The upstream project of a libc (glibc, musl) or a compiler (a gcc, g++ or clang driver), else NOASSERTION."""
    name = os.path.basename(name)
    kind = "clang" if name.startswith("clang") or "-clang" in name else "gcc" if _GCC_DRIVER.fullmatch(name) else name
    return _UPSTREAM.get(kind, NOASSERTION)


def maintainer_supplier(maintainer: str) -> str:
    """A Debian Maintainer field as an SPDX supplier: a team as an Organization, anyone else as a Person."""
    name, _, rest = maintainer.partition("<")
    name, email = name.strip().replace("(", "").replace(")", ""), rest.rstrip(">").strip()
    if not name:
        return NOASSERTION
    kind = "Organization" if _TEAM.search(name) else "Person"
    return f"{kind}: {name} ({email})" if email else f"{kind}: {name}"


def deb_purl(pkg: records.DebPackage, os_id: str, os_version: str) -> str:
    """pkg:deb/<distribution>/<name>@<version>?arch=...&distro=<id>-<version>&upstream=<source>, as scanners
    match Debian and Ubuntu packages."""
    vendor = os_id or "debian"
    qualifiers = [("arch", pkg.arch)]
    if os_version:
        qualifiers.append(("distro", f"{vendor}-{os_version}"))
    if pkg.source and pkg.source != pkg.name:
        qualifiers.append(("upstream", pkg.source))
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in qualifiers)
    return f"pkg:deb/{vendor}/{quote(pkg.name, safe='')}@{quote(pkg.version, safe=':')}?{query}"


def deb_package(pkg: records.DebPackage, record: records.Record, purpose: str | None = None) -> Package:
    return Package(spdx_id("Package", "deb", pkg.name, pkg.arch), pkg.name, pkg.version,
                   maintainer_supplier(pkg.maintainer), deb_purl(pkg, record.os_id, record.os_version), purpose)


@dataclass(frozen=True)
class ZigBundle:
    """The zig that links zig builds (the ziglang package beside this Python), and the versions of the C
    libraries it ships as sources and compiles into its cache."""

    zig: str
    pypi: str  # the ziglang distribution's own version
    musl: str
    llvm: str  # libc++, libc++abi and libunwind come from one LLVM release

    def package(self, part: str) -> Package:
        if part == "zig":
            return Package(spdx_id("Package", "pypi", "ziglang"), "zig", self.zig, ZIG_SUPPLIER,
                           f"pkg:pypi/ziglang@{quote(self.pypi, safe='')}", "APPLICATION",
                           summary=f"zig {self.zig} (PyPI ziglang {self.pypi})")
        version = self.musl if part == "musl" else self.llvm
        return Package(spdx_id("Package", "zig", part), part, version, ZIG_SUPPLIER,
                       f"pkg:generic/{quote(part, safe='')}@{quote(version, safe='')}", "LIBRARY",
                       comment=f"{part} {version} as zig {self.zig} ships it (compiled from source into zig's "
                               "cache)")

    def owning(self, path: str) -> Package | None:
        """The part of the bundle a file zig linked from its cache belongs to, known by the file's name."""
        part = _ZIG_PARTS.get(os.path.basename(path))
        return self.package(part) if part else None


@functools.cache
def zig_bundle() -> ZigBundle:
    """Read from the ziglang package: zig's version, musl's version.h, libc++'s _LIBCPP_VERSION (MMmmpp)."""
    from importlib import metadata

    spec = importlib.util.find_spec("ziglang")
    if spec is None or spec.origin is None:
        raise InputError("the ziglang package is not installed", hint="pip install 'fromscratch[zig]'")
    lib = Path(spec.origin).parent / "lib"
    proc = subprocess.run([sys.executable, "-m", "ziglang", "version"], capture_output=True, text=True)
    zig = proc.stdout.strip() or NOASSERTION
    musl = _define(lib / "libc/musl/src/internal/version.h", "VERSION").strip('"') or NOASSERTION
    code = _define(lib / "libcxx/include/__config", "_LIBCPP_VERSION")
    llvm = f"{int(code) // 10000}.{int(code) // 100 % 100}.{int(code) % 100}" if code.isdigit() else NOASSERTION
    return ZigBundle(zig, metadata.version("ziglang"), musl, llvm)


def _define(path: Path, name: str) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    found = re.search(rf"#\s*define\s+{re.escape(name)}\s+(\S+)", text)
    return found.group(1) if found else ""
