"""The Invoke tasks: parse flags, call the toolkit, print, exit. Shared by `invoke` (tasks.py) and `fromscratch`."""

from __future__ import annotations

import atexit
import contextlib
import functools
import gc
import json
import logging
import os
import re
import shlex
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import invoke
from invoke import Collection, Context, Exit, ParseError, Program
from invoke.config import AmbiguousMergeError
from invoke.exceptions import UncastableEnvVar

from . import __version__, command, files, interrupts, targets
from .compile import FALLBACK_BASE, SETUP_BASE
from .errors import BuildFailed, ToolkitError

log = logging.getLogger("toolkit")
say = functools.partial(print, flush=True)  # progress lines reach a pipe as they happen


def task(*args: Any, **kwargs: Any) -> Any:
    """Invoke's @task with long flags only: its automatic short flags give each flag the first letter no other
    flag took, so -h (help) was --toolchain on image, --ca-certs got "--", and a new flag moved the others."""
    return invoke.task(*args, auto_shortflags=False, **kwargs)


def _setup_logging() -> None:
    root = logging.getLogger("toolkit")
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(handler)
        root.setLevel(os.environ.get("FROMSCRATCH_LOG", "WARNING").upper())


def _freeze_startup_objects() -> None:
    """Exempt what exists when the first task starts (Invoke, its parser, our modules: tens of thousands of
    objects that live until exit) from the cyclic garbage collector, which would otherwise scan them again
    in every full collection while a task allocates and in those at interpreter exit: 25-40 ms of every run
    on our CI machine, the exit alone ~30 ms. Unreferenced objects are still freed; only a cycle among these
    survivors would never be. Once per process (a test session calling tasks freezes once); and again as the
    process exits, so that the interpreter's last collection scans nothing the tasks made either (~1 ms of a
    native hello: what delivering a program imports)."""
    if not gc.get_freeze_count():
        gc.freeze()
        atexit.register(gc.freeze)  # run after every handler registered later: they may still free cycles


def cli(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn every toolkit failure, and Ctrl-C, into one line on stderr and an exit code: never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _setup_logging()
        interrupts.install()  # SIGTERM unwinds like Ctrl-C, so every finally block cleans up
        _freeze_startup_objects()
        try:
            return fn(*args, **kwargs)
        except Exit:  # a task's own exit code (verify-image's 1, run's container code) passes through
            raise
        except BuildFailed as exc:
            if exc.log:
                print(harmless(exc.log), file=sys.stderr)
            raise Exit(f"error: {harmless(str(exc))}", code=exc.exit_code) from None
        except ToolkitError as exc:
            raise Exit(f"error: {harmless(str(exc))}", code=exc.exit_code) from None
        except KeyboardInterrupt:
            raise Exit("interrupted", code=130) from None
        except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as a shell tool would
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise Exit(code=141) from None
        except Exception as exc:
            if os.environ.get("FROMSCRATCH_DEBUG"):
                raise
            raise Exit(f"error: internal error ({type(exc).__name__}: {exc}); please report it "
                       "(FROMSCRATCH_DEBUG=1 shows the traceback)", code=3) from None

    return wrapper


# Control characters a build printed (colours, cursor moves, a terminal title, a bell) shown as escapes: a log
# excerpt is text to read, not instructions for the user's terminal. Tab and newline stay.
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if c not in (0x09, 0x0A)}


def harmless(text: str) -> str:
    return text.translate(_CONTROL)


def _builder_base(c: Context, given: str | None) -> str | None:
    """--builder-base, else the config key builder.base, checked; None: the build image's default base, which
    only a container build looks up (it asks the engine)."""
    from . import grammar

    if given:
        return grammar.image(given, "--builder-base")
    configured = (c.config.get("builder") or {}).get("base")
    if configured in (None, ""):
        return None
    return grammar.image(str(configured), "the config key builder.base")


def _supplier(c: Context, given: str | None) -> str:
    """--supplier, else the config key sbom.supplier, else FROMSCRATCH_SBOM_SUPPLIER, checked; else NOASSERTION.
    Under `fromscratch` the variable is the key's own (as FROMSCRATCH_BUILDER_BASE is builder.base's), so it beats
    the configuration files there; `invoke` reads the files first. The key is not declared with ns.configure, so
    that `sbom: VALUE` is this one line rather than Invoke's merge error, whose hint is builder.base's."""
    from .errors import InputError
    from .sbom import NOASSERTION, SUPPLIER_ENV

    section = c.config.get("sbom")
    if section is not None and not hasattr(section, "get"):
        raise InputError("the config key sbom is not a section",
                         hint="sbom.supplier goes in a section: sbom:, then supplier: \"Organization: NAME\" on the "
                              "next line, indented")
    configured = section.get("supplier") if section is not None else None
    if not given and configured in (None, "") and not os.environ.get(SUPPLIER_ENV, "").strip():
        return NOASSERTION  # nothing to check: the module that checks one is loaded while the build runs
    from .sbom import suppliers

    return suppliers.choose(given, configured)


def _toolchain(toolchain: str, builder_base: str | None) -> str:
    """--builder-base names the build container's base, so asking for one asks for that container: under auto it
    picks the container toolchain; with native or zig, which run no container, it is refused, never dropped."""
    from .errors import InputError

    if builder_base is None:
        return toolchain
    if toolchain == "auto":
        return "container"
    if toolchain in ("native", "zig"):
        raise InputError(f"--builder-base is the build container's base, and the {toolchain} toolchain runs no "
                         "container", hint="drop --builder-base, or use --toolchain container")
    return toolchain


def _contents_index(arch: str) -> Path | None:
    """Debian's Contents index for arch, kept (rootfs/contents.py): what a failed build's hint looks up."""
    from .rootfs import contents

    return contents.cached_index(arch)


DEFAULT_TIMEOUT = 3600
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def _limits(timeout: int) -> Any:
    """What one build may use: --timeout, and FROMSCRATCH_BUILD_MEMORY (e.g. 8g) and FROMSCRATCH_BUILD_PIDS for
    a build container."""
    import re

    from .engine.limits import Limits
    from .errors import InputError

    if timeout < 0:
        raise InputError(f"--timeout {timeout}: give seconds, or 0 for no limit")
    memory_text = os.environ.get("FROMSCRATCH_BUILD_MEMORY", "").strip().lower()
    pids_text = os.environ.get("FROMSCRATCH_BUILD_PIDS", "").strip()
    default = Limits()
    size = re.fullmatch(r"([0-9]{1,12})([kmg]?)i?b?", memory_text) if memory_text else None
    if memory_text and (size is None or int(size[1]) * _SIZE_UNITS[size[2]] < 64 << 20):
        raise InputError(f"FROMSCRATCH_BUILD_MEMORY={memory_text!r}: give a size of at least 64m, e.g. 8g")
    if pids_text and (not pids_text.isdigit() or not 64 <= int(pids_text) <= 1 << 22):
        raise InputError(f"FROMSCRATCH_BUILD_PIDS={pids_text!r}: give a number of processes, 64 or more")
    return Limits(memory=int(size[1]) * _SIZE_UNITS[size[2]] if size else default.memory,
                  pids=int(pids_text) if pids_text else default.pids, timeout=float(timeout) if timeout else None)


def _size_env(name: str, default: int, example: str) -> int:
    """A size from the environment (bytes, or with k, m or g), at least 1 MiB; default when unset."""
    import re

    from .errors import InputError

    text = os.environ.get(name, "").strip().lower()
    if not text:
        return default
    size = re.fullmatch(r"([0-9]{1,15})([kmg]?)i?b?", text)
    if size is None or int(size[1]) * _SIZE_UNITS[size[2]] < 1 << 20:
        raise InputError(f"{name}={text!r}: give a size of at least 1m, e.g. {example}")
    return int(size[1]) * _SIZE_UNITS[size[2]]


_ARCH_HELP = "target architecture(s): a name (arm64, arm32v7, linux/arm/v7), a comma-separated list, or all"
_JOBS_HELP = "build this many targets at once (default 1)"
_TOOLCHAIN_HELP = "auto, native, container or zig"
_BUILDER_BASE_HELP = (f"base image of the build container (default: the config key builder.base, else "
                      f"{SETUP_BASE} when the engine has it, else {FALLBACK_BASE})")
_LIBC_HELP = "glibc (default) or musl (Debian's musl-dev with gcc; zig always links musl)"
_TIMEOUT_HELP = f"stop a target's build after this many seconds (default {DEFAULT_TIMEOUT}; 0: no limit)"
_SUPPLIER_HELP = ("who supplies the programs, for their SBOMs: 'Organization: NAME (EMAIL)' or 'Person: NAME (EMAIL)' "
                  "(default: the config key sbom.supplier, else $FROMSCRATCH_SBOM_SUPPLIER, else NOASSERTION)")


@task(help={"arch": _ARCH_HELP + " (default: this host's)",
            "toolchain": _TOOLCHAIN_HELP,
            "out": "output path (default ./hello, or ./hello-<arch> for each --arch; several targets add -<arch>)",
            "builder_base": _BUILDER_BASE_HELP,
            "tiny": "build csrc/hello-tiny.c instead: no libc, raw system calls, under 1 KiB",
            "strip": "strip symbols (the default here; --no-strip keeps them)",
            "jobs": _JOBS_HELP, "libc": _LIBC_HELP, "timeout": _TIMEOUT_HELP, "supplier": _SUPPLIER_HELP})
@cli
def build_hello(c: Context, arch: str | None = None, toolchain: str = "auto", out: str | None = None,
                builder_base: str | None = None, tiny: bool = False, strip: bool = True, jobs: int = 1,
                libc: str | None = None, timeout: int = DEFAULT_TIMEOUT, supplier: str | None = None) -> None:
    """Compile csrc/hello.c (or, with --tiny, csrc/hello-tiny.c) into a static binary (./hello, or ./hello-<arch>)."""
    from .compile import recipes

    recipes.compile_for(recipes.hello(tiny, strip), _targets(arch), _toolchain(toolchain, builder_base),
                        Path(out or "hello"), _builder_base(c, builder_base), say,
                        per_target=out is None and bool(arch), jobs=jobs, libc=libc, limits=_limits(timeout),
                        index=_contents_index, supplier=_supplier(c, supplier))


def _targets(arch: str | None) -> list[targets.Target]:
    """--arch as targets (default: this host)."""
    return targets.parse_archs(arch) if arch else [targets.host()]


@task(iterable=["src", "package", "tool", "artifact"], optional=["no_find"],
      help={"src": "a C or C++ (.cc .cpp .cxx .C) source file (repeat for more)",
            "out": "output path (several targets add -<arch>); with --project a directory (default ./dist)",
            "cflags": "extra compiler flags, e.g. '-O2 -Wall'",
            "ldflags": "linker flags and libraries, placed after the sources, e.g. '-lm'", "arch": _ARCH_HELP,
            "toolchain": _TOOLCHAIN_HELP, "builder_base": _BUILDER_BASE_HELP,
            "strip": "strip symbols from the binary (gcc's -s)", "jobs": _JOBS_HELP, "libc": _LIBC_HELP,
            "timeout": _TIMEOUT_HELP, "supplier": _SUPPLIER_HELP,
            "project": "build this project directory with its own build system instead of --src files",
            "subdir": "with --project: the directory inside it that holds the build system (e.g. build/cmake)",
            "system": "with --project: make, cmake, meson or autotools (default: detected)",
            "run": "with --project: your own build command, run in the prepared environment",
            "configure_args": "with --project: arguments for configure, cmake or meson setup",
            "make_args": "with --project: arguments for make, cmake --build or meson compile",
            "package": "a Debian/Ubuntu -dev package to link, for the target (repeat)",
            "tool": "a package the build runs on the build machine, e.g. tcl (repeat)",
            "no_find": "do not find the packages the project declares (--no-find), or leave out these "
                       "(--no-find=PKG-OR-NAME,...)",
            "artifact": "with --project: a program to take, relative to the project or the install prefix "
                        "(repeat; default: what it installs in bin/ and sbin/, else the programs it made)",
            "save": "with --project: write what a successful build used to the project's fromscratch.toml",
            "debian": "build Debian source package NAME[=VERSION] from the host's archive, with its "
                      "Build-Depends, delivering the programs its packages ship",
            "program": "with --debian: deliver only this program of the package",
            "mirror": "with --debian: fetch the source from this Debian mirror (default: the host's)",
            "suite": "with --debian: from this suite (default: the host's), built over its base image "
                     "fromscratch/debian:SUITE (made on first use), e.g. --suite trixie for riscv64",
            "clean": "with --project: build from nothing, not from the build tree kept since its last build"})
@cli
def build(c: Context, src: list[str], out: str = "", cflags: str = "", ldflags: str = "", arch: str | None = None,
          toolchain: str = "auto", builder_base: str | None = None, strip: bool = False, jobs: int = 1,
          project: str | None = None, subdir: str = "", system: str | None = None, run: str | None = None,
          configure_args: str = "", make_args: str = "", package: list[str] | None = None,
          tool: list[str] | None = None, artifact: list[str] | None = None, libc: str | None = None,
          timeout: int = DEFAULT_TIMEOUT, supplier: str | None = None, no_find: str | bool | None = None,
          save: bool = False, debian: str | None = None, program: str | None = None, mirror: str | None = None,
          suite: str | None = None, clean: bool = False) -> None:
    """Compile your own C or C++ program (--src), or build a whole project (--project DIR) or a Debian source
    package (--debian NAME), into static binaries."""
    from .compile import pipeline, project_file, recipes
    from .errors import InputError

    find, exclude = _no_find(no_find)

    cf, lf = _split_flags(cflags), _split_flags(ldflags, "--ldflags")
    chain = _toolchain(toolchain, builder_base)
    def settings() -> Any:  # the flags given; the project's fromscratch.toml gives the rest
        return project_file.Settings(
            packages=tuple(package) if package else None, tools=tuple(tool) if tool else None, subdir=subdir or None,
            system=system, run=run, configure_args=_given_words(configure_args, "--configure-args"),
            make_args=_given_words(make_args, "--make-args"), cflags=_given_words(cflags, "--cflags"),
            ldflags=_given_words(ldflags, "--ldflags"), artifacts=tuple(artifact) if artifact else None,
            strip=True if strip else None)

    debian_only = [f for f, given in (("--program", program), ("--mirror", mirror), ("--suite", suite)) if given]
    if debian_only and debian is None:
        raise InputError(f"{', '.join(debian_only)}: only a --debian build takes them", hint="give --debian NAME")
    if sum(x is not None and x != [] for x in (src or None, project, debian)) > 1:
        raise InputError("--src, --project and --debian each say what to build", hint="give one of them")
    if debian is not None:
        from .debian import build as debian_build

        if save:
            raise InputError("--save writes a project's fromscratch.toml; a --debian build has none to write")
        if clean:
            raise InputError("--clean goes with --project", hint="`clean` removes what a --debian build kept")
        flags = settings()
        wanted, out_dir = _targets(arch), Path(out or "dist")
        many = len(wanted) > 1
        debian_build.build(debian, wanted, "container" if chain == "auto" else chain,
                           lambda t, name: (out_dir / t.name if many else out_dir) / name, say, flags=flags,
                           index=_contents_index, program=program, mirror=mirror, suite=suite,
                           base=_builder_base(c, builder_base), jobs=jobs, libc=libc, limits=_limits(timeout),
                           out_dir=out_dir, supplier=_supplier(c, supplier), find=find, exclude=exclude)
        return
    if project is not None:
        if src:
            raise InputError("--src and --project both say what to build", hint="give one of them")
        flags = settings()
        job = project_file.open_project(project, flags)
        wanted, out_dir = _targets(arch), Path(out or "dist")
        per_target = len(wanted) > 1
        pipeline.build(job, wanted, chain, lambda t, name: (out_dir / t.name if per_target else out_dir) / name, say,
                       base=_builder_base(c, builder_base), jobs=jobs, libc=libc, limits=_limits(timeout),
                       index=_contents_index, out_dir=out_dir, supplier=_supplier(c, supplier), find=find,
                       exclude=exclude, saved=(lambda used: say(f"saved {project_file.save(used)}")) if save else None,
                       clean=clean)
        return
    if not src:
        raise InputError("--src or --project is required", hint="e.g. --src app.c, or --project ./myproject")
    project_only = [flag for flag, given in (
        ("--save", save), ("--clean", clean), ("--artifact", artifact), ("--subdir", subdir), ("--system", system),
        ("--run", run), ("--configure-args", configure_args), ("--make-args", make_args)) if given]
    if project_only:
        raise InputError(f"{', '.join(project_only)}: only a --project build takes "
                         f"{'it' if len(project_only) == 1 else 'them'}, not --src",
                         hint="give --project DIR for a build with the project's own build system")
    if not out:
        raise InputError("--out is required", hint="e.g. --out ./app")
    recipe = recipes.Recipe(tuple(Path(s) for s in src), (*cf, *(["-s"] if strip else [])), ldflags=tuple(lf),
                            packages=tuple(package or ()), tools=tuple(tool or ()))
    recipes.compile_for(recipe, _targets(arch), chain, Path(out), _builder_base(c, builder_base), say, jobs=jobs,
                        libc=libc, limits=_limits(timeout), index=_contents_index, supplier=_supplier(c, supplier),
                        find=find, exclude=exclude)


def _no_find(given: str | bool | None) -> tuple[bool, tuple[str, ...]]:
    """--no-find: (find, names left out); --no-find alone turns finding off, --no-find=A,B leaves A and B out."""
    from . import grammar

    if given is None or given is False:
        return True, ()
    if given is True or given == "":
        return False, ()
    return True, tuple(grammar.declared(n.strip(), "--no-find") for n in str(given).split(",") if n.strip())


@task(help={"path": "the binary to check, or a directory to check every ELF file in",
            "arch": "require this architecture", "json": "print one JSON document instead of lines"})
@cli
def verify(c: Context, path: str, arch: str | None = None, json: bool = False) -> None:
    """Check that a file (or every ELF under a directory) is a static Linux ELF executable.

    Exit 0 when every check passes, 1 when one fails, 2 when the input cannot be read.
    """
    from .check import verify as policy
    from .errors import InputError

    as_json = json
    try:
        want = targets.lookup(arch) if arch else None
        result = policy.verify_tree(path, want) if os.path.isdir(path) else _verify_file(path, want)
    except InputError as exc:
        if as_json:
            print(_json_dumps(policy.unreadable_dict(path, str(exc))))
        raise Exit(f"error: {exc}", code=2) from None
    print(_json_dumps(result.to_dict()) if as_json else result.render())
    if not result.ok:
        raise Exit(code=1)


def _verify_file(path: str, want: targets.Target | None) -> Any:
    from .check import elf
    from .check import verify as policy

    return policy.verify(elf.read(path), want)


def _json_dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True)


@task(name="verify-image", help={"tag": "the image to check, e.g. hello or fromscratch/debian:bookworm",
                                 "json": "print one JSON document instead of lines",
                                 "platform": "the platform to check: of a multi-platform image, its NAME:TAG-<arch> "
                                             "in the engine, or one image of an index with --remote",
                                 "remote": "read the image from its registry (every platform of an index, unless "
                                           "--platform), not from the engine",
                                 "insecure": "with --remote: plain HTTP (the default only for loopback registries)"})
@cli
def verify_image(c: Context, tag: str, json: bool = False, platform: str | None = None, remote: bool = False,
                 insecure: bool = False) -> None:
    """Check an image without running it: its command, and every ELF's interpreter and libraries inside it."""
    from .check import image as imagecheck
    from .engine import client as engine
    from .image import pulled, registry
    from .image import scratch as img

    target = _one_platform(platform) if platform else None
    if insecure and not remote:
        from .errors import InputError

        raise InputError("--insecure is how to reach a registry: it goes with --remote")
    if remote:
        ref = registry.parse_reference(img.normalize_tag(tag))
        with tempfile.TemporaryDirectory(prefix="fromscratch-pull-", dir=_scratch_dir()) as tmp:
            verdicts = [imagecheck.verify_layers(p.config, [str(path) for path in p.layers], str(ref))
                        for p in pulled.pull(ref, registry.client(ref, insecure or None), target, Path(tmp))]
    else:
        client = engine.connect()
        found = engine.find_image(client, tag, target, hint="check the name with `docker images`; an image in a "
                                                             "registry: verify-image --remote (or docker pull it)")
        verdicts = [imagecheck.verify_image(client, found, _scratch_dir())]
    if json:
        docs = [v.to_dict() for v in verdicts]
        print(_json_dumps(docs[0] if len(docs) == 1 else docs))
    else:
        print("\n\n".join(v.render() for v in verdicts))
    if not all(v.ok for v in verdicts):
        raise Exit(code=1)


@task(iterable=["env", "label", "add", "output", "src", "binary"], optional=["terminfo", "no_runtime_files"],
      help={"tag": "image name, e.g. hello or hello:1.0",
            "binary": "the static binary (default ./hello); repeat it, one per platform, for a multi-platform image",
            "cmd": "the command, exec form, e.g. '/hello --flag' (default: /<binary name>)",
            "entrypoint": "the entrypoint, exec form, e.g. '/app --serve'",
            "env": "KEY=VALUE in the environment (repeat for more)", "workdir": "the working directory",
            "label": "KEY=VALUE label (repeat for more)", "user": "numeric UID[:GID] to run as",
            "nonroot": "run as 65532:65532, with /etc/passwd and /etc/group entries for it",
            "nsswitch": "add /etc/nsswitch.conf: hosts from files then dns, passwd and group from files",
            "add": "SRC:DEST, an extra host file or directory (repeat for more)",
            "ca_certs": "add a CA bundle at /etc/ssl/certs/ca-certificates.crt (the host's, or certifi's)",
            "tzdata": "add time zone data at /usr/share/zoneinfo", "tmp": "add an empty /tmp (mode 1777)",
            "terminfo": "add terminfo entries from Debian's ncurses-base/ncurses-term: common ones (xterm, screen, "
                        "tmux, vt100, linux, dumb...), or --terminfo=NAME,...",
            "locale": "C.UTF-8: add glibc's C.utf8 locale (Debian's libc-bin for the target) and set LANG",
            "no_runtime_files": "add nothing the program reads at run time unless asked (--no-runtime-files), or "
                                "leave out these kinds: terminfo, locale, ca-certificates",
            "output": "oci:DIR, oci-archive:FILE.tar or docker-archive:FILE.tar instead of loading into the "
                      "engine (repeat for more)",
            "backend": "python (assemble the image here; default) or dockerfile (docker build FROM scratch)",
            "arch": "require this architecture",
            "platform": "build for these platforms (linux/amd64,linux/arm64,... or all): one image index",
            "src": "with --platform: C sources to compile for each (default csrc/hello.c)",
            "tiny": "with --platform: compile csrc/hello-tiny.c", "cflags": "with --platform: compiler flags",
            "toolchain": "with --platform: " + _TOOLCHAIN_HELP,
            "builder_base": "with --platform: " + _BUILDER_BASE_HELP,
            "timeout": "with --platform: " + _TIMEOUT_HELP,
            "sbom": "the program's SPDX SBOM to attach: FILE, or none (default: <binary>.spdx.json beside the binary, "
                    "else one made from what the binary shows)",
            "supplier": _SUPPLIER_HELP + "; names the image's and its added files' supplier too",
            "debian": "build Debian source package NAME[=VERSION] (as build --debian) and make the image of its "
                      "program, for --arch or each --platform", "program": "with --debian: the program to take"})
@cli
def image(c: Context, tag: str, binary: list[str] | None = None, cmd: str | None = None, entrypoint: str | None = None,
          env: list[str] | None = None, workdir: str | None = None, label: list[str] | None = None,
          user: str | None = None, nonroot: bool = False, add: list[str] | None = None, ca_certs: bool = False,
          tzdata: bool = False, tmp: bool = False, nsswitch: bool = False, output: list[str] | None = None,
          backend: str = "python", arch: str | None = None, platform: str | None = None,
          src: list[str] | None = None,
          tiny: bool = False, cflags: str = "", toolchain: str = "auto", builder_base: str | None = None,
          sbom: str | None = None, timeout: int = DEFAULT_TIMEOUT, supplier: str | None = None,
          debian: str | None = None, program: str | None = None, terminfo: str | bool | None = None,
          locale: str | None = None, no_runtime_files: str | bool | None = None) -> None:
    """Verify a static binary and make a FROM scratch image of it: loaded into the engine, or --output files.

    SOURCE_DATE_EPOCH (default 0) dates the image; the same inputs give the same image ID and digest.
    With --platform it compiles the program once per platform and makes one multi-platform image.
    Each platform's SBOM is attached to it as an OCI artifact (--sbom none leaves it out).
    What the program reads at run time (terminfo, a UTF-8 locale, CA certificates) is added from Debian's packages
    when verify finds it, each said in one line (--no-runtime-files turns that off).
    """
    from .compile import recipes
    from .image import make
    from .image import scratch as img

    ref = img.normalize_tag(tag)
    if debian is not None or program is not None:
        img.options(terminfo=terminfo, locale=locale, no_runtime_files=no_runtime_files)  # refused before the build
        with files.temp_dir("fromscratch-debian-") as built:
            return _debian_image(c, ref, debian, program, arch, platform, binary, src, tiny, cflags, toolchain,
                                 builder_base, timeout, supplier, built,
                                 lambda bins: image(c, tag, binary=[str(b) for b in bins], cmd=cmd,
                                                    entrypoint=entrypoint, env=env, workdir=workdir, label=label,
                                                    user=user, nonroot=nonroot, add=add, ca_certs=ca_certs,
                                                    tzdata=tzdata, tmp=tmp, nsswitch=nsswitch, output=output,
                                                    backend=backend, sbom=sbom, supplier=supplier,
                                                    terminfo=terminfo, locale=locale,
                                                    no_runtime_files=no_runtime_files))
    if platform is None:  # these shape the compile that --platform asks for: without it they would do nothing
        unused = [flag for flag, given in (("--src", src), ("--tiny", tiny), ("--cflags", cflags),
                                           ("--toolchain", toolchain != "auto"), ("--builder-base", builder_base),
                                           ("--timeout", timeout != DEFAULT_TIMEOUT)) if given]
        if unused:
            from .errors import InputError

            raise InputError(f"{', '.join(unused)}: only with --platform, which compiles the program for each "
                             "platform", hint=f"give --platform, or build the binary first ({command.line('build')}) "
                                              "and pass --binary")
    toolchain = _toolchain(toolchain, builder_base)
    opts = img.options(cmd=cmd, entrypoint=entrypoint, env=env or [], workdir=workdir, label=label or [],
                       user=user, nonroot=nonroot, add=add or [], ca_certs=ca_certs, tzdata=tzdata, tmp=tmp,
                       nsswitch=nsswitch, terminfo=terminfo, locale=locale, no_runtime_files=no_runtime_files)
    outputs = [img.parse_output(o) for o in output or []]
    recipe = recipes.hello(tiny, extra=_split_flags(cflags), sources=[Path(s) for s in src or []])
    want = targets.lookup(arch) if arch else None
    platforms = targets.parse_archs(platform) if platform is not None else []
    make.image(ref, [Path(b) for b in binary or ["hello"]], opts, outputs, say, backend=backend, want=want,
               platforms=platforms, recipe=recipe, toolchain=toolchain, builder_base=_builder_base(c, builder_base),
               sbom=sbom, limits=_limits(timeout), index=_contents_index, supplier=_supplier(c, supplier),
               packages=_debian_packages)


def _debian_packages(arch: str, name: str, prefixes: Sequence[str]) -> Any:
    """A Debian package's files for an image, fetched and kept (rootfs/debfiles.py)."""
    from .rootfs import debfiles

    return debfiles.unpacked(arch, name, prefixes)


def _debian_image(c: Context, ref: str, debian: str | None, program: str | None, arch: str | None,
                  platform: str | None, binary: list[str] | None, src: list[str] | None, tiny: bool, cflags: str,
                  toolchain: str, builder_base: str | None, timeout: int, supplier: str | None, built: Path,
                  make: Callable[[list[Path]], None]) -> None:
    """image --debian: the package built (as build --debian) for --arch or each --platform into built, then the
    image of its one program made as of --binary files (one per platform: a multi-platform image)."""
    from .compile import project_file
    from .debian import build as debian_build
    from .errors import InputError

    if debian is None:
        raise InputError("--program: only with --debian", hint="give --debian NAME")
    given = [f for f, g in (("--binary", binary), ("--src", src), ("--tiny", tiny), ("--cflags", cflags)) if g]
    if given:
        raise InputError(f"{', '.join(given)} and --debian each say what the image holds", hint="give one of them")
    if arch and platform:
        raise InputError("--arch and --platform with --debian: give one of them")
    wanted = targets.parse_archs(platform) if platform else _targets(arch)
    chain = _toolchain(toolchain, builder_base)
    outcomes = debian_build.build(
        debian, wanted, "container" if chain == "auto" else chain, lambda t, name: built / t.name / name, say,
        flags=project_file.Settings(), index=_contents_index, program=program, base=_builder_base(c, builder_base),
        limits=_limits(timeout), out_dir=built, supplier=_supplier(c, supplier))
    make(debian_build.one_program(outcomes, debian.partition("=")[0], program))
    log.debug("image %s made from --debian %s", ref, debian)


def _given_words(text: str, flag: str) -> tuple[str, ...] | None:
    """A flag of words as given: None when it was not (or was empty), so that a project's file gives it."""
    return tuple(_split_flags(text, flag)) if text else None


def _split_flags(text: str, flag: str = "--cflags") -> list[str]:
    from .errors import InputError

    try:
        return shlex.split(text)
    except ValueError as exc:
        raise InputError(f"{flag} {text!r} does not parse ({exc})") from None


@task(help={"tag": "REGISTRY/NAME[:TAG], an image the image task made (multi-platform or in the engine)",
            "insecure": "allow plain HTTP and a TLS certificate that does not verify (plain HTTP is allowed "
                        "without it only for loopback registries)"})
@cli
def push(c: Context, tag: str, insecure: bool = False) -> None:
    """Push an image to a registry: its blobs, each platform's manifest and the index, then the tag; then each
    platform's SBOM, to the registry's referrers API or its referrers tag."""
    from .engine import client as engine
    from .image import referrers, registry, saved, store
    from .image import scratch as img

    local = img.normalize_tag(tag)
    ref = registry.parse_reference(local)
    # first, as docker push does: a name without a registry host goes to Docker Hub, which should never surprise
    hub = " (Docker Hub: the name has no registry host)" if ref.registry == registry.DOCKER_HUB else ""
    say(f"pushing to {ref}{hub}")
    images = store.find(local)
    with tempfile.TemporaryDirectory(prefix="fromscratch-push-", dir=_scratch_dir()) as tmp:
        if images is None:
            images = saved.from_engine(engine.connect(), local, Path(tmp))
        top, attached = referrers.push(images, ref, registry.client(ref, insecure or None), local)
    platforms = ", ".join(i.platform for i in images)
    print(f"pushed {ref}\ndigest:   {top.digest}\nplatforms: {platforms}")
    for done in attached:
        print(f"sbom:     {done.artifact.descriptor.digest} for {done.platform} ({done.how})")


@task(help={"binary": "a program: its <binary>.spdx.json, else what the binary itself shows",
            "tag": "an image the image task made (kept locally), or with --remote one in a registry",
            "remote": "with --tag: read the image's SBOMs from its registry, through the referrers",
            "insecure": "with --remote: plain HTTP (the default only for loopback registries)",
            "json": "print the SPDX document (a list of them for several platforms) instead of a table"})
@cli
def sbom(c: Context, binary: str | None = None, tag: str | None = None, remote: bool = False,
         insecure: bool = False, json: bool = False) -> None:
    """Print what is inside a program or an image: its SBOM as a table (package, version, how it got in)."""
    from .errors import InputError
    from .image import sbom as sboms
    from .image import scratch as img

    if (binary is None) == (tag is None):
        raise InputError("give --binary FILE or --tag NAME", hint=f"e.g. {command.line('sbom --binary ./hello')}")
    if remote and tag is None:
        raise InputError("--remote reads an image's SBOMs from a registry: give --tag REGISTRY/NAME")
    if binary is not None:
        shown = [sboms.of_binary(Path(binary), _supplier(c, None))]
    elif remote:
        shown = sboms.of_remote(img.normalize_tag(tag or ""), insecure)
    else:
        shown = sboms.of_local_image(img.normalize_tag(tag or ""))
    print(sboms.to_json(shown) if json else sboms.render(shown))


@task(name="inspect", help={"tag": "an image in the engine", "json": "print one JSON object instead"})
@cli
def inspect_image(c: Context, tag: str, json: bool = False) -> None:
    """Print an image's config, its files and their sizes."""
    from dataclasses import asdict

    from .engine import client as engine
    from .image import saved

    info = saved.inspect(engine.connect(), tag)
    if json:
        print(_json_dumps({**info, "files": [asdict(f) for f in info["files"]]}))
    else:
        print(saved.render_inspect(info))


@task(help={"tag": "the image to run",
            "platform": "the platform to run (linux/arm64, arm64): of a multi-platform image, its NAME:TAG-<arch>",
            "tty": "run the program on a terminal of its own (docker run -t; TERM=xterm), for programs that draw"})
@cli
def run(c: Context, tag: str, platform: str | None = None, tty: bool = False) -> None:
    """Run an image, stream its output, and exit with the container's exit code.

    Arguments after -- replace the image's CMD (its ENTRYPOINT stays), as `docker run IMAGE ARGS` does; stdin
    reaches the program when it is not a terminal, as with `docker run -i`.
    """
    from .engine import client as engine
    from .engine import run as runner

    target = _one_platform(platform) if platform else None
    client = engine.connect()
    code = runner.run(client, tag, sys.stdout.buffer, sys.stderr.buffer, target, _arguments(c),
                      None if tty else _piped_stdin(), tty=tty)
    if code:
        raise Exit(code=code)


def _one_platform(text: str) -> targets.Target:
    from .errors import InputError

    found = targets.parse_archs(text)
    if len(found) != 1:
        raise InputError(f"--platform {text}: give one platform here", hint="e.g. --platform linux/arm64")
    return found[0]


def _arguments(c: Context) -> list[str]:
    """The words after `--`, each as typed: Invoke keeps them joined by spaces (c.remainder), which would split
    an argument that holds one; they are taken from the command line when it is the one Invoke parsed."""
    remainder = getattr(c, "remainder", "") or ""
    if not remainder:
        return []
    if "--" in sys.argv:
        tail = sys.argv[sys.argv.index("--") + 1:]
        if " ".join(tail) == remainder:
            return tail
    return remainder.split()


def _piped_stdin() -> int | None:
    """Our stdin's file descriptor when it is a pipe or a file (not a terminal, as `docker run -i` without -t)."""
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, ValueError, OSError):  # none, closed, or not a real file (a test's stand-in)
        return None
    return None if os.isatty(fd) else fd


@task(help={"suite": "Debian suite (default bookworm)", "tag": "load into the engine under this name",
            "mirror": "Debian mirror (default: the host's apt source)",
            "variant": "debootstrap variant: minbase (default), buildd, fakechroot or default",
            "arch": "architecture (default: this host's); foreign ones are finished under QEMU",
            "include": "extra packages, comma-separated", "slim": "no docs, man pages or locales (copyrights stay)",
            "out": "write the rootfs tarball here: FILE.tar, .tar.gz or .tar.xz",
            "busybox": "a BusyBox image from Debian's busybox-static instead of debootstrap",
            "quiet": "no progress lines"})
@cli
def rootfs(c: Context, suite: str = "bookworm", tag: str | None = None, mirror: str | None = None,
           variant: str = "minbase", arch: str | None = None, include: str = "", slim: bool = False,
           out: str | None = None, busybox: bool = False, quiet: bool = False) -> None:
    """Build a Debian (or BusyBox) base image: reproducible tar, any architecture, into the engine and/or a file."""
    from .engine import client as engine
    from .errors import InputError
    from .image import scratch as img
    from .progress import Progress
    from .rootfs import busybox as bb
    from .rootfs import debootstrap as rfs

    req = rfs.Request.make(suite, mirror, variant, arch, include, slim)
    if busybox and (req.include or req.slim or variant != "minbase"):
        raise InputError("--include, --slim and --variant shape a debootstrap, not --busybox")
    ref = img.normalize_tag(tag) if tag else None
    if ref is None and not out:
        raise InputError("nothing to do: give --tag (load into the engine), --out FILE, or both")
    client = engine.connect() if ref else None
    make = bb.build if busybox else rfs.build
    done = make(req, client=client, tag=ref, out=Path(out) if out else None, progress=Progress(enabled=not quiet),
                scratch=_scratch_dir())
    _print_delivered(done)


@task(name="import-rootfs",
      help={"path": "a rootfs directory or tarball (.tar, .tar.gz, .tar.bz2, .tar.xz)", "tag": "image name",
            "arch": "the image's architecture (default: what the rootfs's programs are built for)",
            "allow_devices": "keep device nodes (refused by default)", "quiet": "no progress lines"})
@cli
def import_rootfs(c: Context, path: str, tag: str, arch: str | None = None, allow_devices: bool = False,
                  quiet: bool = False) -> None:
    """Import a root filesystem (directory or tarball) as an image, refusing entries that escape the root."""
    from .engine import client as engine
    from .image import scratch as img
    from .progress import Progress
    from .rootfs import debootstrap as rfs

    ref = img.normalize_tag(tag)
    want = targets.lookup(arch) if arch else None
    src = files.regular_input(Path(path), "rootfs directory or tarball", allow_dir=True)
    limit = _size_env("FROMSCRATCH_IMPORT_MAX", rfs.IMPORT_MAX, "8g")
    client = engine.connect()
    done = rfs.import_path(src, client=client, tag=ref, want=want, allow_devices=allow_devices,
                           progress=Progress(enabled=not quiet), limit=limit)
    _print_delivered(done)


@task(name="clean", help={"all": "also the caches every build shares: compiler caches, dpkg's answers",
                          "older_than": "only what no build used for this many days",
                          "project": "only the build states of this project directory (it need not exist any more)",
                          "dry_run": "only list what would be removed"})
@cli
def clean(c: Context, all: bool = False, older_than: str | None = None, project: str | None = None,  # noqa: A002
          dry_run: bool = False) -> None:
    """List the build state kept between builds (volumes on the engine, directories here), with sizes; remove it."""
    from .compile import kept
    from .engine import client as engine
    from .errors import InputError

    try:
        days = None if older_than is None else float(older_than)
    except ValueError:
        raise InputError(f"--older-than {older_than!r}: give a number of days") from None
    if project is not None and not project.strip():
        raise InputError("--project '': give the project's directory")
    kept.clean(engine.connect, all, days, dry_run, say, os.path.realpath(project) if project is not None else None)


def _print_delivered(done: Any) -> None:
    if done.tag:
        print(f"tag:   {done.tag}\nid:    {done.image_id}\nsize:  {done.engine_size or done.size:,} bytes")
    if done.out:
        print(f"out:   {done.out}")
    print(f"layer: {done.digest} ({done.size:,} bytes, {done.entries:,} entries)")


@task(help={"arch": "only these architectures (default: all)",
            "check": "only report what is registered; needs no root and changes nothing"})
@cli
def binfmt(c: Context, arch: str = "all", check: bool = False) -> None:
    """Register QEMU user-mode handlers (Debian's qemu-user-static, fix-binary) so foreign images run."""
    from .engine import binfmt as bf

    statuses = bf.ensure(targets.parse_archs(arch), targets.host(), change=not check)
    for status in statuses:
        print(status.render())
    bad = [s for s in statuses if not s.ok]
    if bad:
        raise ToolkitError(f"{len(bad)} target(s) cannot run on this host: "
                           + ", ".join(s.target.name for s in bad))


@task(help={"debian": "Debian source packages NAME[=VERSION], comma-separated, or a FILE with one a line",
            "arch": _ARCH_HELP + " (default: this host's)", "jobs": "build this many packages at once (default 1)",
            "out": "the Markdown report (default census.md; the JSON goes beside it)",
            "timeout": f"stop a package's build for a target after this many seconds (default {DEFAULT_TIMEOUT})",
            "builder_base": _BUILDER_BASE_HELP, "title": "the report's title"})
@cli
def census(c: Context, debian: str, arch: str | None = None, jobs: int = 1, out: str = "census.md",
           timeout: int = DEFAULT_TIMEOUT, builder_base: str | None = None, title: str = "Census") -> None:
    """Build many Debian source packages (as build --debian), smoke-run each program in its scratch image, and
    report each result and what failed, by class; a rerun reuses what was built for the same version and image."""
    from . import census as counting
    from .compile import buildimage
    from .engine import client as engine
    from .errors import InputError

    names = counting.parse_names(debian)
    wanted = _targets(arch)
    if jobs < 1:
        raise InputError(f"--jobs {jobs}: give 1 or more")
    if timeout < 0:
        raise InputError(f"--timeout {timeout}: give seconds, or 0 for no limit")
    report = Path(out)
    if report.suffix != ".md" or not report.parent.is_dir():
        raise InputError(f"--out {out}: give a .md file in an existing directory", hint="e.g. --out census.md")
    base = _builder_base(c, builder_base)
    client = engine.connect()
    if base is None:
        base = buildimage.default_base(client)[0]
    image = f"{base}@{buildimage.base_image_id(client, base)}"
    say(f"census of {len(names)} source packages for {', '.join(t.name for t in wanted)} over {base}")
    with files.temp_dir("fromscratch-census-", _scratch_dir()) as work:
        run = counting.Census(wanted, image, base, timeout, counting.Cache(), counting.engine_remover(), say, work)
        archs = [t.name for t in wanted]
        results = counting.run(names, run, jobs, lambda done: counting.report(done, archs, report, title))
    counting.report(results, archs, report, title)
    say(f"wrote {report} and {report.with_suffix('.json')}")


def _scratch_dir() -> str | None:
    from .files import scratch_dir

    return scratch_dir()


ns = Collection(build_hello, build, clean, verify, verify_image, image, inspect_image, push, sbom, run, rootfs,
                import_rootfs, binfmt, census)
# builder.base: the build image's base. None: the set-up's when the engine has it, else buildimage.FALLBACK_BASE.
# The key must exist for Invoke to read it from the environment (FROMSCRATCH_BUILDER_BASE, INVOKE_BUILDER_BASE).
ns.configure({"builder": {"base": None}})


class Config(invoke.Config):
    """fromscratch's configuration, read as Invoke reads invoke.yaml: /etc/fromscratch.yaml, ~/.fromscratch.yaml,
    ./fromscratch.yaml (each also .yml, .json or .py), the FROMSCRATCH_* variables named after its keys
    (FROMSCRATCH_BUILDER_BASE), then the file -f names; each beats the ones before it."""

    prefix = "fromscratch"


class Fromscratch(Program):
    """The `fromscratch` command: these tasks, fromscratch's configuration files, and a flag that cannot be used
    said in one line with exit 2, as every other input (Invoke's parser exits 1, or raises on a bad number)."""

    def run(self, argv: list[str] | None = None, exit: bool = True) -> None:
        try:
            try:
                super().run(argv, exit)
            finally:  # also when Invoke exits after printing: what is still buffered meets the closed pipe here
                sys.stdout.flush()
        except BrokenPipeError:  # --help or --list into `| head`: stop quietly, as the tasks do
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(141)

    def create_config(self) -> None:
        try:
            super().create_config()
            # Invoke's project level is the directory of tasks.py; fromscratch's is the one it runs in
            self.config.set_project_location(os.getcwd())
            self.config.load_project()
        except Exception as exc:  # a file that does not parse: Invoke's YAML, JSON or Python error, in one line
            raise Exit(f"error: the configuration cannot be read: {harmless(' '.join(str(exc).split()))}",
                       code=2) from None

    def execute(self) -> None:
        try:
            super().execute()  # merges the configuration's levels, then runs the tasks (their errors are theirs)
        except (AmbiguousMergeError, UncastableEnvVar) as exc:  # builder: IMAGE where builder: is a section
            raise Exit(f"error: the configuration cannot be used: {harmless(str(exc))} (hint: builder.base goes "
                       "in a section: builder:, then base: IMAGE on the next line, indented)", code=2) from None

    def parse_core(self, argv: list[str] | None) -> None:
        with self._flag_errors():
            super().parse_core(argv)

    def _make_parser(self) -> Any:
        # one parser per run: making one takes each task's help texts (Invoke pops them), so a second has none
        if getattr(self, "_parser", None) is None:
            self._parser = super()._make_parser()
        return self._parser

    def parse_tasks(self) -> None:
        asked = self._help_after_task()
        if asked:
            self.parser = self._make_parser()
            self.print_task_help(asked)
            raise Exit
        with self._flag_errors():
            super().parse_tasks()

    def _help_after_task(self) -> str | None:
        """The task whose -h or --help follows it (not as a flag's value): help, as the user asked. Invoke hands
        such a token to the task's positional argument instead, verify's PATH or image's tag."""
        tokens = list(self.core.unparsed)
        contexts = self._make_parser().contexts
        if not tokens or tokens[0] not in contexts:
            return None
        flags = contexts[tokens[0]].flags
        value_next = False
        for token in tokens[1:]:
            if value_next:
                value_next = False
            elif token == "--":
                return None
            elif token in ("-h", "--help"):
                return tokens[0]
            elif token in flags:
                value_next = flags[token].takes_value
        return None

    def parse_cleanup(self) -> None:
        with self._flag_errors():
            super().parse_cleanup()

    @contextlib.contextmanager
    def _flag_errors(self) -> Iterator[None]:
        try:
            yield
        except ParseError as exc:
            task_name = getattr(getattr(exc, "context", None), "name", None)
            where = (f"`{command.line('--help ' + task_name)}` lists its flags" if task_name
                     else f"`{command.line('--list')}` lists the tasks")
            raise Exit(f"error: {_flag_message(str(exc))} (hint: {where})", code=2) from None
        except ValueError:  # Invoke converts a number flag's value while it parses
            raise Exit(f"error: {self._bad_number()}", code=2) from None

    def _bad_number(self) -> str:
        tokens = self.argv[1:]
        contexts = [self.initial_context]
        if getattr(self, "collection", None) is not None:  # set once the core flags parsed
            contexts += self._make_parser().contexts.values()
        flags = {f: arg for ctx in contexts for f, arg in ctx.flags.items()}
        for i, token in enumerate(tokens):
            flag, equals, value = token.partition("=")
            if not equals:
                value = tokens[i + 1] if i + 1 < len(tokens) else ""
            if flag in flags and flags[flag].kind is int and not re.fullmatch(r"-?[0-9]+", value):
                return f"{flag} {value!r}: give a whole number"
        return "a flag that takes a number was given something else"


def _flag_message(text: str) -> str:
    """Invoke's parse error in the user's words: its flags as --name, not Argument objects."""
    text = re.sub(r"Flag <Argument: ([\w-]+)[^>]*>", r"--\1", text).rstrip("!")
    text = text.replace(" needed value and was not given one", " needs a value")
    text = text.replace(" doesn't take any value", " takes no value")
    return harmless(text[:1].lower() + text[1:])


program = Fromscratch(namespace=ns, name="fromscratch", binary="fromscratch", version=__version__,
                      config_class=Config)
