"""The `image --backend dockerfile` way, the documented one: the scratch image's files and config (scratch.py)
handed to the engine as a generated Dockerfile and a build context, for the engine to build."""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import replace
from pathlib import Path

from .. import targets
from ..engine import build as dockerbuild
from ..engine import client as engine
from ..errors import InputError
from ..files import scratch_dir
from . import oci, runtime
from . import scratch as img

log = logging.getLogger(__name__)


def _dockerfile_word(text: str, what: str) -> str:
    """A double-quoted Dockerfile word: the builder expands $ and \\ there, so both are escaped."""
    if "\n" in text or "\r" in text:
        raise InputError(f"{what} {text!r} holds a line break, which a Dockerfile cannot carry",
                         hint="use the default backend (python)")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def dockerfile(config: oci.ImageConfig) -> str:
    """The Dockerfile that builds the same image: FROM scratch, one COPY of the prepared root, the config."""
    lines = ["FROM scratch", "COPY rootfs/ /"]
    for item in config.env:
        if item == oci.DEFAULT_PATH:
            continue  # docker build sets this one itself
        key, _, value = item.partition("=")
        lines.append(f"ENV {key}={_dockerfile_word(value, '--env')}")
    for key, value in sorted(config.labels.items()):
        lines.append(f"LABEL {_dockerfile_word(key, '--label')}={_dockerfile_word(value, '--label')}")
    if config.user:
        lines.append(f"USER {config.user}")
    if config.workdir:
        lines.append(f"WORKDIR {config.workdir.replace('$', chr(92) + '$')}")
    if config.entrypoint is not None:
        lines.append(f"ENTRYPOINT {json.dumps(list(config.entrypoint))}")
    if config.cmd is not None:
        lines.append(f"CMD {json.dumps(list(config.cmd))}")
    return "\n".join(lines) + "\n"


def build(client: engine.Client, binary: Path, tag: str, opts: img.Options, want: targets.Target | None = None,
          epoch: int = 0, packages: runtime.Packages | None = None) -> dict:
    """Verify binary, then have the engine build tag from a generated Dockerfile and the same files."""
    made = img.prepare(binary, opts, want, packages=packages)
    text = dockerfile(made.config)
    context_entries = [oci.Entry("Dockerfile", 0o644, data=text.encode()),
                       oci.Entry("rootfs", 0o755, kind="dir"),
                       *(replace(e, path=f"rootfs/{e.path}") for e in made.entries)]
    with tempfile.TemporaryDirectory(prefix="fromscratch-context-", dir=scratch_dir()) as tmp:
        context = Path(tmp) / "context.tar"
        with open(context, "wb") as fh:
            oci.write_layer(context_entries, fh, epoch)
        native = engine.native_target(engine.images(client))
        log.info("Dockerfile:\n%s", text)
        with open(context, "rb") as fh:
            dockerbuild.build(client, fh, tag, {}, what=f"docker build of {tag}",
                              platform=made.target.platform if made.target.architecture != native.architecture
                              else None)
    with engine.step(f"inspecting {tag}"):
        attrs = client.images.get(tag).attrs
    return {"tag": tag, "id": attrs["Id"], "size": attrs.get("Size", 0),
            "layers": len(attrs.get("RootFS", {}).get("Layers", [])),
            "files": img.tally(made.entries)[0], "dockerfile": text, "warnings": made.verdict.runtime,
            "added": [a.line() for a in made.added]}
