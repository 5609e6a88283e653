"""verify on real gcc output and on files that are not programs, in-process and through the CLI."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import elfgen
from tests.conftest import REPO, assert_clean_failure, invoke
from toolkit import targets
from toolkit.check import elf, verify


def test_static_binary_passes_every_check(binaries):
    verdict = verify.verify(elf.read(str(binaries["static"])), targets.lookup("amd64"))
    assert verdict.ok, verdict.render()
    assert [c.name for c in verdict.checks] == ["format", "integrity", "linux", "type", "static", "arch"]
    assert verdict.facts.interpreter is None and verdict.facts.needed == ()
    assert verdict.facts.libc == "glibc"


def test_static_pie_passes_as_static_pie(binaries):
    verdict = verify.verify(elf.read(str(binaries["static_pie"])))
    assert verdict.ok, verdict.render()
    assert verdict.facts.static_pie and verdict.facts.type == "ET_DYN"


def test_dynamic_binary_fails_and_names_its_interpreter(binaries):
    verdict = verify.verify(elf.read(str(binaries["dynamic"])))
    assert not verdict.ok
    static = next(c for c in verdict.checks if c.name == "static")
    assert not static.ok
    assert "/lib64/ld-linux-x86-64.so.2" in static.detail
    assert "no such file or directory" in static.detail
    assert "libc.so.6" in static.detail


def test_wrong_arch_says_exec_format_error(binaries):
    verdict = verify.verify(elf.read(str(binaries["static"])), targets.lookup("arm64"))
    arch = next(c for c in verdict.checks if c.name == "arch")
    assert not arch.ok and "exec format error" in arch.detail


@pytest.mark.parametrize("kind, phrase", [("object", "relocatable object"), ("shared", "library")])
def test_non_executables_fail_and_say_what_they_are(binaries, kind, phrase):
    verdict = verify.verify(elf.read(str(binaries[kind])))
    assert not verdict.ok
    assert phrase in next(c for c in verdict.checks if c.name == "type").detail


def test_cli_human_output_and_exit_codes(binaries, tmp_path):
    ok = invoke("verify", str(binaries["static"]))
    assert ok.code == 0, ok
    assert "PASS  static" in ok.out
    bad = invoke("verify", str(binaries["dynamic"]))
    assert_clean_failure(bad, 1)
    assert "FAIL  static" in bad.out and "/lib64/ld-linux-x86-64.so.2" in bad.out


@pytest.mark.parametrize("make, code, phrase", [
    (lambda p: p.write_text("#!/bin/sh\necho hi\n"), 1, "script for /bin/sh"),
    (lambda p: p.write_bytes(b""), 1, "empty file"),
    (lambda p: p.write_bytes(b"\xcf\xfa\xed\xfe" + b"\0" * 60), 1, "Docker Desktop"),
    (lambda p: p.write_bytes(b"MZ" + b"\0" * 100), 1, "Windows"),
    (lambda p: None, 2, "no such file"),
])
def test_cli_non_programs_fail_clearly_with_valid_json(tmp_path, make, code, phrase):
    path = tmp_path / "input"
    make(path)
    human = invoke("verify", str(path))
    assert_clean_failure(human, code)
    assert phrase in human.out + human.err
    as_json = invoke("verify", str(path), "--json")
    assert_clean_failure(as_json, code)
    doc = json.loads(as_json.out)
    assert doc["ok"] is False and doc["path"] == str(path)
    for key in ("format", "arch", "interpreter", "needed", "checks", "warnings"):
        assert key in doc
    assert phrase in json.dumps(doc)


def test_cli_json_for_a_passing_binary(binaries):
    result = invoke("verify", str(binaries["static"]), "--json", "--arch", "amd64")
    assert result.code == 0, result
    doc = json.loads(result.out)
    assert doc["ok"] is True and doc["arch"] == "amd64" and doc["interpreter"] is None
    assert {c["name"] for c in doc["checks"]} >= {"format", "static", "arch"}
    assert all(c["ok"] for c in doc["checks"])


def test_verify_never_imports_the_docker_sdk(binaries):
    code = ("import sys\nfrom toolkit.cli import program\n"
            f"program.run(['fromscratch', 'verify', {str(binaries['static'])!r}], exit=False)\n"
            "print('docker loaded' if 'docker' in sys.modules else 'docker not loaded')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.stdout.strip().endswith("docker not loaded"), proc.stdout + proc.stderr


HOST_GLIBC = tuple(int(n) for n in os.confstr("CS_GNU_LIBC_VERSION").split()[-1].split(".")[:2])
needs_glibc_234 = pytest.mark.skipif(HOST_GLIBC < (2, 34), reason="the host's glibc is older than 2.34")
NSS_SOURCE = ('#include <netdb.h>\n#include <pwd.h>\nint main(void){ struct addrinfo *r; '
              'return getaddrinfo("localhost", "80", 0, &r) + (getpwnam("root") == 0); }\n')
ICONV_SOURCE = '#include <iconv.h>\nint main(void){ return iconv_open("UTF-8", "LATIN1") == (iconv_t)-1; }\n'


@pytest.fixture(scope="module")
def glibc_programs(tmp_path_factory) -> dict[str, elf.ElfFacts]:
    """This host's static glibc programs that make NSS and iconv calls, read once."""
    from tests.conftest import gcc

    tmp = tmp_path_factory.mktemp("glibc")
    return {"nss": elf.read(str(gcc(tmp, NSS_SOURCE, "-static", name="nss"))),
            "nss_stripped": elf.read(str(gcc(tmp, NSS_SOURCE, "-static", "-s", name="nss_stripped"))),
            "iconv": elf.read(str(gcc(tmp, ICONV_SOURCE, "-static", name="iconv")))}


def _nss(verdict: verify.Verdict) -> list[str]:
    return [w for w in verdict.runtime if "iconv_open" not in w]


@needs_glibc_234
def test_glibc_nss_calls_are_told_what_works_in_a_scratch_image(glibc_programs):
    verdict = verify.verify(glibc_programs["nss"])
    assert verdict.ok and verdict.facts.nss_builtin
    hosts, users, others = _nss(verdict)
    assert hosts.startswith("glibc static binary calls getaddrinfo: host lookups work in a scratch image")
    assert "/etc/hosts" in hosts and "--add-host" in hosts and "/etc/services" in hosts
    assert users.startswith("glibc static binary calls getpwnam: user and group lookups read /etc/passwd")
    assert "only with `fromscratch image --nonroot`" in users
    assert "systemd" in others and "--nsswitch" in others
    assert not any("will fail" in w or "iconv" in w for w in verdict.warnings)
    assert verdict.warnings[:3] == verdict.runtime and any("not stripped" in w for w in verdict.warnings)
    assert verify.verify(glibc_programs["nss"]).to_dict()["nss_builtin"] is True


@needs_glibc_234
def test_a_stripped_glibc_nss_program_gets_the_same_claims_without_call_names(glibc_programs):
    verdict = verify.verify(glibc_programs["nss_stripped"])
    assert verdict.facts.nss_builtin and verdict.facts.runtime_loading == (elf.NSS_MACHINERY,)
    hosts, users, others = _nss(verdict)
    assert all(w.startswith("glibc static binary carries NSS code (stripped") for w in (hosts, users, others))
    assert "host lookups (getaddrinfo, gethostbyname...) work" in hosts and "/etc/passwd" in users


@needs_glibc_234
@pytest.mark.parametrize("files, phrase", [
    ({"/etc/passwd", "/etc/group"}, "/etc/group, which this image has"),
    (set(), "/etc/group, which this image lacks: add them with `fromscratch image --nonroot`"),
    ({"/etc/passwd"}, "/etc/group, and this image lacks /etc/group: add it with `fromscratch image --add`"),
])
def test_an_image_s_own_files_decide_the_passwd_wording(glibc_programs, files, phrase):
    _, users, others = _nss(verify.verify(glibc_programs["nss"], image_files=files))
    assert phrase in users
    assert "--nsswitch" in others  # none of these images has an /etc/nsswitch.conf
    _, _, others = _nss(verify.verify(glibc_programs["nss"], image_files={*files, "/etc/nsswitch.conf"}))
    assert "--nsswitch" not in others and "so glibc skips them" in others


def test_iconv_open_is_named_with_the_charsets_that_fail(glibc_programs):
    verdict = verify.verify(glibc_programs["iconv"])
    assert verdict.runtime == (
        "glibc static binary calls iconv_open: only the character sets built into glibc convert (ASCII, UTF-8, "
        "UCS-2, UCS-4, WCHAR_T); the others (ISO-8859-1, UTF-16, EUC-JP...) are gconv modules that a scratch "
        "image lacks, so iconv_open fails for them (EINVAL); build with musl (zig cc -target x86_64-linux-musl, "
        "musl-gcc), whose iconv has them built in",)


@pytest.mark.parametrize("symbols", [("main", "__libc_start_main", "getaddrinfo", "getpwnam"), None])
def test_older_glibc_keeps_the_warning_that_those_calls_fail(symbols):
    """glibc before 2.34 cannot be built here: its static binaries have the NSS machinery, not the services."""
    data = elfgen.build(elfgen.Spec(symbols=symbols, strings=("GLIBC_PRIVATE", "/etc/nsswitch.conf", "libnss_")))
    verdict = verify.verify(elf.read_stream(io.BytesIO(data), "old", len(data)))
    assert verdict.facts.libc == "glibc" and not verdict.facts.nss_builtin
    (warning,) = verdict.runtime
    assert "older than 2.34" in warning and "those calls will fail" in warning and "musl" in warning
    assert ("calls getaddrinfo, getpwnam:" in warning) == (symbols is not None)


def test_musl_programs_get_no_nss_or_iconv_warning():
    data = elfgen.build(elfgen.Spec(symbols=("main", "getaddrinfo", "getpwuid", "iconv_open"),
                                    strings=("No error information", "/etc/hosts", "/etc/ethers", "/etc/passwd")))
    verdict = verify.verify(elf.read_stream(io.BytesIO(data), "musl", len(data)))
    assert verdict.facts.libc == "musl" and verdict.facts.runtime_loading
    assert verdict.runtime == () and not any("NSS" in w or "iconv" in w for w in verdict.warnings)


@needs_glibc_234
def test_invoke_image_options_reach_the_warning(glibc_programs, tmp_path):
    from toolkit.errors import InputError
    from toolkit.image import scratch

    binary = Path(glibc_programs["nss"].path)
    opts = scratch.options(nonroot=True, nsswitch=True)
    entries = {e.path: e for e in scratch.contents(binary, opts)}
    conf = entries["etc/nsswitch.conf"]
    assert conf.mode == 0o644 and conf.data is not None
    assert conf.data.decode().splitlines() == ["passwd: files", "group: files", "hosts: files dns"]
    verdict = scratch.prepare(binary, opts).verdict
    _, users, others = _nss(verdict)
    assert "/etc/group, which this image has" in users and "--nsswitch" not in others
    (tmp_path / "nsswitch.conf").write_text("hosts: files\n")
    clash = scratch.options(nsswitch=True, add=[f"{tmp_path / 'nsswitch.conf'}:/etc/nsswitch.conf"])
    with pytest.raises(InputError, match="two files for /etc/nsswitch.conf"):
        scratch.contents(binary, clash)
    refused = invoke("image", "--tag", "clash", "--binary", str(binary), "--nsswitch", "--add",
                     f"{tmp_path / 'nsswitch.conf'}:/etc/nsswitch.conf", "--output", f"oci:{tmp_path / 'out'}")
    assert_clean_failure(refused, 2)
    assert "two files for /etc/nsswitch.conf" in refused.err and not (tmp_path / "out").exists()


def test_not_executable_is_a_warning_not_a_failure(binaries, tmp_path):
    import shutil

    copy = tmp_path / "app"
    shutil.copy(binaries["static"], copy)
    copy.chmod(0o644)
    verdict = verify.verify(elf.read(str(copy)))
    assert verdict.ok and any("not executable" in w for w in verdict.warnings)
    assert "not executable" in " ".join(verdict.to_dict()["warnings"])


def test_report_fields_are_all_in_the_json(binaries):
    doc = verify.verify(elf.read(str(binaries["static"]))).to_dict()
    for key in ("arch", "class", "endianness", "type", "entry", "interpreter", "needed", "static_pie",
                "stripped", "build_id", "min_kernel", "libc", "size", "warnings"):
        assert key in doc, key
    assert (doc["class"], doc["endianness"], doc["type"], doc["libc"]) == (64, "little", "ET_EXEC", "glibc")
    assert doc["size"] == binaries["static"].stat().st_size and doc["entry"] > 0


def _tree(tmp_path, binaries, *, with_dynamic: bool):
    import shutil

    root = tmp_path / "tree"
    (root / "bin").mkdir(parents=True)
    shutil.copy(binaries["static"], root / "bin" / "app")
    if with_dynamic:
        shutil.copy(binaries["dynamic"], root / "bin" / "dyn")
    (root / "bin" / "start.sh").write_text("#!/bin/sh\nexec /bin/app\n")
    (root / "README").write_text("hello\n")
    (root / "app-link").symlink_to("bin/app")
    return root


def test_cli_directory_lists_skips_and_summarises(binaries, tmp_path):
    root = _tree(tmp_path, binaries, with_dynamic=True)
    result = invoke("verify", str(root))
    assert_clean_failure(result, 1)
    lines = result.out.splitlines()
    assert lines[0] == f"{root}: 5 entries"
    assert any(line.startswith("  FAIL  bin/dyn: ") and "/lib64/ld-linux-x86-64.so.2" in line for line in lines)
    assert any(line.startswith("  PASS  bin/app: ELF 64-bit LSB executable, amd64") for line in lines)
    assert "  SKIP  bin/start.sh: a script for /bin/sh" in lines
    assert "  SKIP  app-link: a symbolic link to bin/app" in lines
    assert lines[-2] == "  2 ELF file(s): 1 passed, 1 failed; 3 skipped (not ELF)"
    assert lines[-1] == "  not ok: 1 file(s) failed"


def test_cli_directory_json_is_one_document_with_a_list(binaries, tmp_path):
    root = _tree(tmp_path, binaries, with_dynamic=False)
    result = invoke("verify", str(root), "--json", "--arch", "amd64")
    assert result.code == 0, result
    doc = json.loads(result.out)
    assert doc["ok"] is True and doc["path"] == str(root)
    assert doc["summary"] == {"entries": 4, "elf": 1, "passed": 1, "failed": 0, "skipped": 3, "unreadable": 0}
    by_path = {f["path"]: f for f in doc["files"]}
    assert by_path["bin/app"]["skipped"] is False and by_path["bin/app"]["arch"] == "amd64"
    assert by_path["README"] == {"path": "README", "format": "data", "ok": None, "skipped": True,
                                 "describe": "not an executable (no ELF header)"}
    bad_arch = invoke("verify", str(root), "--arch", "arm64")
    assert_clean_failure(bad_arch, 1)
    assert "exec format error" in bad_arch.out


def test_verify_and_runnable_share_every_check_but_static(binaries):
    facts = elf.read(str(binaries["dynamic"]))
    names = [c.name for c in verify.runnable(facts)]
    assert names == ["integrity", "linux", "type", "arch"] and all(c.ok for c in verify.runnable(facts))
    assert [c.name for c in verify.verify(facts).checks] == ["format", *names[:3], "static", "arch"]


def test_output_cut_short_by_the_reader_is_quiet(binaries, tmp_path):
    root = _tree(tmp_path, binaries, with_dynamic=True)
    for i in range(3000):  # about 150 KB of lines: more than a pipe holds, so the writer must meet the close
        (root / f"file{i:04}").write_text("x\n")
    proc = subprocess.Popen([sys.executable, "-m", "invoke", "--search-root", str(REPO), "verify", str(root)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline()
    proc.stdout.close()  # what `| head -1` does
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 141 and b"Traceback" not in err and b"internal error" not in err, err


def test_require_gives_the_facts_of_a_program_that_passes_and_refuses_the_rest_in_one_line(binaries):
    from toolkit.errors import BuildFailed, VerifyFailed

    amd64, arm64 = targets.lookup("amd64"), targets.lookup("arm64")
    assert verify.require(binaries["static"], amd64).interpreter is None
    assert verify.require(binaries["static"], None).arch == "amd64"
    with pytest.raises(VerifyFailed) as refused:
        verify.require(binaries["dynamic"], amd64)
    assert str(refused.value).startswith(f"{binaries['dynamic']} for linux/amd64, which fails verify: ")
    assert refused.value.reasons and all(r in str(refused.value) for r in refused.value.reasons)
    with pytest.raises(BuildFailed, match=r"^gcc built a binary for linux/arm64/v8, which fails verify: built for"):
        verify.require(binaries["static"], arm64, subject="gcc built a binary", error=BuildFailed)
