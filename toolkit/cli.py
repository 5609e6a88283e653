"""The Invoke tasks: parse flags, call the toolkit, print, exit. Shared by `invoke` (tasks.py) and `fromscratch`."""

from __future__ import annotations

import functools
import json
import logging
import os
import shlex
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from invoke import Collection, Context, Exit, Program, task

from . import __version__, builder, targets
from .errors import BuildFailed, ToolkitError

log = logging.getLogger("toolkit")
REPO_ROOT = Path(__file__).resolve().parent.parent
HELLO_SRC = Path(__file__).resolve().parent / "csrc" / "hello.c"


def _hello_source() -> Path:
    """csrc/hello.c from a checkout, else the copy packaged with the toolkit."""
    checkout = REPO_ROOT / "csrc" / "hello.c"
    return checkout if checkout.is_file() else HELLO_SRC


def _setup_logging() -> None:
    root = logging.getLogger("toolkit")
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)
        root.setLevel(os.environ.get("FROMSCRATCH_LOG", "WARNING").upper())


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM unwinds like Ctrl-C, so every finally block cleans up


def cli(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn every toolkit failure, and Ctrl-C, into one line on stderr and an exit code: never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _setup_logging()
        signal.signal(signal.SIGTERM, _terminate)
        try:
            return fn(*args, **kwargs)
        except BuildFailed as exc:
            if exc.log:
                print(exc.log, file=sys.stderr)
            raise Exit(f"error: {exc}", code=exc.exit_code) from None
        except ToolkitError as exc:
            raise Exit(f"error: {exc}", code=exc.exit_code) from None
        except KeyboardInterrupt:
            raise Exit("interrupted", code=130) from None
        except Exception as exc:
            if os.environ.get("FROMSCRATCH_DEBUG"):
                raise
            raise Exit(f"error: internal error ({type(exc).__name__}: {exc}); please report it "
                       "(FROMSCRATCH_DEBUG=1 shows the traceback)", code=3) from None

    return wrapper


def _builder_base(c: Context, given: str | None) -> str:
    if given:
        return given
    try:
        return str(c.config.builder.base)
    except (AttributeError, KeyError):
        return builder.DEFAULT_BASE


def _compile(c: Context, sources: list[Path], arch: str | None, toolchain: str, out: Path,
             cflags: list[str], builder_base: str | None) -> Path:
    from . import toolchain as tc

    target = targets.lookup(arch) if arch else targets.host()
    chain = tc.select(toolchain, target, base=_builder_base(c, builder_base))
    chain.compile(sources, target, out, cflags)
    print(f"built {out} for {target.platform} with the {chain.name} toolchain")
    return out


@task(help={"arch": "target architecture (default: this host's)",
            "toolchain": "auto, native or container",
            "out": "output path (default ./hello)",
            "builder_base": "base image of the build container (default: config builder.base, ubuntu:24.04)"})
@cli
def build_hello(c: Context, arch: str | None = None, toolchain: str = "auto", out: str = "hello",
                builder_base: str | None = None) -> None:
    """Compile csrc/hello.c into a static binary (./hello)."""
    _compile(c, [_hello_source()], arch, toolchain, Path(out), ["-Os", "-s"], builder_base)


@task(iterable=["src"],
      help={"src": "a C source file (repeat for more)", "out": "output path",
            "cflags": "extra compiler flags, e.g. '-O2 -Wall'", "arch": "target architecture",
            "toolchain": "auto, native or container", "builder_base": "base image of the build container"})
@cli
def build(c: Context, src: list[str], out: str = "", cflags: str = "", arch: str | None = None,
          toolchain: str = "auto", builder_base: str | None = None) -> None:
    """Compile your own C program into a static binary."""
    from .errors import InputError

    if not out:
        raise InputError("--out is required", hint="e.g. --out ./app")
    try:
        flags = shlex.split(cflags)
    except ValueError as exc:
        raise InputError(f"--cflags {cflags!r} does not parse ({exc})") from None
    _compile(c, [Path(s) for s in src], arch, toolchain, Path(out), flags, builder_base)


@task(help={"path": "the binary to check", "arch": "require this architecture",
            "json": "print one JSON object instead of lines"})
def verify(c: Context, path: str, arch: str | None = None, json: bool = False) -> None:
    """Check that a file is a static Linux ELF executable (exit 0 ok, 1 a check failed, 2 unreadable)."""
    from . import elf
    from . import verify as policy
    from .errors import InputError

    as_json = json
    _setup_logging()
    try:
        if arch:
            targets.lookup(arch)
        verdict = policy.verify(elf.read(path), arch)
    except InputError as exc:
        if as_json:
            print(_json_dumps(policy.unreadable_dict(path, str(exc))))
        raise Exit(f"error: {exc}", code=2) from None
    print(_json_dumps(verdict.to_dict()) if as_json else verdict.render())
    if not verdict.ok:
        raise Exit(code=1)


def _json_dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True)


@task(help={"tag": "image name, e.g. hello or hello:1.0", "binary": "the static binary (default ./hello)",
            "cmd": "the command, exec form, e.g. '/hello --flag' (default: /<binary name>)",
            "arch": "require this architecture"})
@cli
def image(c: Context, tag: str, binary: str = "hello", cmd: str | None = None,
          arch: str | None = None) -> None:
    """Verify a static binary and load a FROM scratch image holding only it into the engine."""
    from . import engine
    from . import image as img

    ref = img.normalize_tag(tag)
    path = Path(binary)
    with img.assemble(path, ref, cmd=cmd, arch=arch) as built:
        client = engine.connect()
        info = img.load(client, built)
    print(f"tag:   {info['tag']}\nid:    {info['id']}\nsize:  {info['size']:,} bytes")


@task(help={"tag": "the image to run"})
@cli
def run(c: Context, tag: str) -> None:
    """Run an image, stream its output, and exit with the container's exit code."""
    from . import engine, runner

    client = engine.connect()
    code = runner.run(client, tag, sys.stdout.buffer, sys.stderr.buffer)
    if code:
        raise Exit(code=code)


@task(help={"suite": "Debian suite, e.g. bookworm", "tag": "image name",
            "mirror": "Debian mirror (default: the host's apt source)", "variant": "debootstrap variant",
            "out": "also keep the rootfs tarball here"})
@cli
def rootfs(c: Context, suite: str, tag: str, mirror: str | None = None, variant: str = "minbase",
           out: str | None = None) -> None:
    """debootstrap a Debian suite, make it container-friendly, tar it and import it as an image."""
    from . import engine
    from . import image as img
    from . import rootfs as rfs

    ref = img.normalize_tag(tag)
    client = engine.connect()
    with tempfile.TemporaryDirectory(prefix="fromscratch-rootfs-", dir=_scratch_dir()) as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        rfs.debootstrap(suite, root, mirror or rfs.host_mirror(), variant)
        epoch = rfs.source_date_epoch(root)
        rfs.make_container_friendly(root)
        info = rfs.import_tree(client, root, ref, out=Path(out) if out else None, scratch=Path(tmp),
                               epoch=epoch)
    print(f"tag:   {info['tag']}\nid:    {info['id']}\nsize:  {info['size']:,} bytes")


@task(name="import-rootfs", help={"path": "a rootfs directory or tarball", "tag": "image name"})
@cli
def import_rootfs(c: Context, path: str, tag: str) -> None:
    """Import an existing root filesystem (directory or tarball) as an image with CMD ["/bin/bash"]."""
    from . import engine
    from . import image as img
    from . import rootfs as rfs

    ref = img.normalize_tag(tag)
    src = Path(path)
    client = engine.connect()
    with tempfile.TemporaryDirectory(prefix="fromscratch-import-", dir=_scratch_dir()) as tmp:
        if src.is_dir():
            info = rfs.import_tree(client, src, ref, scratch=Path(tmp))
        else:
            info = rfs.import_tarball(client, src, ref, scratch=Path(tmp))
    print(f"tag:   {info['tag']}\nid:    {info['id']}\nsize:  {info['size']:,} bytes")


def _scratch_dir() -> str | None:
    """Big temporary trees go to /var/tmp (disk) rather than a tmpfs /tmp."""
    return "/var/tmp" if os.path.isdir("/var/tmp") and os.access("/var/tmp", os.W_OK) else None


ns = Collection(build_hello, build, verify, image, run, rootfs, import_rootfs)
ns.configure({"builder": {"base": builder.DEFAULT_BASE}})

program = Program(namespace=ns, name="fromscratch", binary="fromscratch", version=__version__)
