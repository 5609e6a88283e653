"""The build image for the container toolchain: its Dockerfile text, a content-hash tag, and ensure()."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .. import command, files, grammar, targets
from ..errors import BuildFailed
from . import FALLBACK_BASE, SETUP_BASE

log = logging.getLogger(__name__)

REPOSITORY = "fromscratch/builder"
SRC_DIR = "/src"
OUT_DIR = "/out"
# What every build image has, whatever its targets: the build machine's own compilers. One layer, shared by the
# images of all targets.
COMPILE_PACKAGES = ("gcc", "g++", "libc6-dev", "binutils")
# What a --project build adds over it, shared too: every build system a project may use. --src builds never pay
# for it (~200 MB).
SYSTEM_PACKAGES = ("make", "cmake", "meson", "ninja-build", "autoconf", "automake", "libtool", "pkg-config")
# The last layer of a --project build's image: the compiler cache (~2 MB).
CACHE_PACKAGES = ("ccache",)
# A foreign target's layer holds its cross gcc and g++; for projects also QEMU: CMake's try_run and Meson's
# exe_wrapper run the target's test programs through it.
EMULATOR_PACKAGE = "qemu-user-static"
# dpkg without an fsync per unpacked file (moby's mkimage did the same: a half-built layer is discarded anyway),
# and no translated package descriptions: both only cost time
_APT = "apt-get -o Dpkg::Options::=--force-unsafe-io -o Acquire::Languages=none"


@dataclass(frozen=True)
class BuildImage:
    """One layer of a build image: packages installed over base (a user's image or the layer below); its tag is a
    hash of exactly that, so a changed input is a new image and an unchanged one is reused."""

    base: str
    packages: tuple[str, ...]
    foreign: tuple[str, ...] = ()  # dpkg architectures whose packages this layer installs (multiarch)
    emulator: str | None = None  # the one QEMU user-mode binary kept (qemu-<name>-static) of EMULATOR_PACKAGE
    check: str | None = None  # a package that may be missing from the base's archive: said in one line if so
    base_id: str = ""  # the image ID of base, for the layer over the user's base (chain() sets it)
    title: str = ""  # what the layer is for, in the user's words ("arm64 cross gcc"): said as it builds, not hashed
    build_dep: str = ""  # NAME=VERSION: this layer installs that Debian source package's build dependencies
    build_arch: str = ""  # ... for this dpkg architecture (apt-get build-dep -a), "" for the image's own
    # labels the layer's image carries besides ours (not hashed: what the layer holds is its Dockerfile)
    labels: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        # every word below becomes Dockerfile text run by a shell with network: data only, by grammar (the CLI
        # checked the user's values already; this holds for every other caller)
        grammar.image(self.base, "the build image's base")
        for name in (*self.packages, *((self.check,) if self.check else ())):
            grammar.package(name, "--package")
        if self.build_dep:
            name, _, version = self.build_dep.partition("=")
            grammar.source_package(name, "--debian")
            grammar.version(version, "--debian")
        if self.build_arch and not (self.build_arch.isascii() and self.build_arch.isalnum()):
            raise ValueError(f"not a dpkg architecture: {self.build_arch!r}")

    @property
    def dockerfile(self) -> str:
        pkgs = " ".join(self.packages)
        lines = [f"FROM {self.base}", "ENV DEBIAN_FRONTEND=noninteractive"]
        enable = "".join(f"{_ENABLE_ARCH.format(arch=a)} && " for a in self.foreign)
        check = (f" \\\n && {{ apt-cache show {self.check} >/dev/null 2>&1 || {{ echo '{MISSING_MARK} "
                 f"{self.check}'; exit 100; }}; }}") if self.check else ""
        # qemu-user-static holds 35 emulators (~430 MB); the target needs one of them (~13 MB)
        qemu = f"qemu-{self.emulator}-static"
        keep = (f" \\\n && mv /usr/bin/{qemu} /usr/local/bin/ && apt-get purge -y {EMULATOR_PACKAGE}"
                f" \\\n && mv /usr/local/bin/{qemu} /usr/bin/") if self.emulator else ""
        if self.build_dep:  # deb-src beside each deb entry of the base, then apt's own (cross) build-dep
            cross = f" -a {self.build_arch}" if self.build_arch else ""
            lines.append(f"RUN {enable}{_DEB_SRC} \\\n && {_APT} update \\\n"
                         f" && {_APT} build-dep -y --no-install-recommends --arch-only{cross} {self.build_dep} \\\n"
                         " && rm -rf /var/lib/apt/lists/*")
        else:
            lines.append(f"RUN {enable}{_APT} update{check} \\\n"
                         f" && {_APT} install -y --no-install-recommends {pkgs}{keep} \\\n"
                         " && rm -rf /var/lib/apt/lists/*")
        if not self.base.startswith(REPOSITORY + ":"):  # the first layer over the user's base
            lines += [f"RUN mkdir -p {SRC_DIR} {OUT_DIR}", f"WORKDIR {SRC_DIR}"]
        return "\n".join(lines) + "\n"

    @property
    def tag(self) -> str:
        import hashlib  # here, not at the top: every task imports this module, few need a tag (OpenSSL ~2 ms)

        # the base's ID too, not only its name: a base remade under the same name (a rootfs by a newer recipe, a
        # newer ubuntu:24.04) gets new build images, never the old ones with the old base's libraries
        digest = hashlib.sha256(f"{self.base_id}\n{self.dockerfile}".encode()).hexdigest()[:16]
        return f"{REPOSITORY}:{digest}"


# The base's apt sources with deb-src too (deb822 Types, or a deb-src twin of each one-line deb entry): what
# apt-get build-dep reads a source package's Build-Depends from
_DEB_SRC = ("for f in /etc/apt/sources.list.d/*.sources; do [ -f \"$f\" ] && "
            "sed -i 's/^Types: *deb *$/Types: deb deb-src/' \"$f\"; done; "
            "for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do [ -f \"$f\" ] && "
            "sed -n 's/^deb \\(.*\\)/deb-src \\1/p' \"$f\" >> /etc/apt/sources.list.d/fromscratch-src.list; "
            "done; true")
MISSING_MARK = "fromscratch: not in the package archive of the base image:"
# dpkg multiarch for one foreign architecture. Debian's mirrors carry every architecture; Ubuntu's main archive
# only amd64 and i386, the others come from ports.ubuntu.com: each existing entry is pinned to the image's own
# architecture and a second entry names the archive that has the foreign one.
_ENABLE_ARCH = (
    "dpkg --add-architecture {arch} && . /etc/os-release && if [ \"$ID\" = ubuntu ]; then "
    "native=$(dpkg --print-architecture); "
    "case {arch} in amd64|i386) uri=http://archive.ubuntu.com/ubuntu/ ;; "
    "*) uri=http://ports.ubuntu.com/ubuntu-ports/ ;; esac; "
    "for f in /etc/apt/sources.list.d/*.sources; do [ -f \"$f\" ] && "
    "sed -i \"/^Architectures:/d; s/^Types:.*/&\\nArchitectures: $native/\" \"$f\"; done; "
    "[ -f /etc/apt/sources.list ] && sed -i \"s/^deb \\(http\\)/deb [arch=$native] \\1/\" /etc/apt/sources.list; "
    "printf 'Types: deb\\nURIs: %s\\nSuites: %s %s-updates %s-security\\nComponents: main universe\\n"
    "Architectures: {arch}\\nSigned-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg\\n' "
    "\"$uri\" \"$VERSION_CODENAME\" \"$VERSION_CODENAME\" \"$VERSION_CODENAME\" "
    "> /etc/apt/sources.list.d/fromscratch-{arch}.sources; fi"
)


def chain(base: str, target: targets.Target, host_arch: str, tools: Sequence[str] = (),
          packages: Sequence[str] = (), libc: str = "glibc", project: bool = False, *,
          base_id: str, build_dep: str = "") -> list[BuildImage]:
    """The layers of the build image for one target, bottom first: the shared compilers, for a project the
    shared build systems, the target's cross compilers (none when the image's own gcc builds for it; with QEMU
    for a project), musl for the target when asked, a Debian source package's build dependencies (build_dep,
    NAME=VERSION: build --debian), then --tool and --package, the target's build of each package through
    multiarch. base_id is base's image ID (base_image_id()): every layer's tag follows it."""
    native = target.architecture == host_arch
    layers = [BuildImage(base, COMPILE_PACKAGES, base_id=base_id, title="gcc and g++")]
    if project:
        layers.append(BuildImage(layers[-1].tag, SYSTEM_PACKAGES, title="build systems"))
    if not native:
        cross = [*target.packages, *target.cxx_packages, *((EMULATOR_PACKAGE,) if project else ())]
        layers.append(BuildImage(layers[-1].tag, tuple(cross), emulator=target.qemu if project else None,
                                 title=f"{target.name} cross gcc" + (" and QEMU" if project else "")))
    if libc == "musl":  # musl-dev:<arch> ships <musl>-gcc, gcc with musl's specs, for the target's cross gcc
        musl = ("musl-dev",) if native else (f"musl-dev:{target.debian_arch}",)
        layers.append(BuildImage(layers[-1].tag, musl, () if native else (target.debian_arch,), check=musl[0],
                                 title=musl[0]))
    if build_dep:  # a source package's Build-Depends for the target (build --debian); multiarch when foreign
        layers.append(BuildImage(layers[-1].tag, (), () if native else (target.debian_arch,), build_dep=build_dep,
                                 build_arch="" if native else target.debian_arch,
                                 title=f"the build dependencies of {build_dep} for {target.name}"))
    if tools or packages:
        wanted = tuple(dict.fromkeys([*tools, *(p if native else f"{p}:{target.debian_arch}" for p in packages)]))
        foreign = () if native or not packages else (target.debian_arch,)
        layers.append(BuildImage(layers[-1].tag, wanted, foreign, title=" ".join(wanted)))
    if project:  # the compiler cache a project's build compiles through (its cache is a volume, compile/kept.py)
        layers.append(BuildImage(layers[-1].tag, CACHE_PACKAGES, title="ccache"))
    return layers


def base_image_id(client: Any, base: str) -> str:
    """The image ID of the build image's base, which chain() needs: one lookup. "" when there is no such image:
    ensure() says so before it builds anything."""
    from ..engine import client as engine

    return engine.image_id(client, base) or ""


def default_base(client: Any) -> tuple[str, str]:
    """The build image's base when none is given, and why, in the user's words: the set-up's when the engine has
    it, else FALLBACK_BASE."""
    from ..engine import client as engine

    if engine.image_exists(client, SETUP_BASE):
        return SETUP_BASE, "made by the set-up"
    return FALLBACK_BASE, f"the default: {SETUP_BASE}, which the set-up makes, is not in the engine"


class ImageFailed(BuildFailed):
    """A target's build image that cannot be made: no build of it, whichever way, can run."""


class LayerFailed(ImageFailed):
    """A layer of a build image that could not be built, and which one (a cross build-dep falls back on it)."""

    def __init__(self, layer: BuildImage, failed: BuildFailed) -> None:
        super().__init__(failed.message, failed.hint, failed.log, failed.lacking)
        self.layer = layer


def ensure_chain(client: Any, layers: Sequence[BuildImage], building: Callable[[], None] = lambda: None) -> str:
    """Each layer of a chain, bottom first; returns the top layer's tag. A warm call looks up the top layer only:
    its tag names its base's, so it was built on every layer below. building is called before any is built; a
    layer that fails is a LayerFailed naming it."""
    from ..engine import client as engine

    if not engine.image_exists(client, layers[-1].tag):
        building()
        for layer in layers:
            try:
                ensure(client, layer)
            except LayerFailed:
                raise
            except BuildFailed as exc:
                raise LayerFailed(layer, exc) from None
    return layers[-1].tag


def ensure(client: Any, image: BuildImage) -> str:
    """Build the image unless an image with its tag exists; returns the tag. A warm call pays no apt-get.

    One process at a time builds a given image (a machine-wide lock); one that waited finds it made. A build
    that does not finish (an error, Ctrl-C, the engine going away) leaves no half-built image behind.
    """
    from ..engine import client as engine  # here, not at the top: the CLI imports this module and must start fast

    if engine.image_exists(client, image.tag):
        log.info("build image %s is ready", image.tag)
        return image.tag
    if not engine.image_exists(client, image.base):
        from ..errors import InputError

        raise InputError(f"the build image's base {image.base} is not in the engine and cannot be built on",
                         hint=f"pull it (docker pull {image.base}), or make the set-up's base with "
                              f"`{command.line('rootfs --suite bookworm --tag ' + SETUP_BASE)}`: the default when "
                              "neither --builder-base nor the config key builder.base names one")
    with files.exclusive(image.tag.replace("/", "_").replace(":", "_"),
                         waiting=f"waiting for another fromscratch process that is building {image.tag}"):
        if engine.image_exists(client, image.tag):
            log.info("build image %s was made by another process", image.tag)
            return image.tag
        _build(client, image)
    return image.tag


def _context(image: BuildImage) -> io.BytesIO:
    import tarfile

    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        data = image.dockerfile.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    return context


def _build(client: Any, image: BuildImage) -> None:
    from ..engine import build as dockerbuild
    from ..engine import client as engine

    title = image.title or " ".join(image.packages)
    log.warning("building the build image's layer of %s: %s from %s (first use; later builds reuse it)", title,
                image.tag, image.base)
    dockerbuild.build(client, _context(image), image.tag,
                      {**engine.labels("builder"), "org.fromscratch.base": image.base, **dict(image.labels)},
                      what=f"building the build image {image.tag} ({title})",
                      hint="the build image installs gcc with apt-get: is the package archive reachable from "
                           "containers?", on_line=_Heard(title))


class _Heard:
    """What a layer's apt-get is doing, said at most every few seconds while it builds (a layer takes tens of
    seconds: without it, one line and then silence)."""

    EVERY = 5.0

    def __init__(self, title: str) -> None:
        self.title = title
        self._last = 0.0

    def __call__(self, line: str) -> None:
        import time

        if line.startswith(("Get:", "Unpacking ", "Setting up ")) and time.monotonic() - self._last >= self.EVERY:
            self._last = time.monotonic()
            log.warning("  %s: %s", self.title, line.split(" ...")[0][:100])
