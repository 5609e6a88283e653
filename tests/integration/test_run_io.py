"""`run` as `docker run -i IMAGE ARGS` (issue 28, points 5 and 6): the arguments after -- replace the image's CMD,
stdin reaches the program when it is not a terminal, and a multi-platform image's per-platform tags are found
with --platform or named in the error."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO, assert_clean_failure, gcc, invoke

pytestmark = pytest.mark.engine

# Prints its arguments, then copies its stdin and counts it; exit 7 with three arguments or more.
ECHO = r"""#include <stdio.h>
int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) printf("arg %d: [%s]\n", i, argv[i]);
    char buf[4096]; size_t n, total = 0;
    while ((n = fread(buf, 1, sizeof buf, stdin)) > 0) { fwrite(buf, 1, n, stdout); total += n; }
    printf("stdin: %zu bytes\n", total);
    return argc > 3 ? 7 : 0;
}
"""


def run_piped(*args: str, stdin: bytes, cwd=None) -> subprocess.CompletedProcess:
    """`invoke run ...` with stdin a pipe that carries stdin, as `echo hello | fromscratch run ...`."""
    return subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(REPO), "run", *args], input=stdin,
                          capture_output=True, cwd=cwd, timeout=300, env=dict(os.environ))


@pytest.fixture(scope="module")
def echoer(tmp_path_factory):
    return gcc(tmp_path_factory.mktemp("echo"), ECHO, "-static", "-O2", name="echoer")


def test_arguments_follow_the_entrypoint_and_stdin_is_passed_on(echoer, image_tag, tmp_path):
    tag = image_tag()
    assert invoke("image", "--tag", tag, "--binary", str(echoer), "--entrypoint", "/echoer", cwd=tmp_path).code == 0
    got = run_piped("--tag", tag, "--", "a", "b c", stdin=b"hello\n")
    assert got.returncode == 0, got
    assert got.stdout.decode() == "arg 1: [a]\narg 2: [b c]\nhello\nstdin: 6 bytes\n"
    # no arguments: the image's own command; a large stdin arrives whole; the program's exit code is run's
    big = os.urandom(3 << 20)
    whole = run_piped("--tag", tag, stdin=big)
    assert whole.returncode == 0 and whole.stdout == big + f"stdin: {len(big)} bytes\n".encode(), whole.stderr
    three = run_piped("--tag", tag, "--", "x", "y", "z", stdin=b"")
    assert three.returncode == 7 and three.stdout.decode().endswith("stdin: 0 bytes\n"), three


def test_arguments_replace_the_cmd_as_docker_run_does(echoer, image_tag, tmp_path):
    tag = image_tag()
    assert invoke("image", "--tag", tag, "--binary", str(echoer), cwd=tmp_path).code == 0  # CMD ["/echoer"]
    got = run_piped("--tag", tag, "--", "/echoer", "--flag", stdin=b"in")
    assert got.returncode == 0, got
    assert got.stdout.decode() == "arg 1: [--flag]\ninstdin: 2 bytes\n"


def test_a_multi_platform_tag_is_found_by_platform_and_named_without(image_tag, tmp_path):
    (tmp_path / "echo.c").write_text(ECHO)
    tag = image_tag()
    bare = tag.removesuffix(":latest")  # as a user types it; its platforms: NAME:latest-arm64, NAME:latest-s390x
    made = invoke("image", "--tag", bare, "--platform", "linux/arm64,linux/s390x", "--src", "echo.c",
                  "--toolchain", "zig", cwd=tmp_path, timeout=1800)
    try:
        assert made.code == 0, made
        # the engine holds TAG-arm64 and TAG-s390x, no TAG (neither is this machine's platform); the program: /hello
        plain = invoke("run", "--tag", bare, cwd=tmp_path)
        assert_clean_failure(plain, 2)
        assert len(plain.err.strip().splitlines()) == 1, plain.err
        assert f"{tag}-arm64 (linux/arm64/v8)" in plain.err and f"{tag}-s390x (linux/s390x)" in plain.err
        assert "--platform" in plain.err
        got = run_piped("--tag", bare, "--platform", "linux/s390x", "--", "/hello", "big-endian", stdin=b"x")
        assert got.returncode == 0, got
        assert got.stdout.decode() == "arg 1: [big-endian]\nxstdin: 1 bytes\n"
        absent = invoke("run", "--tag", tag, "--platform", "riscv64", cwd=tmp_path)
        assert_clean_failure(absent, 2)
        assert "linux/riscv64" in absent.err and f"{tag}-s390x" in absent.err, absent.err
    finally:
        for image in (f"{tag}-arm64", f"{tag}-s390x"):
            subprocess.run(["docker", "rmi", "-f", image], capture_output=True)


# Says whether its output and error are a terminal, and the TERM it was given; exit 3 when not on one.
TTY = r"""#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(void) {
    const char *term = getenv("TERM");
    printf("out tty %d, TERM=%s\n", isatty(1), term ? term : "(none)");
    fprintf(stderr, "err tty %d\n", isatty(2));
    return isatty(1) ? 0 : 3;
}
"""


def test_tty_gives_the_program_a_terminal(image_tag, tmp_path):
    prog = gcc(tmp_path, TTY, "-static", "-O2", name="ttyer")
    tag = image_tag()
    assert invoke("image", "--tag", tag, "--binary", str(prog), cwd=tmp_path).code == 0
    plain = run_piped("--tag", tag, stdin=b"")
    assert plain.returncode == 3 and b"out tty 0, TERM=(none)" in plain.stdout, plain
    on_tty = run_piped("--tty", "--tag", tag, stdin=b"")
    # one stream, as a terminal shows it: the error's line comes on stdout, with the terminal's line endings
    assert on_tty.returncode == 0, on_tty
    assert b"out tty 1, TERM=xterm\r\n" in on_tty.stdout and b"err tty 1\r\n" in on_tty.stdout, on_tty
