"""verify on real gcc output and on files that are not programs, in-process and through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO, assert_clean_failure, invoke
from toolkit.check import elf, verify


def test_static_binary_passes_every_check(binaries):
    verdict = verify.verify(elf.read(str(binaries["static"])), "amd64")
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
    verdict = verify.verify(elf.read(str(binaries["static"])), "arm64")
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


def test_glibc_nss_user_passes_with_a_warning_naming_the_call(tmp_path):
    from tests.conftest import gcc

    src = '#include <pwd.h>\nint main(void){ return getpwnam("root") == 0; }\n'
    verdict = verify.verify(elf.read(str(gcc(tmp_path, src, "-static", name="pw"))))
    assert verdict.ok
    nss = [w for w in verdict.warnings if "getpwnam" in w]
    assert nss and "musl" in nss[0] and "scratch image does not have" in nss[0]
    assert any("not stripped" in w for w in verdict.warnings)


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
