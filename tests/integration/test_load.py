"""Load: 20 image builds in a row, then 20 more four at a time, all succeed and leave no container, no dangling
image and no temporary directory behind. (The wall time is reported, not judged: that is the benchmark's job.)"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import gcc

pytestmark = [pytest.mark.engine, pytest.mark.slow]

ROUNDS = 20


def test_twenty_in_a_row_then_four_at_a_time(sandbox, docker_client, image_tag):
    # a binary of its own, so that no other test shares its image id
    binary = gcc(sandbox.root, f'int main(void){{ return 0; }} /* {sandbox.session} */\n'
                 f'const char *id = "{sandbox.session}";\n', "-static", "-Os", "-s", name="load")
    tags = [image_tag("fromscratch-test-load") for _ in range(2 * ROUNDS)]

    def build(tag: str):
        return sandbox.run("image", "--tag", tag, "--binary", str(binary), timeout=300)

    started = time.monotonic()
    in_a_row = [build(tag) for tag in tags[:ROUNDS]]
    middle = time.monotonic()
    with ThreadPoolExecutor(max_workers=4) as pool:
        four_at_a_time = list(pool.map(build, tags[ROUNDS:]))
    ended = time.monotonic()
    print(f"{ROUNDS} image builds in a row: {middle - started:.1f} s; {ROUNDS} four at a time: {ended - middle:.1f} s")
    failed = [r for r in in_a_row + four_at_a_time if r.code != 0]
    assert not failed, failed
    ids = {docker_client.images.get(tag).id for tag in tags}
    assert len(ids) == 1  # the same binary gives the same image, whoever loaded it and when
    for tag in tags:  # removing every tag removes the image: nothing else holds on to it, nothing dangles
        docker_client.images.remove(tag)
    assert not [i for i in docker_client.api.images(all=True) if i["Id"] in ids]
    sandbox.assert_clean()
