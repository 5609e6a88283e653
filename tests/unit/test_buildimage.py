"""The build image's tags, without an engine: what they follow."""

from __future__ import annotations

from toolkit import targets
from toolkit.build import buildimage

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
    assert len(old) == 4 and old == tags(OLD)
    assert not set(old) & set(new)
    # the Dockerfiles are the same text but for the FROM of the layers above the first
    first_old, first_new = (buildimage.chain("img", arm64, "amd64", base_id=i)[0] for i in (OLD, NEW))
    assert first_old.dockerfile == first_new.dockerfile and first_old.tag != first_new.tag
