"""What a program reads at run time, found and added (issue 25): a static glibc program that prints its locale's
character set, and an ncurses program linked in the build container with Debian's static ncurses, each verified,
shipped in scratch images with and without the files, and run there; hostile --terminfo names refused whole."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests import debsrc, spdxcheck
from tests.conftest import assert_clean_failure, invoke

pytestmark = pytest.mark.engine

LOCALE = r"""
#include <langinfo.h>
#include <locale.h>
#include <stdio.h>
int main(void) { setlocale(LC_ALL, ""); puts(nl_langinfo(CODESET)); return 0; }
"""
TERMINFO = r"""
#include <curses.h>
#include <stdio.h>
#include <term.h>
int main(void) {
    int err = 0;
    if (setupterm(NULL, 1, &err) != OK) { printf("setupterm failed (%d)\n", err); return 1; }
    printf("setupterm ok: %d columns\n", tigetnum("cols"));
    return 0;
}
"""
TLS = r"""
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
int main(void) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx || SSL_CTX_set_default_verify_paths(ctx) != 1) { puts("no context"); return 1; }
    printf("%d certificates\n", sk_X509_OBJECT_num(X509_STORE_get0_objects(SSL_CTX_get_cert_store(ctx))));
    return 0;
}
"""
TERMINFO_DEFAULT = "dumb, linux, screen, screen-256color, tmux, tmux-256color, vt100, xterm, xterm-256color"


def _build(where: Path, source: str, name: str, *flags: str) -> Path:
    (where / f"{name}.c").write_text(source)
    result = invoke("build", "--src", f"{name}.c", "--out", name, *flags, cwd=where)
    assert result.code == 0, result
    return where / name


@pytest.fixture(scope="module")
def locale_prog(tmp_path_factory) -> Path:
    return _build(tmp_path_factory.mktemp("locale"), LOCALE, "charset", "--toolchain", "native")


@pytest.fixture(scope="module")
def ncurses_prog(tmp_path_factory, builder_base) -> Path:
    """Linked in the build container with Debian's static ncurses (libncurses-dev, found from <curses.h>)."""
    return _build(tmp_path_factory.mktemp("ncurses"), TERMINFO, "term", "--toolchain", "container",
                  "--builder-base", builder_base, "--ldflags", "-lncurses -ltinfo")


@pytest.fixture(scope="module")
def tls_prog(tmp_path_factory, builder_base) -> Path:
    """Linked in the build container with Debian's static OpenSSL (libssl-dev, found from <openssl/ssl.h>)."""
    return _build(tmp_path_factory.mktemp("tls"), TLS, "tls", "--toolchain", "container",
                  "--builder-base", builder_base, "--ldflags", "-lssl -lcrypto")


def _image(tag: str, binary: Path, *options: str) -> tuple[list[str], list[str]]:
    """Make the image: its `added ...` lines and its warnings."""
    made = invoke("image", "--tag", tag, "--binary", str(binary), *options)
    assert made.code == 0, made
    lines = [line.strip() for line in made.out.splitlines()]
    return ([line for line in lines if line.startswith("added ")],
            [line[len("warning: "):] for line in lines if line.startswith("warning: ")])


def _run(docker_client, tag: str, **kwargs) -> tuple[int, str]:
    container = docker_client.containers.create(tag, **kwargs)
    try:
        container.start()
        code = container.wait(timeout=120)["StatusCode"]
        return code, container.logs().decode().strip()
    finally:
        container.remove(force=True)


def test_the_locale_is_added_and_nl_langinfo_says_utf8(locale_prog, docker_client, image_tag):
    warned = invoke("verify", str(locale_prog))
    assert "calls nl_langinfo" in warned.out and "ANSI_X3.4-1968" in warned.out and "--locale C.UTF-8" in warned.out

    found = image_tag()
    added, warnings = _image(found, locale_prog)
    assert added == [f"added locale (C.UTF-8) to the image: {locale_prog} calls nl_langinfo, which asks the "
                     "locale's character set (setlocale reads locale files)"]
    assert not [w for w in warnings if "nl_langinfo" in w]
    assert _run(docker_client, found) == (0, "UTF-8")
    config = docker_client.images.get(found).attrs["Config"]
    assert "LANG=C.UTF-8" in config["Env"]

    bare = image_tag()
    added, warnings = _image(bare, locale_prog, "--no-runtime-files")
    assert added == [] and any("this image has none" in w and "nl_langinfo" in w for w in warnings)
    assert _run(docker_client, bare) == (0, "ANSI_X3.4-1968")

    # asked for, with the user's own LANG kept: the files alone
    asked = image_tag()
    added, _ = _image(asked, locale_prog, "--no-runtime-files", "--locale", "C.UTF-8", "--env", "LC_ALL=C.UTF-8")
    assert added == ["added locale (C.UTF-8) to the image: asked for (--locale)"]
    env = docker_client.images.get(asked).attrs["Config"]["Env"]
    assert "LC_ALL=C.UTF-8" in env and not any(e.startswith("LANG=") for e in env)
    assert _run(docker_client, asked) == (0, "UTF-8")


def test_musl_needs_no_locale_files(tmp_path, docker_client, image_tag):
    """musl's setlocale(LC_ALL, "") is C.UTF-8 with no file and no variable: nothing is added or warned about."""
    import importlib.util

    from tests.conftest import IN_CI

    if importlib.util.find_spec("ziglang") is None:
        if IN_CI:
            pytest.fail("the zig toolchain needs ziglang")
        pytest.skip("the zig toolchain needs ziglang: pip install -e '.[zig]'")
    binary = _build(tmp_path, LOCALE, "charset", "--toolchain", "zig")
    tag = image_tag()
    added, warnings = _image(tag, binary)
    assert added == [] and not [w for w in warnings if "nl_langinfo" in w]
    assert _run(docker_client, tag) == (0, "UTF-8")


def test_the_locale_of_a_big_endian_target_is_its_own(tmp_path, builder_base, docker_client, image_tag):
    """glibc's C.utf8 files are the same bytes on amd64, arm64 and i386 but not on s390x: the image gets the
    target's libc-bin, and its setlocale takes it (a little-endian copy would leave it in the C locale)."""
    binary = _build(tmp_path, LOCALE, "charset", "--arch", "s390x", "--toolchain", "container",
                    "--builder-base", builder_base)
    tag = image_tag()
    added, _ = _image(tag, binary)
    assert added and added[0].startswith("added locale (C.UTF-8)")
    assert _run(docker_client, tag, platform="linux/s390x") == (0, "UTF-8")


def test_a_tls_program_gets_the_ca_bundle_where_its_openssl_reads_it(tls_prog, docker_client, image_tag):
    found = image_tag()
    added, warnings = _image(found, tls_prog)
    (line,) = [a for a in added if a.startswith("added ca-certificates (")]
    assert line.endswith(f"to the image: {tls_prog} carries a TLS library that reads CA certificates "
                         "(/etc/ssl/certs) to verify servers")
    count = int(line.split("(", 1)[1].split()[0])
    assert count > 100 and not [w for w in warnings if "CA certificates" in w]
    assert _run(docker_client, found) == (0, f"{count} certificates")  # Debian's OpenSSL reads /usr/lib/ssl/cert.pem

    bare = image_tag()
    added, warnings = _image(bare, tls_prog, "--no-runtime-files=ca-certificates")
    assert not [a for a in added if "ca-certificates" in a]
    assert any("every server's certificate fails to verify" in w for w in warnings)
    assert _run(docker_client, bare) == (0, "0 certificates")


def test_terminfo_is_added_and_setupterm_succeeds(ncurses_prog, docker_client, image_tag, tmp_path):
    warned = invoke("verify", str(ncurses_prog))
    assert "links ncurses, which reads terminfo at run time" in warned.out and "--terminfo" in warned.out

    found = image_tag()
    added, warnings = _image(found, ncurses_prog)
    assert f"added terminfo ({TERMINFO_DEFAULT}) to the image: {ncurses_prog} links ncurses, which reads " \
           "terminfo at run time" in added
    assert not [w for w in warnings if "terminfo" in w]
    for term in ("xterm", "tmux-256color", "screen"):
        code, out = _run(docker_client, found, environment={"TERM": term})
        assert (code, out.split(":")[0]) == (0, "setupterm ok"), (term, out)
    assert _run(docker_client, found, environment={"TERM": "xterm"})[1] == "setupterm ok: 80 columns"

    bare = image_tag()
    added, warnings = _image(bare, ncurses_prog, "--no-runtime-files")
    assert added == [] and any("this image has none, so setupterm fails" in w for w in warnings)
    # -1: no terminfo database at all (0 would be one without the entry)
    assert _run(docker_client, bare, environment={"TERM": "xterm"}) == (1, "setupterm failed (-1)")

    # named entries only, one of them from ncurses-term; the SBOM names both packages, with their versions
    named = image_tag()
    out = tmp_path / "named.tar"
    made = invoke("image", "--tag", named, "--binary", str(ncurses_prog), "--no-runtime-files",
                  "--terminfo=xterm,putty", "--output", f"oci-archive:{out}")
    assert made.code == 0, made
    assert "added terminfo (xterm, putty) to the image: asked for (--terminfo)" in made.out
    files, sbom = _archive_files_and_sbom(out)
    spdxcheck.check(json.dumps(sbom).encode())  # valid SPDX 2.3, with NTIA's minimum elements
    assert {"usr/share/terminfo/x/xterm", "usr/share/terminfo/p/putty"} <= files
    assert not [f for f in files if f.startswith("usr/share/terminfo/s/")]
    packages = {p["name"]: p for p in sbom["packages"]}
    for name in ("ncurses-base", "ncurses-term"):
        assert packages[name]["versionInfo"], packages[name]
        assert any(r["referenceLocator"].startswith(f"pkg:deb/debian/{name}@")
                   for r in packages[name]["externalRefs"])

    # the same inputs, the same image
    again = tmp_path / "again.tar"
    assert invoke("image", "--tag", named, "--binary", str(ncurses_prog), "--no-runtime-files",
                  "--terminfo=xterm,putty", "--output", f"oci-archive:{again}").code == 0
    assert out.read_bytes() == again.read_bytes()


def _archive_files_and_sbom(archive: Path) -> tuple[set[str], dict]:
    """The layer's paths and the SBOM of a one-platform oci-archive."""
    import tarfile

    with tarfile.open(archive) as tar:
        blobs = {m.name.rsplit("/", 1)[-1]: m for m in tar.getmembers() if m.name.startswith("blobs/")}

        def blob(digest: str) -> bytes:
            member = tar.extractfile(blobs[digest.split(":", 1)[1]])
            assert member is not None
            return member.read()

        index = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
        manifests = [json.loads(blob(d["digest"])) for d in index["manifests"]]
        image = next(m for m in manifests if m.get("config", {}).get("mediaType", "").endswith("config.v1+json"))
        artifact = next(m for m in manifests if m.get("subject"))
        import io

        with tarfile.open(fileobj=io.BytesIO(blob(image["layers"][0]["digest"]))) as layer:
            names = {m.name for m in layer.getmembers()}
        return names, json.loads(blob(artifact["layers"][0]["digest"]))


@pytest.mark.parametrize("name", ['xterm"', "$(touch /tmp/pwned)", "xterm\nvt100", "-x", "../../etc/passwd",
                                  "x/../../y", "nosuchterminal"])
def test_hostile_terminfo_names_are_one_line_and_leave_nothing(locale_prog, name, docker_client, image_tag,
                                                               tmp_path):
    tag = image_tag()
    before = {c.id for c in docker_client.containers.list(all=True)}
    out = tmp_path / "image.tar"
    result = invoke("image", "--tag", tag, "--binary", str(locale_prog), f"--terminfo={name}")
    assert_clean_failure(result, 2)
    # one line says it; on a cold cache the packages' fetching is said before it
    lines = [line for line in result.err.splitlines() if line.strip() and not line.startswith("fetching Debian's")]
    assert len(lines) == 1 and lines[0].startswith("error: --terminfo"), result.err
    written = invoke("image", "--tag", tag, "--binary", str(locale_prog), f"--terminfo={name}",
                     "--output", f"oci-archive:{out}")
    assert_clean_failure(written, 2)
    assert not out.exists() and list(tmp_path.iterdir()) == []
    assert not docker_client.images.list(name=tag.split(":")[0])
    # no container of the image was left (the engine is shared: others' containers come and go)
    assert not [c for c in docker_client.containers.list(all=True) if c.id not in before
                and c.attrs.get("Config", {}).get("Image", "").startswith(tag.split(":")[0])]
    assert not Path("/tmp/pwned").exists()


def test_tmux_from_debian_starts_in_its_scratch_image(tmp_path, builder_base, docker_client, image_tag):
    """Debian's tmux, built with what its configure.ac declares (libevent, ncurses...), gets terminfo and C.UTF-8
    and starts a server and a session; without them it says what FIELD-NOTES saw."""
    tree = tmp_path / "tmux"
    shutil.copytree(debsrc.fetch("tmux"), tree, symlinks=True)
    built = invoke("build", "--project", str(tree), "--out", str(tmp_path / "dist"), "--toolchain", "container",
                   "--builder-base", builder_base, cwd=tmp_path, timeout=3600)
    assert built.code == 0, built
    tmux = tmp_path / "dist" / "tmux"
    session = ["/tmux", "-S", "/tmp/s", "-f", "/dev/null", "new-session", "-d", "-s", "main", "/tmux", "-V", ";",
               "list-sessions", "-F", "#{session_name} #{session_windows}"]

    tag = image_tag()
    added, _ = _image(tag, tmux, "--tmp")
    assert [a.split(" (")[0] for a in added] == ["added terminfo", "added locale"]
    assert _run(docker_client, tag, command=["/tmux", "-V"])[0] == 0
    assert _run(docker_client, tag, command=session, environment={"TERM": "xterm"}) == (0, "main 1")

    bare = image_tag()
    _image(bare, tmux, "--tmp", "--no-runtime-files")
    code, out = _run(docker_client, bare, command=session, environment={"TERM": "xterm"})
    assert (code, out) == (1, "tmux: need UTF-8 locale (LC_CTYPE) but have ANSI_X3.4-1968")
