"""verify's NSS and iconv warnings held against what the program does: one C program that looks up hosts,
users, services and character sets, built with glibc (the host's gcc, with and without symbols) and with musl
(zig cc), verified, shipped in scratch images with and without --nonroot and --nsswitch, and run there with
`--add-host` and a DNS server of the test's own."""

from __future__ import annotations

import errno
import importlib.util
import ipaddress
import json
import os
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import IN_CI, invoke

pytestmark = pytest.mark.engine

PROGRAM = r"""
#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <iconv.h>
#include <netdb.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Each argument is one lookup, KIND=WHAT; each prints "KIND=WHAT: what it found". */
int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *what = strchr(argv[i], '=') + 1;
        printf("%s: ", argv[i]);
        if (!strncmp(argv[i], "host=", 5)) {
            struct addrinfo hints = {0}, *res;
            char addr[INET_ADDRSTRLEN] = "";
            hints.ai_family = AF_INET;
            int rc = getaddrinfo(what, NULL, &hints, &res);
            if (rc == 0) {
                inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, addr, sizeof addr);
                freeaddrinfo(res);
            }
            puts(rc ? gai_strerror(rc) : addr);
        } else if (!strncmp(argv[i], "uid=", 4)) {
            struct passwd *pw = getpwuid(atoi(what));
            puts(pw ? pw->pw_name : "not found");
        } else if (!strncmp(argv[i], "gid=", 4)) {
            struct group *gr = getgrgid(atoi(what));
            puts(gr ? gr->gr_name : "not found");
        } else if (!strncmp(argv[i], "service=", 8)) {
            struct servent *se = getservbyname(what, "tcp");
            if (se) printf("%d\n", ntohs(se->s_port)); else puts("not found");
        } else if (!strncmp(argv[i], "protocol=", 9)) {
            struct protoent *pe = getprotobyname(what);
            if (pe) printf("%d\n", pe->p_proto); else puts("not found");
        } else if (!strncmp(argv[i], "iconv=", 6)) {
            iconv_t cd = iconv_open(what, "UTF-8");
            if (cd == (iconv_t)-1) puts(strerror(errno)); else { puts("ok"); iconv_close(cd); }
        }
    }
    return 0;
}
"""
ADD_HOST = {"myhost": "10.1.2.3"}
DNS_NAME, DNS_ADDRESS = "dnsonly.test", "10.9.8.7"  # a name only the test's DNS server knows
BUILT_IN_CHARSETS = ("ASCII", "UTF-8", "UCS-2", "UCS-4", "WCHAR_T")  # what the iconv warning says converts
MODULE_CHARSETS = ("ISO-8859-1", "UTF-16", "EUC-JP")  # what it says fails
LOOKUPS = ["host=localhost", "host=myhost", "uid=0", "gid=0", "uid=65532", "service=http", "protocol=tcp",
           *(f"iconv={c}" for c in BUILT_IN_CHARSETS + MODULE_CHARSETS)]


def _need(condition: bool, why: str) -> None:
    """Skip outside CI when a precondition is missing; under CI=true that is a failure."""
    if not condition:
        if IN_CI:
            pytest.fail(why)
        pytest.skip(why)


def _build(out: Path, name: str, *flags: str) -> Path:
    result = invoke("build", "--src", "prog.c", "--out", name, *flags, cwd=out)
    assert result.code == 0, result
    return out / name


@pytest.fixture(scope="module")
def glibc(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("glibc")
    (out / "prog.c").write_text(PROGRAM)
    major_minor = tuple(int(n) for n in os.confstr("CS_GNU_LIBC_VERSION").split()[-1].split(".")[:2])
    _need(major_minor >= (2, 34), "the host's glibc is older than 2.34: these runs prove what 2.34+ does")
    return {"symbols": _build(out, "prog", "--toolchain", "native"),
            "stripped": _build(out, "prog-stripped", "--toolchain", "native", "--strip")}


@pytest.fixture(scope="module")
def musl(tmp_path_factory) -> Path:
    _need(importlib.util.find_spec("ziglang") is not None, "the zig toolchain needs ziglang: pip install -e '.[zig]'")
    out = tmp_path_factory.mktemp("musl")
    (out / "prog.c").write_text(PROGRAM)
    return _build(out, "prog", "--toolchain", "zig")


def _verify_warnings(binary: Path) -> list[str]:
    result = invoke("verify", str(binary))
    assert result.code == 0, result
    return [line.strip()[len("WARN  "):] for line in result.out.splitlines() if line.strip().startswith("WARN")]


def _image(tag: str, binary: Path, *options: str) -> list[str]:
    """Make the image; its run-time warnings."""
    made = invoke("image", "--tag", tag, "--binary", str(binary), *options)
    assert made.code == 0, made
    return [line.strip()[len("warning: "):] for line in made.out.splitlines() if line.strip().startswith("warning:")]


def _run(docker_client, tag: str, binary: Path, lookups: list[str], **kwargs) -> dict[str, str]:
    out = docker_client.containers.run(tag, [f"/{binary.name}", *lookups], remove=True, extra_hosts=ADD_HOST,
                                       **kwargs).decode()
    return dict(line.split(": ", 1) for line in out.splitlines())


def _one(warnings: list[str], start: str, about: str = "") -> str:
    """The one warning that starts so and speaks of about."""
    found = [w for w in warnings if w.startswith(start) and about in w]
    assert len(found) == 1, (start, about, warnings)
    return found[0]


@pytest.mark.parametrize("build", ["symbols", "stripped"])
def test_glibc_warnings_say_what_the_program_does_in_a_scratch_image(glibc, build, docker_client, image_tag,
                                                                      tmp_path):
    binary = glibc[build]
    warned = _verify_warnings(binary)
    named = build == "symbols"
    lead = "glibc static binary calls" if named else "glibc static binary carries NSS code (stripped"
    hosts = _one(warned, lead + (" getaddrinfo, getprotobyname, getservbyname:" if named else ""), "host lookups")
    assert "work in a scratch image" in hosts and "2.34 or later" in hosts and "--add-host" in hosts
    assert "need /etc/services and /etc/protocols, which a scratch image lacks" in hosts
    users = _one(warned, lead + (" getgrgid, getpwuid:" if named else ""), "/etc/passwd")
    assert "read /etc/passwd and /etc/group, which a scratch image has only with `invoke image --nonroot`" in users
    assert not any("will fail" in w for w in warned)
    if named:  # a stripped glibc binary does not show that it calls iconv_open
        iconv = _one(warned, "glibc static binary calls iconv_open:")
        assert all(c in iconv for c in BUILT_IN_CHARSETS + MODULE_CHARSETS)

    # a bare scratch image: the warning said it lacks /etc/passwd, /etc/group, /etc/services and /etc/protocols
    plain = image_tag()
    users = _one(_image(plain, binary), lead, "/etc/passwd")
    assert "/etc/group, which this image lacks: add them with `invoke image --nonroot`" in users
    seen = _run(docker_client, plain, binary, LOOKUPS)
    assert seen["host=localhost"] == "127.0.0.1" and seen["host=myhost"] == ADD_HOST["myhost"]
    assert seen["uid=0"] == seen["gid=0"] == "not found"
    assert seen["service=http"] == seen["protocol=tcp"] == "not found"
    assert all(seen[f"iconv={c}"] == "ok" for c in BUILT_IN_CHARSETS), seen
    assert all(seen[f"iconv={c}"] == os.strerror(errno.EINVAL) for c in MODULE_CHARSETS), seen

    # --nonroot writes /etc/passwd and /etc/group, and the warning knows; --add brings services and protocols
    (tmp_path / "services").write_text("http 80/tcp www\n")
    (tmp_path / "protocols").write_text("tcp 6 TCP\n")
    full = image_tag()
    warned = _image(full, binary, "--nonroot", "--add", f"{tmp_path / 'services'}:/etc/services",
                    "--add", f"{tmp_path / 'protocols'}:/etc/protocols")
    assert "/etc/group, which this image has" in _one(warned, lead, "/etc/passwd")
    assert "/etc/protocols, which this image has" in _one(warned, lead, "/etc/services")
    seen = _run(docker_client, full, binary, LOOKUPS)
    assert (seen["uid=0"], seen["gid=0"], seen["uid=65532"]) == ("root", "root", "nonroot")
    assert (seen["service=http"], seen["protocol=tcp"]) == ("80", "6")
    assert seen["host=myhost"] == ADD_HOST["myhost"]


def test_glibc_reads_nsswitch_conf_and_skips_services_it_lacks(glibc, docker_client, image_tag, tmp_path):
    binary = glibc["symbols"]
    lookups = ["host=localhost", "host=myhost", "uid=0"]

    written = image_tag()
    warned = _image(written, binary, "--nonroot", "--nsswitch")
    others = _one(warned, "glibc static binary calls", "other than files and dns")
    assert "so glibc skips them" in others and "--nsswitch" not in others  # the image has one now
    files = {f["path"]: f for f in _inspect(written)["files"]}
    conf = files["/etc/nsswitch.conf"]
    assert (conf["mode"], conf["uid"], conf["gid"]) == (0o644, 0, 0)
    expected = {"host=localhost": "127.0.0.1", "host=myhost": ADD_HOST["myhost"], "uid=0": "root"}
    assert _run(docker_client, written, binary, lookups) == expected
    built = image_tag()  # the engine's build from a Dockerfile gets the same file
    assert _image(built, binary, "--nonroot", "--nsswitch", "--backend", "dockerfile") == warned
    assert {f["path"]: f for f in _inspect(built)["files"]}["/etc/nsswitch.conf"] == conf
    assert _run(docker_client, built, binary, lookups) == expected

    # the file is read: without "files" on the hosts line, the names the engine writes are not found
    (tmp_path / "dns-only").write_text("hosts: dns\n")
    dns_only = image_tag()
    _image(dns_only, binary, "--nonroot", "--add", f"{tmp_path / 'dns-only'}:/etc/nsswitch.conf")
    seen = _run(docker_client, dns_only, binary, lookups)
    assert seen["host=myhost"] != ADD_HOST["myhost"] and seen["uid=0"] == "root"

    # services whose libnss_*.so the image lacks are skipped: alone they find nothing, before files they are passed
    (tmp_path / "modules").write_text("hosts: mdns4_minimal [NOTFOUND=return] files dns\npasswd: systemd\n")
    modules = image_tag()
    _image(modules, binary, "--nonroot", "--add", f"{tmp_path / 'modules'}:/etc/nsswitch.conf")
    seen = _run(docker_client, modules, binary, lookups)
    assert seen["host=myhost"] == ADD_HOST["myhost"] and seen["uid=0"] == "not found"


def _inspect(tag: str) -> dict:
    shown = invoke("inspect", "--tag", tag, "--json")
    assert shown.code == 0, shown
    return json.loads(shown.out)


def _dns_reply(query: bytes) -> bytes:
    """An answer to one DNS query: DNS_NAME's A record, no other record for it, NXDOMAIN for any other name."""
    qid = query[:2]
    end = query.index(b"\0", 12) + 5  # the question: labels, NUL, type, class
    labels, pos = [], 12
    while query[pos]:
        labels.append(query[pos + 1:pos + 1 + query[pos]].decode())
        pos += 1 + query[pos]
    qtype = struct.unpack(">H", query[pos + 1:pos + 3])[0]
    name = ".".join(labels).lower()
    flags = 0x8180 if name == DNS_NAME else 0x8183  # response, recursion desired and available; rcode 3
    answer = b""
    if name == DNS_NAME and qtype == 1:
        answer = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton(DNS_ADDRESS)
    return qid + struct.pack(">HHHHH", flags, 1, 1 if answer else 0, 0, 0) + query[12:end] + answer


@pytest.fixture
def dns_server(docker_client) -> Iterator[str]:
    """A DNS server on the default bridge's gateway, which containers reach; its address."""
    ipam = docker_client.networks.get("bridge").attrs["IPAM"]["Config"][0]
    # the default bridge's config may name only its subnet: the engine gives the bridge its first address
    gateway = ipam.get("Gateway") or str(next(ipaddress.ip_network(ipam["Subnet"]).hosts()))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((gateway, 53))  # resolv.conf names no port
    except OSError as exc:
        sock.close()
        _need(False, f"cannot serve DNS on {gateway}:53 ({exc.strerror}): run as root with the engine's bridge here")
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                query, peer = sock.recvfrom(512)
            except TimeoutError:
                continue
            sock.sendto(_dns_reply(query), peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield gateway
    finally:
        stop.set()
        thread.join()
        sock.close()


def test_glibc_and_musl_resolve_through_dns(glibc, musl, dns_server, docker_client, image_tag):
    for binary in (glibc["symbols"], musl):
        tag = image_tag()
        _image(tag, binary)
        seen = _run(docker_client, tag, binary, [f"host={DNS_NAME}", "host=myhost"], dns=[dns_server])
        assert seen == {f"host={DNS_NAME}": DNS_ADDRESS, "host=myhost": ADD_HOST["myhost"]}, (binary, seen)


def test_musl_gets_no_nss_or_iconv_warning_and_needs_none(musl, docker_client, image_tag):
    warned = _verify_warnings(musl)
    assert not any("NSS" in w or "iconv" in w or "glibc" in w for w in warned), warned
    plain, nonroot = image_tag(), image_tag()
    assert _image(plain, musl) == [] and _image(nonroot, musl, "--nonroot") == []
    seen = _run(docker_client, plain, musl, LOOKUPS)
    assert seen["host=localhost"] == "127.0.0.1" and seen["host=myhost"] == ADD_HOST["myhost"]
    assert all(seen[f"iconv={c}"] == "ok" for c in BUILT_IN_CHARSETS + MODULE_CHARSETS), seen
    assert seen["uid=0"] == "not found"  # musl reads /etc/passwd too: a bare scratch image has none
    assert _run(docker_client, nonroot, musl, ["uid=0", "uid=65532"]) == {"uid=0": "root", "uid=65532": "nonroot"}
