"""What a binary shows of its own making, where it says anything: the libc verify finds in it (with glibc's
version where its banner is linked in) and the compiler its .comment names; for a program whose link was not seen."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from ..check import elf
from .spdx import NOASSERTION, Document, Package, spdx_id
from .suppliers import upstream

_SCAN_CHUNK = 1 << 20
# glibc's banner (only when version.o is linked in) and the compilers' .comment entries.
_GLIBC_BANNER = re.compile(rb"GNU C Library \(([^)\n]{1,80})\) [a-z ]{0,30}release version ([0-9][0-9.]{0,15})")
_GCC_COMMENT = re.compile(rb"GCC: \(([^)\n]{1,80})\) ([0-9][0-9.]{0,15})")
_CLANG_COMMENT = re.compile(rb"clang version ([0-9][0-9.]{0,15})")


def add(doc: Document, prog: str, binary: Path, facts: elf.ElfFacts) -> None:
    """To doc, whose program prog is binary: its libc, statically linked, and the compiler that built it."""
    shown = _scan(binary, (_GLIBC_BANNER, _GCC_COMMENT, _CLANG_COMMENT))
    gcc, clang = shown.get(_GCC_COMMENT), shown.get(_CLANG_COMMENT)
    if facts.libc in ("glibc", "musl"):
        version, said = NOASSERTION, "verify finds its code in the binary; the binary does not carry its version"
        banner = shown.get(_GLIBC_BANNER)
        if facts.libc == "glibc" and banner:
            version = banner.group(2).decode()
            said = f"the binary carries glibc's banner: {banner.group(1).decode(errors='replace')}, release {version}"
        who, why = _libc_supplier(facts.libc, banner, gcc)
        doc.relate(prog, "STATIC_LINK", doc.add(Package(spdx_id("Libc", facts.libc), facts.libc, version, who,
                                                        purpose="LIBRARY", comment=f"{said}; supplier: {why}")))
    if gcc or clang:
        name = "gcc" if gcc else "clang"
        found = gcc.group(2) if gcc else clang.group(1)  # type: ignore[union-attr]
        said = f"named in the binary's .comment: {found.decode()}" + (f" ({gcc.group(1).decode()})" if gcc else "")
        distribution = _distribution(gcc)
        who = f"Organization: {distribution}" if distribution else upstream(name)
        said += f"; supplier: {'the distribution it names' if distribution else 'its upstream project'}"
        doc.built_with(prog, Package(spdx_id("Tool", name), name, found.decode(), who, purpose="APPLICATION",
                                     comment=said))


DISTRIBUTIONS = ("Debian", "Ubuntu")


def _libc_supplier(libc: str, banner: re.Match[bytes] | None, gcc: re.Match[bytes] | None) -> tuple[str, str]:
    """The libc's supplier and how it is known: the distribution in glibc's banner; else the one whose gcc the
    .comment names, since a distribution's gcc links that distribution's libc (glibc, or musl through its
    musl-gcc); else the upstream project."""
    for match, how in ((banner, "named in glibc's banner"),
                       (gcc, "the binary's .comment names {d}'s gcc, which links {d}'s " + libc)):
        if d := _distribution(match):
            return f"Organization: {d}", how.format(d=d)
    return upstream(libc), "its upstream project: the binary names no distribution that shipped it"


def _distribution(match: re.Match[bytes] | None) -> str | None:
    """The distribution a banner's or a .comment's parenthesis names ("Debian 12.2.0-14"), if one we know."""
    said = match.group(1).decode(errors="replace") if match else ""
    return next((d for d in DISTRIBUTIONS if d in said), None)


def _scan(path: Path, patterns: Iterable[re.Pattern[bytes]]) -> dict[re.Pattern[bytes], re.Match[bytes]]:
    """The first match of each pattern in the file, read in overlapping chunks (a binary of any size)."""
    found: dict[re.Pattern[bytes], re.Match[bytes]] = {}
    wanted = list(patterns)
    tail = b""
    with open(path, "rb") as fh:
        while len(found) < len(wanted) and (chunk := fh.read(_SCAN_CHUNK)):
            window = tail + chunk
            for p in wanted:
                if p not in found and (m := p.search(window)):
                    found[p] = m
            tail = window[-256:]
    return found
