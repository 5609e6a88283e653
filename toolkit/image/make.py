"""The `image` task's work, end to end: a binary (or a program compiled once per platform) assembled into a
scratch image, written to each --output, kept in the store for push, and loaded into the engine."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from .. import command, dates, files, targets
from ..compile import provides, recipes
from ..engine import client as engine
from ..engine.limits import Limits
from ..errors import EngineUnavailable, InputError
from ..sbom.spdx import NOASSERTION
from . import dockerfile, oci, runtime, store
from . import sbom as sboms
from . import scratch as img


def image(ref: str, binaries: Sequence[Path], opts: img.Options, outputs: Sequence[img.Output],
          say: Callable[[str], None],
          *, backend: str = "python", want: targets.Target | None = None, platforms: Sequence[targets.Target] = (),
          recipe: recipes.Recipe | None = None, toolchain: str = "auto", builder_base: str | None = None,
          sbom: str | None = None, limits: Limits | None = None, index: provides.Index | None = None,
          supplier: str = NOASSERTION, packages: runtime.Packages | None = None) -> None:
    """Make ref's image and say what was made: of one binary, of several (one per platform, each platform read
    from its ELF: one multi-platform image) or, with platforms, of recipe compiled for each of them; want: the
    one platform a binary must be for. Each platform's SBOM (sbom: FILE, none, or by default the one beside each
    binary) is attached to it; what this run makes or describes (the programs it compiles, the image, the files it
    adds) names supplier. packages: where Debian's packages come from for the run-time files (terminfo, locale...)
    the image gets."""
    epoch = dates.source_date_epoch(0)
    if platforms and want:
        raise InputError("--arch and --platform both choose the architecture", hint="give one of them")
    multi = len(platforms) > 1 or len(binaries) > 1
    if multi and any(o.kind == "docker-archive" for o in outputs):
        raise InputError("a docker-archive holds one platform's image",
                         hint="use --output oci-archive:FILE.tar or oci:DIR for several platforms")
    if len(binaries) > 1:
        _check_binaries(binaries, want, platforms)
    binary = binaries[0]
    if not platforms:  # a missing binary, FIFO or device is named before the engine is asked for anything
        for b in binaries:
            files.regular_input(b, "binary")
    if backend not in ("python", "dockerfile"):
        raise InputError(f"unknown backend {backend!r}", hint="choose python or dockerfile")
    choice = sboms.choose(sbom, len(platforms) or len(binaries))
    if backend == "dockerfile":
        if outputs or platforms or choice.mode == "file":
            raise InputError("--backend dockerfile builds one image in the engine; "
                             "--output, --platform and --sbom FILE need the python backend")
        say(_render_dockerfile_build(dockerfile.build(engine.connect(), binary, ref, opts, want, epoch, packages)))
        return
    indexed = bool(platforms) or len(binaries) > 1  # kept in the store for push, loaded with per-platform tags
    client = None if outputs else _engine_for(indexed)
    with contextlib.ExitStack() as stack:
        if platforms:
            paths, built = _compile_each(stack, platforms, recipe or recipes.hello(), binary.name, ref, opts, epoch,
                                         toolchain, builder_base, say, limits, index, supplier, packages)
        else:
            paths = list(binaries)
            built = [stack.enter_context(img.assemble(b, ref, want=want, epoch=epoch, opts=opts, packages=packages))
                     for b in binaries]
            _one_per_platform(binaries, built)
        # a bad SBOM stops here: nothing written
        attached = _attach_sboms(paths, built, choice, ref, opts, epoch, supplier, built_here=bool(platforms))
        say(_render_built(ref, built, attached))
        artifacts = [a for a, _ in attached]
        _write_outputs(ref, [b.image for b in built], outputs, multi=indexed, say=say, artifacts=artifacts)
        if client is not None or indexed:  # kept for `invoke push`, by image ID
            for made in built:
                store.keep_referrers(ref, made.image.image_id, [a for a in artifacts
                                                           if a.subject.digest == made.image.manifest_desc.digest])
        if client is not None:
            _load_all(client, ref, built, per_platform_tags=indexed, say=say)


def _check_binaries(binaries: Sequence[Path], want: targets.Target | None,
                    platforms: Sequence[targets.Target]) -> None:
    """Several binaries are one program for several platforms: one name (the image's CMD names it)."""
    if platforms:
        raise InputError("--platform compiles the program for each platform; several --binary bring their own",
                         hint="give one of them")
    if want:
        raise InputError("--arch checks one binary; several --binary each carry their platform")
    names = sorted({b.name for b in binaries})
    if len(names) > 1:
        raise InputError(f"the binaries have different names ({', '.join(names)}): a multi-platform image runs one "
                         "program, /NAME, on every platform", hint="give the builds of one program, e.g. "
                         "--binary dist/amd64/lua --binary dist/arm64/lua")


def _one_per_platform(binaries: Sequence[Path], built: Sequence[img.Built]) -> None:
    seen: dict[str, Path] = {}
    for path, b in zip(binaries, built, strict=True):
        if b.image.platform in seen:
            raise InputError(f"{seen[b.image.platform]} and {path} are both for {b.image.platform}",
                             hint="give one binary per platform")
        seen[b.image.platform] = path


def _engine_for(multi: bool) -> engine.Images | None:
    """The engine to load into; a multi-platform image is still kept for push when none answers."""
    try:
        return engine.images()
    except EngineUnavailable as exc:
        if multi:
            return None
        raise EngineUnavailable(exc.message, hint=f"{exc.hint}; or write the image to a file with "
                                "--output oci-archive:image.tar, which needs no engine") from None


def _compile_each(stack: contextlib.ExitStack, platforms: Sequence[targets.Target], recipe: recipes.Recipe,
                  name: str, ref: str, opts: img.Options, epoch: int, toolchain: str, builder_base: str | None,
                  say: Callable[[str], None], limits: Limits | None = None,
                  index: provides.Index | None = None, supplier: str = NOASSERTION,
                  packages: runtime.Packages | None = None) -> tuple[list[Path], list[img.Built]]:
    """Compile recipe for each platform into a directory that lives as long as the stack (each binary with its
    SBOM beside it), and assemble each."""
    bins = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fromscratch-bins-")))
    paths, built = [], []
    for target in platforms:
        out = bins / target.name / name
        done = recipes.compile_for(recipe, [target], toolchain, out, builder_base, say, limits=limits, index=index,
                                   supplier=supplier)
        paths.append(out)
        facts = done[0].written[0].facts  # read once, by the build's verify
        built.append(stack.enter_context(img.assemble(out, ref, want=target, epoch=epoch, opts=opts, facts=facts,
                                                      packages=packages)))
    return paths, built


def _attach_sboms(paths: Sequence[Path], built: Sequence[img.Built], choice: sboms.Choice, ref: str,
                  opts: img.Options, epoch: int, supplier: str,
                  built_here: bool = False) -> list[tuple[oci.Artifact, str]]:
    """Each platform's SBOM as an artifact referring to its manifest, with where the program's part came from.
    built_here: the binaries were compiled by this task, each SBOM written with its binary moments ago."""
    if choice.mode == "none":
        return []
    contents = sboms.resolve(sboms.extras(opts), supplier)  # the same files on every platform: asked once
    out = []
    for path, b in zip(paths, built, strict=True):
        program = sboms.for_program(path, choice, b.image.platform, b.verdict.facts, epoch, built_here=built_here,
                                    supplier=supplier)
        assert program is not None
        added = sboms.debian_contents(b.added)  # this platform's: a locale's files are its architecture's
        out.append((sboms.attach(b, program, ref, [*contents, *added], path.name, epoch, supplier=supplier),
                    program.origin))
    return out


def _write_outputs(ref: str, images: list[oci.Image], outputs: Sequence[img.Output], *, multi: bool,
                   say: Callable[[str], None], artifacts: Sequence[oci.Artifact] = ()) -> None:
    for out in outputs:
        img.write_output(images, out, ref, artifacts)
        if len(images) == 1:
            say(f"wrote {out} (load it with: {out.load_hint()})")
        else:  # docker load takes one platform's image
            say(f"wrote {out}, an index of {len(images)} platforms (push it to a registry with "
                f"`{command.line('push --tag ' + ref)}`)")
    if multi:
        img.write_output(images, img.Output("oci", store.path_for(ref)), ref, artifacts)
        say(f"kept for `{command.line('push --tag ' + ref)}` in {store.path_for(ref)}")
    else:
        store.forget(ref)


def _load_all(client: engine.Images, ref: str, built: list[img.Built], *, per_platform_tags: bool,
              say: Callable[[str], None]) -> None:
    """Load each platform's image; NAME:TAG-<arch> each, and the engine's own architecture the plain tag too."""
    native = engine.native_target(client).architecture
    loaded: list[list[str]] = []
    for b in built:
        tags = [engine.platform_ref(ref, b.target)] if per_platform_tags else []  # hello:1.0-arm64, hello:1.0-arm-v7
        if b.target.architecture == native and not any(ref in t for t in loaded):
            tags.insert(0, ref)
        loaded.append(tags)
        info = img.load(client, b, tags)
        say(f"loaded {b.image.platform} into the engine as {', '.join(tags or [ref])} ({info['size']:,} bytes)")


def _render_built(ref: str, built: list[img.Built], attached: Sequence[tuple[oci.Artifact, str]]) -> str:
    lines = [f"tag:      {ref}", f"digest:   {oci.top_descriptor([b.image for b in built]).digest}"]
    sboms_of = {a.subject.digest: (a, origin) for a, origin in attached}
    for b in built:
        lines += [f"{'platform:':<10}{b.image.platform}", f"  id:     {b.image.image_id}",
                  f"  size:   {b.content:,} bytes in {count(b.files, 'file')}; "
                  f"{count(len(b.image.layers), 'layer')} of {b.image.size:,} bytes (uncompressed tar)"]
        if b.image.manifest_desc.digest in sboms_of:
            artifact, origin = sboms_of[b.image.manifest_desc.digest]
            lines.append(f"  sbom:   {artifact.descriptor.digest} (SPDX; the program's part {origin})")
        lines += [f"  {a.line()}" for a in b.added]  # the run-time files added, each with why
        lines += [f"  warning: {w}" for w in b.verdict.runtime]  # what its NSS, iconv... calls will do here
    return "\n".join(lines)


def _render_dockerfile_build(info: dict) -> str:
    return (f"tag:      {info['tag']}\nid:       {info['id']}\n"
            f"size:     {info['size']:,} bytes in {count(info['files'], 'file')}; "
            f"{count(info['layers'], 'layer')}\n"
            + "".join(f"  {line}\n" for line in info.get("added", ()))
            + "".join(f"  warning: {w}\n" for w in info["warnings"])
            + "built by the engine from this Dockerfile:\n" + info["dockerfile"].rstrip())


def count(n: int, noun: str) -> str:
    """'1 file', '2 files'."""
    return f"{n} {noun}" + ("" if n == 1 else "s")
