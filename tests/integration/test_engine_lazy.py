"""The engine a container build talks to (engine/client.py connect_lazy): over a local socket the SDK is loaded
only when a call needs it, and answers as connect()'s does; no engine is one line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from toolkit.engine import client as engine
from toolkit.errors import EngineUnavailable


def test_the_lazy_client_answers_as_the_sdk_does(docker_client, builder_base):
    lazy = engine.connect_lazy()
    assert isinstance(lazy, engine.LazyClient)
    assert lazy.version()["ApiVersion"] == docker_client.version()["ApiVersion"]
    assert engine.image_id(lazy, builder_base) == engine.image_id(docker_client, builder_base)
    assert engine.image_id(lazy, "fromscratch-test/none:missing") is None
    assert lazy.api.api_version == lazy.version()["ApiVersion"]  # the SDK, made now, at the engine's version
    assert lazy.images.get(builder_base).id == engine.image_id(lazy, builder_base)


def test_a_lookup_loads_no_sdk(docker_client, builder_base):
    probe = ("import sys; from toolkit.engine import client as e; c = e.connect_lazy(); "
             f"assert e.image_id(c, {builder_base!r}); c.version(); print('docker' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "False", done


def test_no_engine_on_the_socket_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/none.sock")
    with pytest.raises(EngineUnavailable, match="no Docker engine answered"):
        engine.connect_lazy()


def test_lookups_from_many_threads_share_the_socket(docker_client, builder_base):
    """The builds for several targets (--jobs) look their images up at once: each lookup answers (one connection
    asked while it answers another would refuse with CannotSendRequest)."""
    from concurrent.futures import ThreadPoolExecutor

    lazy = engine.connect_lazy()
    want = engine.image_id(docker_client, builder_base)

    def look(i: int) -> tuple[str | None, object]:
        return engine.image_id(lazy, builder_base if i % 2 else "fromscratch-test/none:missing"), lazy.api

    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(look, range(200)))
    assert [g[0] for g in got] == [want if i % 2 else None for i in range(200)]
    assert len({id(g[1]) for g in got}) == 1  # one SDK client, made once
