"""What a value typed by a user may be, checked once at the edge: Debian package names, image references, paths
that stay inside a tree. A value that passes reaches a script, a Dockerfile or a command line only as data; one
that does not is one line naming the flag."""

from __future__ import annotations

import os
import re

from .errors import InputError

# The patterns are kept as text: re compiles each the first time a value is checked, and most commands check none.

# Debian Policy 5.6.1: lowercase letters, digits, + - . ; at least two characters, starting alphanumeric. An
# optional :ARCH qualifier (multiarch) is a dpkg architecture name.
_PACKAGE = r"[a-z0-9][a-z0-9+.-]+(:[a-z0-9]+)?"
# The distribution spec's reference grammar: [host[:port]/]path[:tag][@digest], path components lowercase.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]+)?/)"
_IMAGE = (rf"{_HOST}?{_COMPONENT}(?:/{_COMPONENT})*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?"
          r"(?:@sha256:[0-9a-f]{64})?")


def package(name: str, flag: str) -> str:
    """A Debian package name, or refused: it reaches apt-get inside a build image's RUN line."""
    if not re.fullmatch(_PACKAGE, name):
        raise InputError(f"{flag} {name!r} is not a Debian package name",
                         hint="lowercase letters, digits and + - . (Debian Policy 5.6.1), e.g. zlib1g-dev")
    return name


# A source package's name (Policy 5.6.1, no :ARCH) and a version (Policy 5.6.12: [epoch:]upstream[-revision], the
# upstream part starting with a digit); at most 128 characters each, as apt's own names are.
_SOURCE = r"[a-z0-9][a-z0-9+.-]{1,127}"
_VERSION = r"(?:[0-9]{1,9}:)?[0-9][A-Za-z0-9.+~-]{0,127}"


def source_package(name: str, flag: str) -> str:
    """A Debian source package's name, or refused: it reaches apt-get's argv and a build image's RUN line."""
    if not re.fullmatch(_SOURCE, name):
        raise InputError(f"{flag} {name!r} is not a Debian source package name",
                         hint="lowercase letters, digits and + - . (Debian Policy 5.6.1), e.g. pv or lua5.4")
    return name


def version(text: str, flag: str) -> str:
    """A Debian version ([epoch:]upstream[-revision]), or refused: it reaches apt-get's argv and a RUN line."""
    if not re.fullmatch(_VERSION, text) or text.endswith("-"):
        raise InputError(f"{flag} version {text!r} is not a Debian version",
                         hint="[epoch:]upstream[-revision], e.g. 1.6.20-1 (Debian Policy 5.6.12)")
    return text


_DECLARED = r"[A-Za-z0-9][A-Za-z0-9_.+/-]{0,127}"


def declared(name: str, flag: str) -> str:
    """A name a project declares (ZLIB, glib-2.0, zlib.h, bz2) or a package's, or refused: only compared."""
    if not re.fullmatch(_DECLARED, name):
        raise InputError(f"{flag} {name!r} is not a package or a declared name",
                         hint="e.g. --no-find=zlib1g-dev, --no-find=ZLIB or --no-find=zlib.h (commas for several)")
    return name


def image(ref: str, flag: str) -> str:
    """An image reference, or refused: it becomes a Dockerfile's FROM line."""
    if len(ref) > 255 or not re.fullmatch(_IMAGE, ref):
        raise InputError(f"{flag} {ref!r} is not an image reference",
                         hint="e.g. fromscratch/debian:bookworm or registry.example:5000/debian:12")
    return ref


def inside(path: str, flag: str) -> str:
    """A relative path that stays inside the tree it is relative to, in its normal form (a/b, never a/../b);
    printable, so that it can be named in a one-line message."""
    if not path or not path.isprintable():
        raise InputError(f"{flag} {path!r}: give a printable relative path")
    normal = os.path.normpath(path)
    if os.path.isabs(path) or normal == ".." or normal.startswith("../"):
        raise InputError(f"{flag} {path}: must be a path inside the project, not outside it",
                         hint="a relative path such as src/app, or bin/app under the install prefix")
    return normal
