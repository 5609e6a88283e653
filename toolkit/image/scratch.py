"""A FROM scratch image from a binary and options: the binary verified once and the options checked first, then
the image written as one layer, to a file or loaded into the engine (dockerfile.py hands the same files and
config to the engine to build instead)."""

from __future__ import annotations

import contextlib
import logging
import os
import posixpath
import re
import shlex
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .. import command, targets
from ..check import elf, verify
from ..engine import client as engine
from ..errors import EngineError, InputError
from ..files import atomic_output, output_file, scratch_dir
from . import oci, runtime

log = logging.getLogger(__name__)

HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
HOST_ZONEINFO = Path("/usr/share/zoneinfo")
NONROOT = 65532  # distroless's nonroot user and group
_MAX_ID = 2**31 - 1
_PASSWD = ("root:x:0:0:root:/root:/sbin/nologin\n"
           f"nonroot:x:{NONROOT}:{NONROOT}:nonroot:/nonexistent:/sbin/nologin\n")
_GROUP = f"root:x:0:\nnonroot:x:{NONROOT}:\n"
# distroless's: /etc/hosts (the engine's, with --add-host names) before DNS, which glibc's own default did not
# always do, and users and groups from the files; only services a static glibc has built in
_NSSWITCH = "passwd: files\ngroup: files\nhosts: files dns\n"
OUTPUT_KINDS = ("oci", "oci-archive", "docker-archive")


@dataclass(frozen=True)
class Add:
    """An extra host file or directory, and where it goes in the image (relative to the root)."""

    source: Path
    dest: str


@dataclass(frozen=True)
class Options:
    """Everything about an image besides its binary, already checked: building from it cannot fail on input."""

    cmd: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    env: tuple[str, ...] = ()
    workdir: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    nonroot: bool = False
    nsswitch: bool = False
    adds: tuple[Add, ...] = ()
    ca_certs: bool = False
    tzdata: bool = False
    tmp: bool = False
    runtime: runtime.Request = runtime.Request()  # terminfo, locale...: asked for, and added when found


@dataclass(frozen=True)
class Output:
    kind: str  # one of OUTPUT_KINDS
    path: Path

    def __str__(self) -> str:
        return f"{self.kind}:{self.path}"

    def load_hint(self) -> str:
        if self.kind == "oci":
            return f"tar -C {shlex.quote(str(self.path))} -c . | docker load"
        return f"docker load -i {shlex.quote(str(self.path))}"


@dataclass(frozen=True)
class Built:
    tag: str
    image: oci.Image
    verdict: verify.Verdict
    target: targets.Target  # the platform it is for
    files: int = 1  # regular files and symlinks in the layer
    content: int = 0  # their bytes, what `docker images` calls the size
    added: tuple[runtime.Added, ...] = ()  # the run-time files added (terminfo, locale...), and why


def normalize_tag(tag: str) -> str:
    """name -> name:latest; a tag that the engine could not accept is refused here, before any work."""
    tag = tag.strip()
    ref = r"^[a-z0-9]+([._-]+[a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-]+[a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$"
    if not tag or not re.match(ref, tag):
        raise InputError(f"--tag {tag!r} is not a valid image name",
                         hint="lowercase letters, digits, . _ - and /, then an optional :tag, e.g. hello:1.0")
    last = tag.rsplit("/", 1)[-1]
    return tag if ":" in last else f"{tag}:latest"


def parse_cmd(text: str | None, default: list[str] | None, flag: str = "--cmd") -> tuple[str, ...] | None:
    """--cmd or --entrypoint as a shell-like string -> exec form (scratch has no /bin/sh for a shell form)."""
    if text is None:
        return tuple(default) if default is not None else None
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise InputError(f"{flag} {text!r} does not parse ({exc})") from None
    if not words:
        raise InputError(f"{flag} is empty", hint=f"give the program to run, e.g. {flag} /hello")
    return tuple(words)


def parse_pairs(items: Iterable[str], flag: str) -> list[tuple[str, str]]:
    """K=V arguments (--env, --label) -> pairs, refusing any without '=' or with an empty or spaced key."""
    pairs = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or key != key.strip() or any(c.isspace() for c in key):
            raise InputError(f"{flag} {item!r} is not KEY=VALUE", hint=f"e.g. {flag} LANG=C.UTF-8")
        pairs.append((key, value))
    return pairs


def parse_user(text: str) -> str:
    """UID[:GID], numeric: a scratch image has no /etc/passwd to look a name up in."""
    parts = text.strip().split(":")
    if len(parts) > 2 or not all(p.isdigit() and int(p) <= _MAX_ID for p in parts):
        raise InputError(f"--user {text!r} is not numeric UID[:GID]",
                         hint="a scratch image has no /etc/passwd to resolve names: use e.g. --user 1000:1000, "
                              "or --nonroot for 65532 with passwd and group entries")
    return ":".join(str(int(p)) for p in parts)


def image_path(text: str, flag: str) -> str:
    """A path inside the image, relative to its root, normalised; one that climbs out of the root is refused."""
    depth = 0
    parts: list[str] = []
    for part in text.replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            depth -= 1
            if depth < 0:
                raise InputError(f"{flag} {text!r} leaves the image's root directory",
                                 hint="give a path inside the image, e.g. /etc/app.conf")
            parts.pop()
        else:
            depth += 1
            parts.append(part)
    return "/".join(parts)


def parse_add(text: str) -> Add:
    """SRC:DEST, the last ':' splitting them; DEST ending in / (or /) puts SRC inside that directory."""
    src, sep, dest = text.rpartition(":")
    if not sep or not src or not dest:
        raise InputError(f"--add {text!r} is not SRC:DEST", hint="e.g. --add ./app.conf:/etc/app.conf")
    source = Path(src)
    if not source.exists():
        raise InputError(f"--add {text!r}: {src}: no such file or directory")
    if not (source.is_file() or source.is_dir()):
        raise InputError(f"--add {text!r}: {src} is neither a regular file nor a directory")
    inside = image_path(dest, "--add")
    if dest.endswith("/") or not inside:
        inside = posixpath.join(inside, source.resolve().name) if inside else source.resolve().name
    return Add(source, inside)


def options(cmd: str | None = None, entrypoint: str | None = None, env: Sequence[str] = (),
            workdir: str | None = None, label: Sequence[str] = (), user: str | None = None,
            nonroot: bool = False, add: Sequence[str] = (), ca_certs: bool = False, tzdata: bool = False,
            tmp: bool = False, nsswitch: bool = False, terminfo: str | bool | None = None,
            locale: str | None = None, no_runtime_files: str | bool | None = None) -> Options:
    """Check every option as the user typed it; any problem is an InputError before anything is written."""
    if user is not None and nonroot:
        raise InputError("--user and --nonroot both set the user", hint="give one of them")
    env_pairs = dict(parse_pairs(env, "--env"))  # a repeated key: the last wins, as in a Dockerfile
    if workdir is not None:
        if not workdir.startswith("/"):
            raise InputError(f"--workdir {workdir!r} is not an absolute path", hint="e.g. --workdir /data")
        workdir = "/" + image_path(workdir, "--workdir")
    if ca_certs:
        ca_bundle()  # fail now, not after the binary is checked
    if tzdata:
        zoneinfo_dir()
    return Options(
        cmd=parse_cmd(cmd, None), entrypoint=parse_cmd(entrypoint, None, "--entrypoint"),
        env=tuple(f"{k}={v}" for k, v in env_pairs.items()), workdir=workdir,
        labels=dict(parse_pairs(label, "--label")),
        user=f"{NONROOT}:{NONROOT}" if nonroot else (parse_user(user) if user is not None else None),
        nonroot=nonroot, nsswitch=nsswitch, adds=tuple(parse_add(a) for a in add), ca_certs=ca_certs,
        tzdata=tzdata, tmp=tmp,
        runtime=runtime.Request(runtime.parse_terminfo(terminfo), runtime.parse_locale(locale),
                                runtime.parse_off(no_runtime_files)))


def parse_output(text: str) -> Output:
    kind, sep, path = text.partition(":")
    if not sep or kind not in OUTPUT_KINDS or not path:
        raise InputError(f"--output {text!r} is not KIND:PATH",
                         hint="oci:DIR, oci-archive:FILE.tar or docker-archive:FILE.tar")
    out = Output(kind, Path(path))
    if kind == "oci" and out.path.exists():
        if not out.path.is_dir():
            raise InputError(f"--output {text}: {path} exists and is not a directory")
        if any(out.path.iterdir()) and not (out.path / "oci-layout").is_file():
            raise InputError(f"--output {text}: {path} is a directory that is not an OCI layout",
                             hint="give a new or empty directory (an existing layout is replaced)")
    elif kind != "oci" and out.path.is_dir():
        raise InputError(f"--output {text}: {path} is a directory", hint="give a file name, e.g. image.tar")
    elif kind != "oci":
        try:
            output_file(Path(os.path.realpath(out.path)))  # /dev/full: refused now, not after the work
        except InputError as exc:
            raise InputError(f"--output {text}: {exc.message}", exc.hint) from None
    return out


def ca_bundle() -> Path:
    """The host's CA bundle, else certifi's (the one requests uses)."""
    if HOST_CA_BUNDLE.is_file():
        return HOST_CA_BUNDLE
    try:
        import certifi
    except ImportError:
        raise InputError(f"--ca-certs: no CA bundle at {HOST_CA_BUNDLE} and certifi is not installed",
                         hint="install ca-certificates (Debian/Ubuntu) or `pip install certifi`") from None
    return Path(certifi.where())


def zoneinfo_dir() -> Path:
    """The host's zoneinfo, else the tzdata package's (the one Python's zoneinfo falls back on)."""
    if (HOST_ZONEINFO / "UTC").exists():
        return HOST_ZONEINFO
    try:
        import tzdata  # type: ignore[import-not-found]
    except ImportError:
        raise InputError(f"--tzdata: no time zone data at {HOST_ZONEINFO} and the tzdata package is missing",
                         hint="install tzdata (Debian/Ubuntu) or `pip install tzdata`") from None
    return Path(tzdata.__file__).parent / "zoneinfo"


def tree_entries(source: Path, dest: str) -> Iterator[oci.Entry]:
    """A host file or directory tree as layer entries at dest; symlinks stay symlinks, modes are normalised."""
    if not source.is_dir():
        yield oci.entry_for(source.resolve(), dest)
        return
    yield oci.Entry(dest, 0o755, kind="dir")
    for root, dirs, names in os.walk(source):
        rel = Path(root).relative_to(source).as_posix()
        base = dest if rel == "." else f"{dest}/{rel}"
        for name in sorted(dirs + names):
            path = Path(root) / name
            if path.is_symlink():
                yield oci.Entry(f"{base}/{name}", 0o777, kind="symlink", link=os.readlink(path))
            elif path.is_dir():
                yield oci.Entry(f"{base}/{name}", 0o755, kind="dir")
            elif path.is_file():
                yield oci.entry_for(path, f"{base}/{name}")
            else:
                raise InputError(f"{path}: neither a regular file, a directory nor a symlink",
                                 hint="a FIFO, socket or device cannot go into an image layer")


def contents(binary: Path, opts: Options, added: Sequence[runtime.Added] = ()) -> list[oci.Entry]:
    """The files of the image: the binary at /<name>, then what the options add, then the run-time files added.
    Two at one path are refused."""
    entries = [oci.entry_for(binary, binary.name, 0o755)]
    if opts.nonroot:
        entries += [oci.Entry("etc/passwd", 0o644, data=_PASSWD.encode()),
                    oci.Entry("etc/group", 0o644, data=_GROUP.encode())]
    if opts.nsswitch:
        entries.append(oci.Entry("etc/nsswitch.conf", 0o644, data=_NSSWITCH.encode()))
    if opts.ca_certs:
        entries.append(oci.entry_for(ca_bundle(), "etc/ssl/certs/ca-certificates.crt", 0o644))
    if opts.tzdata:
        entries += tree_entries(zoneinfo_dir(), "usr/share/zoneinfo")
    if opts.tmp:
        entries.append(oci.Entry("tmp", 0o1777, kind="dir"))
    if opts.workdir and opts.workdir != "/":  # docker build's WORKDIR makes the directory; so do we
        entries.append(oci.Entry(opts.workdir.strip("/"), 0o755, kind="dir"))
    for add in opts.adds:
        entries += tree_entries(add.source, add.dest)
    for kind in added:
        entries += kind.entries
    seen: dict[str, oci.Entry] = {}
    for entry in entries:
        other = seen.get(entry.path)
        if other is not None and not (other.kind == entry.kind == "dir"):
            raise InputError(f"two files for /{entry.path} in the image", hint="change an --add DEST")
        seen[entry.path] = entry
    for path in seen:
        parent = posixpath.dirname(path)
        while parent:
            if parent in seen and seen[parent].kind != "dir":
                raise InputError(f"/{path} would be inside /{parent}, which is a file in the image",
                                 hint="change an --add DEST")
            parent = posixpath.dirname(parent)
    return list(seen.values())


def runtime_config(binary: Path, target: targets.Target, opts: Options,
                   added: Sequence[runtime.Added] = ()) -> oci.ImageConfig:
    cmd = opts.cmd
    if cmd is None and opts.entrypoint is None:
        cmd = (f"/{binary.name}",)
    env = opts.env if any(e.startswith("PATH=") for e in opts.env) else (oci.DEFAULT_PATH, *opts.env)
    env = (*env, *(e for kind in added for e in kind.env))
    return oci.ImageConfig(architecture=target.architecture, variant=target.variant, cmd=cmd,
                           entrypoint=opts.entrypoint, env=env, workdir=opts.workdir, user=opts.user,
                           labels=dict(opts.labels))


def platform_of(facts: elf.ElfFacts, want: targets.Target | None = None) -> targets.Target:
    """The platform an image of this program is for: want when given (verify holds the program to it), else
    what the ELF says."""
    if want is not None:
        return want
    matches = targets.for_elf(facts.elf_class or 0, facts.endianness or "", facts.machine or "")
    if facts.arm_arch and facts.variants:
        # the oldest variant that runs it: a v5 binary in a v5 image also runs on v6 and v7 hosts
        return next(t for t in matches if t.variant == facts.variants[0])
    # an ARM binary without .ARM.attributes does not say its variant; v7 is what `--platform linux/arm` means
    return next((t for t in matches if t.variant == "v7"), matches[0])


@dataclass(frozen=True)
class Prepared:
    """What an image of a binary holds and says, before any of it is written."""

    entries: list[oci.Entry]
    verdict: verify.Verdict  # judged knowing the image's files: its run-time warnings say what this image holds
    target: targets.Target
    config: oci.ImageConfig
    added: tuple[runtime.Added, ...] = ()


def prepare(binary: Path, opts: Options, want: targets.Target | None = None,
            facts: elf.ElfFacts | None = None, packages: runtime.Packages | None = None) -> Prepared:
    """The image of binary, checked: its files, and the binary verified once, for want if given, knowing those
    files (an /etc/passwd from --nonroot...). facts: what a build already read of it, so it is not read again.
    packages: where Debian's packages come from, for the run-time files (terminfo, locale...) the options ask
    for and the program reads; None adds none. A binary that fails verify is refused with verify's reasons."""
    entries = contents(binary, opts)
    subject, hint = f"the image would hold {binary}", f"see `{command.line(f'verify {binary}')}`"
    verdict = verify.judge(facts or elf.read(str(binary)), want, {"/" + e.path for e in entries}, subject=subject,
                           hint=hint)
    target = platform_of(verdict.facts, want)
    added: tuple[runtime.Added, ...] = ()
    if packages is not None:
        added = tuple(runtime.plan(binary, verdict.facts, target, opts.runtime, packages,
                                   frozenset("/" + e.path for e in entries), opts.env))
    if added:  # judged again, knowing the files added: its warnings say what this image holds
        entries = contents(binary, opts, added)
        verdict = verify.judge(verdict.facts, want, {"/" + e.path for e in entries}, subject=subject, hint=hint)
    return Prepared(entries, verdict, target, runtime_config(binary, target, opts, added), added)


@contextlib.contextmanager
def assemble(binary: Path, tag: str, cmd: str | None = None, want: targets.Target | None = None,
             epoch: int = 0, opts: Options | None = None, facts: elf.ElfFacts | None = None,
             packages: runtime.Packages | None = None) -> Iterator[Built]:
    """Verify binary and write its one-layer image into a temporary directory that lives for the block."""
    if opts is None:
        opts = Options(cmd=parse_cmd(cmd, None))
    made = prepare(binary, opts, want, facts, packages)
    with tempfile.TemporaryDirectory(prefix="fromscratch-image-", dir=scratch_dir()) as tmp:
        layer_path = Path(tmp) / "layer.tar"
        with open(layer_path, "wb") as fh:
            desc = oci.write_layer(made.entries, fh, epoch)
        image = oci.make_image([(desc, layer_path)], made.config, epoch,
                               created_by=f"fromscratch image: COPY {binary.name} /{binary.name}")
        yield Built(tag, image, made.verdict, made.target, *tally(made.entries), added=made.added)


def tally(entries: list[oci.Entry]) -> tuple[int, int]:
    """How many files and symlinks the entries hold, and their bytes counted as `docker images` counts them."""
    files = [e for e in entries if e.kind != "dir"]
    size = sum(len(e.link) if e.kind == "symlink" else len(e.data) if e.data is not None
               else e.source.stat().st_size if e.source else 0 for e in files)
    return len(files), size


def write_output(images: list[oci.Image], output: Output, tag: str, artifacts: Sequence[oci.Artifact] = ()) -> None:
    """One output, complete or not at all: written beside its target under a temporary name, then renamed. The
    OCI kinds list the artifacts (SBOMs) after the image; a docker-archive holds the image alone."""
    if output.kind != "oci":
        with atomic_output(output.path) as tmp, open(tmp, "wb") as fh:
            oci.write_archive(images, fh, repo_tags=[tag], docker=len(images) == 1,
                              artifacts=artifacts if output.kind == "oci-archive" else ())
        return
    target = output.path
    parent = target.parent if str(target.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=parent))
    old: Path | None = None
    try:
        oci.write_layout(images, staging, ref_name=tag, artifacts=artifacts)
        if len(images) == 1:  # makes `tar -C DIR -c . | docker load` work too
            (staging / "manifest.json").write_bytes(oci.docker_manifest(images[0], [tag]))
        staging.chmod(0o755)
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=parent))
            os.replace(target, old / "layout")
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def load(store: engine.Images, built: Built, tags: Sequence[str] = ()) -> dict:
    """Stream the image into the engine (`docker load`), with no archive on disk; returns tag, id and size."""
    tags = list(tags) or [built.tag]
    with engine.step(f"looking up {built.image.image_id}"):
        attrs = store.inspect(built.image.image_id)
    if attrs is not None:  # the same ID is the same config and layers: tagging it is all a load would do
        with engine.step(f"tagging {tags[0]}"):
            for ref in tags:
                repository, _, tag = ref.rpartition(":")
                store.tag(attrs["Id"], repository, tag)
    else:
        chunks = oci.archive_chunks([built.image], repo_tags=tags)
        with engine.step(f"loading {tags[0]} into the engine"):
            store.load(chunks)
        with engine.step(f"inspecting {tags[0]}"):  # what the engine made of it: its ID and size
            attrs = store.inspect(tags[0])
        if attrs is None:
            raise EngineError(f"loading {tags[0]} into the engine failed: the engine reported no error, "
                              "but holds no such image")
    if attrs["Id"] != built.image.image_id:
        log.warning("the engine gave %s the ID %s, not %s", tags[0], attrs["Id"], built.image.image_id)
    return {"tag": tags[0], "id": attrs["Id"], "size": attrs.get("Size", built.image.size)}
