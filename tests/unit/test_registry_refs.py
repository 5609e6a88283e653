"""How push reads REGISTRY/NAME[:TAG], the way docker does."""

from __future__ import annotations

import pytest

from toolkit.errors import InputError
from toolkit.image.registry import DOCKER_HUB, parse_reference


@pytest.mark.parametrize("text, registry, repository, tag, loopback", [
    ("localhost:5000/hello", "localhost:5000", "hello", "latest", True),
    ("127.0.0.1:5000/team/hello:1.0", "127.0.0.1:5000", "team/hello", "1.0", True),
    ("registry.example.com/hello:2", "registry.example.com", "hello", "2", False),
    ("hello", DOCKER_HUB, "library/hello", "latest", False),
    ("someone/hello:x", DOCKER_HUB, "someone/hello", "x", False),
])
def test_references(text, registry, repository, tag, loopback):
    ref = parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag, ref.loopback) == (registry, repository, tag, loopback)


def test_digest_references_are_refused():
    with pytest.raises(InputError, match="digest"):
        parse_reference("localhost:5000/hello@sha256:" + "0" * 64)
