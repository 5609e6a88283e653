"""The build image's tags, without an engine: what they follow."""

from __future__ import annotations

from types import SimpleNamespace

from toolkit import targets
from toolkit.compile import buildimage

OLD, NEW = "sha256:" + "a" * 64, "sha256:" + "b" * 64


def test_every_layers_tag_follows_the_base_images_id():
    """A base remade under the same name (a rootfs by a newer recipe, a newer ubuntu:24.04) gets new build
    images, never the ones holding the old base's libraries."""
    arm64 = targets.lookup("arm64")

    def tags(base_id: str) -> list[str]:
        layers = buildimage.chain("fromscratch/debian:bookworm", arm64, "amd64", (), ("zlib1g-dev",),
                                  project=True, base_id=base_id)
        return [layer.tag for layer in layers]

    old, new = tags(OLD), tags(NEW)
    assert len(old) == 5 and old == tags(OLD)
    assert not set(old) & set(new)
    # the Dockerfiles are the same text but for the FROM of the layers above the first
    first_old, first_new = (buildimage.chain("img", arm64, "amd64", base_id=i)[0] for i in (OLD, NEW))
    assert first_old.dockerfile == first_new.dockerfile and first_old.tag != first_new.tag


class _Images:
    """An engine's image list, as much of the SDK as default_base asks: get(ref), ImageNotFound if absent."""

    def __init__(self, *present: str) -> None:
        self.present = present

    def get(self, ref: str) -> SimpleNamespace:
        from docker.errors import ImageNotFound

        if ref not in self.present:
            raise ImageNotFound(ref)
        return SimpleNamespace(id=f"sha256:{abs(hash(ref)):064x}"[:71])


def test_the_default_base_is_the_set_ups_when_the_engine_has_it():
    with_it = SimpleNamespace(images=_Images("fromscratch/debian:bookworm"))
    assert buildimage.default_base(with_it) == ("fromscratch/debian:bookworm", "made by the set-up")
    without = SimpleNamespace(images=_Images())
    assert buildimage.default_base(without) == (
        "ubuntu:24.04", "the default: fromscratch/debian:bookworm, which the set-up makes, is not in the engine")


def test_each_layer_has_a_name_to_say_as_it_builds():
    """The names are said, not hashed: a layer's tag is its Dockerfile's and its base's."""
    arm64 = targets.lookup("arm64")
    layers = buildimage.chain("fromscratch/debian:bookworm", arm64, "amd64", ("tcl",), ("zlib1g-dev",),
                              libc="glibc", project=True, base_id=OLD)
    assert [layer.title for layer in layers] == ["gcc and g++", "build systems", "arm64 cross gcc and QEMU",
                                                 "tcl zlib1g-dev:arm64", "ccache"]
    musl = buildimage.chain("img", arm64, "amd64", libc="musl", base_id=OLD)
    assert [layer.title for layer in musl] == ["gcc and g++", "arm64 cross gcc", "musl-dev:arm64"]
    renamed = buildimage.BuildImage("img", ("gcc",), title="another name", base_id=OLD)
    assert renamed.tag == buildimage.BuildImage("img", ("gcc",), base_id=OLD).tag


def test_a_failed_layer_is_one_line_with_what_apt_said():
    """The engine names a failed RUN step by its whole script; the error keeps its exit code and apt's reason."""
    from toolkit.engine.build import said

    script = "/bin/sh -c dpkg --add-architecture s390x && apt-get update && apt-get build-dep -y -a s390x x=1"
    lines = ["Step 3/6 : RUN " + script, "Reading package lists...",
             "The following packages have unmet dependencies:",
             " builddeps:hexedit:s390x : Depends: libncurses5-dev:s390x",
             "\x1b[91mE: \x1b[0m", "\x1b[91mUnable to correct problems, you have held broken packages.\x1b[0m"]
    error = f"The command '{script}' returned a non-zero code: 100"
    assert said(error, lines) == ("a RUN step exited with 100 (builddeps:hexedit:s390x : Depends: "
                                  "libncurses5-dev:s390x)")
    assert said("no space left\non device", []) == "no space left on device"
    assert said(error, ["\x1b[91mE: Unable to locate package nosuch\x1b[0m"]) == (
        "a RUN step exited with 100 (E: Unable to locate package nosuch)")
