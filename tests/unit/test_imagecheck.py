"""verify-image's checks without an engine: filesystems as `docker export` writes them, holding this machine's
own loader and libc and libraries built here with gcc, searched the way ld.so searches."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests import elfgen
from tests.conftest import gcc
from tests.elfgen import EM, Spec
from toolkit.check import image as imagecheck
from toolkit.check import ldso

MA = "usr/lib/x86_64-linux-gnu"
HOST_LOADER = Path(os.path.realpath("/lib64/ld-linux-x86-64.so.2"))
HOST_LIBC = Path(os.path.realpath("/lib/x86_64-linux-gnu/libc.so.6"))


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, bytes]:
    """A program and a library of our own, linked three ways: plain, with RUNPATH $ORIGIN/../lib, and static."""
    tmp = tmp_path_factory.mktemp("img")
    lib = gcc(tmp, 'const char *greet(void){ return "hi"; }\n', "-shared", "-fPIC", "-Wl,-soname,libgreet.so.1",
              name="libgreet.so.1")
    main = tmp / "main.c"
    main.write_text('#include <stdio.h>\nconst char *greet(void);\nint main(void){ puts(greet()); return 0; }\n')

    def link(name: str, *flags: str) -> Path:  # the library after the source, as the linker wants it
        subprocess.run(["gcc", str(main), "-o", str(tmp / name), str(lib), *flags], check=True, capture_output=True)
        return tmp / name

    plain = link("plain")
    origin = link("origin", "-Wl,-rpath,$ORIGIN/../lib", "-Wl,--enable-new-dtags")
    static = gcc(tmp, '#include <stdio.h>\nint main(void){ puts("hi"); return 0; }\n', "-static", name="static")
    return {"lib": lib.read_bytes(), "plain": plain.read_bytes(), "origin": origin.read_bytes(),
            "static": static.read_bytes(), "loader": HOST_LOADER.read_bytes(), "libc": HOST_LIBC.read_bytes()}


def debian_base(built: dict[str, bytes]) -> dict:
    """The usrmerge layout of Debian bookworm: /lib and /lib64 are symlinks, the loader is reached through two."""
    return {
        "lib": "usr/lib", "lib64": "usr/lib64", "bin": "usr/bin",
        "usr/lib64/ld-linux-x86-64.so.2": f"../lib/x86_64-linux-gnu/{HOST_LOADER.name}",
        f"{MA}/{HOST_LOADER.name}": built["loader"],
        f"{MA}/libc.so.6": built["libc"],
        "etc/ld.so.conf": b"include /etc/ld.so.conf.d/*.conf\n",
        "etc/ld.so.conf.d/x86_64-linux-gnu.conf": b"# Multiarch support\n/usr/local/lib/x86_64-linux-gnu\n"
                                                  b"/lib/x86_64-linux-gnu\n/usr/lib/x86_64-linux-gnu\n",
    }


def judge(files: dict, cmd=("/app",), arch="amd64", **config):
    fs = imagecheck.ImageFS.from_tar(elfgen.image_tar(files))
    attrs = {"Os": "linux", "Architecture": arch, "Config": {"Cmd": list(cmd) if cmd else None, **config}}
    return imagecheck.check(fs, attrs, "test:image")


def check(verdict, name):
    return next(c for c in verdict.checks if c.name == name)


def test_a_debian_layout_resolves_through_symlinks(built):
    files = {**debian_base(built), "app": built["plain"], "usr/lib/libgreet.so.1": built["lib"]}
    verdict = judge(files)
    assert verdict.ok, verdict.render()
    fs = imagecheck.ImageFS.from_tar(elfgen.image_tar(files))
    app = fs.facts("/app")
    found = {r.name: r.found for r in ldso.Loader(fs).resolve_all(app, "/app")}
    assert found == {"/lib64/ld-linux-x86-64.so.2": f"/{MA}/{HOST_LOADER.name}",
                     "libgreet.so.1": "/usr/lib/libgreet.so.1", "libc.so.6": f"/{MA}/libc.so.6"}


def test_a_missing_library_names_the_file_that_needs_it(built):
    files = {**debian_base(built), "app": built["plain"]}
    verdict = judge(files)
    assert not verdict.ok
    [problem] = verdict.problems
    assert (problem.path, problem.kind, problem.name) == ("/app", "library", "libgreet.so.1")
    assert f"/{MA.replace('usr/', '')}" in problem.searched and "/usr/lib" in problem.searched
    command = check(verdict, "command")
    assert not command.ok and "error while loading shared libraries" in command.detail


def test_a_missing_interpreter_says_no_such_file_or_directory(built):
    files = {k: v for k, v in debian_base(built).items() if "ld-linux" not in k}
    verdict = judge({**files, "app": built["static"], "usr/bin/tool": built["plain"],
                     "usr/lib/libgreet.so.1": built["lib"]})
    assert check(verdict, "command").ok  # the command itself is static
    # libc.so.6 itself names the loader twice: as its PT_INTERP and as a DT_NEEDED
    assert [(p.path, p.kind) for p in verdict.problems] == [
        ("/usr/bin/tool", "interpreter"), (f"/{MA}/libc.so.6", "interpreter"), (f"/{MA}/libc.so.6", "library")]
    assert {p.name for p in verdict.problems} == {"/lib64/ld-linux-x86-64.so.2", "ld-linux-x86-64.so.2"}
    assert "no such file or directory" in verdict.problems[0].detail


def test_runpath_origin_is_the_elfs_own_directory(built):
    base = {**debian_base(built), "opt/app/bin/app": built["origin"]}
    good = judge({**base, "opt/app/lib/libgreet.so.1": built["lib"]}, cmd=("/opt/app/bin/app",))
    assert good.ok, good.render()
    bad = judge({**base, "opt/other/libgreet.so.1": built["lib"]}, cmd=("/opt/app/bin/app",))
    assert not bad.ok
    assert bad.problems[0].searched[0] == "/opt/app/lib"


def test_ld_so_conf_includes_and_ld_library_path_are_searched(built):
    base = {**debian_base(built), "app": built["plain"], "opt/greet/lib/libgreet.so.1": built["lib"]}
    assert not judge(base).ok
    conf = judge({**base, "etc/ld.so.conf.d/greet.conf": b"/opt/greet/lib\n"})
    assert conf.ok, conf.render()
    env = judge(base, Env=["PATH=/bin", "LD_LIBRARY_PATH=/opt/greet/lib"])
    assert env.ok, env.render()


def test_a_library_for_another_architecture_is_skipped_like_ld_so_skips_it(built):
    arm_libc = elfgen.build(Spec(machine=EM["aarch64"], etype=3, entry=0, soname="libc.so.6"))
    base = {**debian_base(built), "app": built["plain"], "usr/lib/libgreet.so.1": built["lib"]}
    earlier = judge({**base, "usr/local/lib/x86_64-linux-gnu/libc.so.6": arm_libc})
    assert earlier.ok, earlier.render()
    only = {k: v for k, v in base.items() if not k.endswith("libc.so.6")}
    verdict = judge({**only, "usr/lib/libc.so.6": arm_libc})
    assert not verdict.ok
    assert "/usr/lib/libc.so.6 is there, but is not an ELF file for this architecture" in verdict.problems[0].detail


def test_an_interpreter_that_is_not_an_elf_file_is_not_a_loader(built):
    files = {"lib64/ld-linux-x86-64.so.2": b"#!/bin/sh\n", "app": built["plain"]}
    problem = next(p for p in judge(files).problems if p.kind == "interpreter")
    assert "/lib64/ld-linux-x86-64.so.2 is there, but is not an ELF file" in problem.detail


def test_musl_answers_its_own_names_and_reads_its_path_file():
    loader = elfgen.build(Spec(etype=3, entry=0x1000, dynamic=True, abi_tag=None))
    lib = elfgen.build(Spec(etype=3, entry=0, soname="libz.so.1", needed=("libc.musl-x86_64.so.1",),
                            abi_tag=None))
    app = elfgen.build(Spec(etype=3, entry=0x1040, interp="/lib/ld-musl-x86_64.so.1",
                            needed=("libz.so.1", "libc.musl-x86_64.so.1"), abi_tag=None))
    files = {"lib/ld-musl-x86_64.so.1": loader, "lib/libc.musl-x86_64.so.1": "ld-musl-x86_64.so.1",
             "usr/local/lib/libz.so.1": lib, "app": app}
    assert judge(files).ok, judge(files).render()
    restricted = judge({**files, "etc/ld-musl-x86_64.path": b"/lib\n/usr/lib\n"})
    assert [p.name for p in restricted.problems] == ["libz.so.1"]
    assert restricted.problems[0].searched == ("/lib", "/usr/lib")


@pytest.mark.parametrize("files, cmd, config, phrase", [
    ({}, ("/app",), {}, '"exec /app: no such file or directory"'),
    ({"app": (b"\x7fELF", 0o644)}, ("/app",), {}, "not executable (mode 644)"),
    ({"app/": b""}, ("/app",), {}, "not a regular file"),
    ({}, ("app",), {}, "executable file not found in $PATH"),
    ({"loop": "loop"}, ("/loop",), {}, "exec /loop: too many levels of symbolic links"),
    ({"run.sh": b"#!/bin/sh\necho hi\n"}, ("/run.sh",), {},
     "a script for /bin/sh -> /bin/sh is not in the image"),
    ({"run.sh": b"#!/bin/sh\r\necho hi\r\n", "bin/sh": "dash"}, ("/run.sh",), {}, "Windows line endings"),
    ({"data.txt": b"hello\n"}, ("/data.txt",), {}, "exec format error"),
    ({}, None, {}, "No command specified"),
])
def test_command_failures_say_what_docker_would_say(built, files, cmd, config, phrase):
    files = {k: (built["static"] if v == b"" and not k.endswith("/") else v) for k, v in files.items()}
    verdict = judge(files, cmd=cmd, **config)
    command = check(verdict, "command")
    assert not command.ok and phrase in command.detail, command.detail


def test_command_found_through_path_workdir_and_entrypoint(built):
    files = {"usr/local/bin/app": built["static"], "srv/tool": built["static"]}
    assert check(judge(files, cmd=("app",)), "command").ok
    assert check(judge(files, cmd=("./tool",), WorkingDir="/srv"), "command").ok
    verdict = judge(files, cmd=("--flag",), Entrypoint=["/srv/tool"])
    assert check(verdict, "command").ok and "/srv/tool" in check(verdict, "command").detail
    assert not check(judge(files, cmd=("app",), Env=["PATH=/srv"]), "command").ok


def test_script_command_runs_through_its_interpreter(built):
    files = {**debian_base(built), "usr/bin/dash": built["plain"], "usr/bin/sh": "dash",
             "usr/lib/libgreet.so.1": built["lib"], "entry.sh": b"#!/bin/sh\nexec true\n"}
    verdict = judge(files, cmd=("/entry.sh",))
    detail = check(verdict, "command").detail
    assert verdict.ok, verdict.render()
    assert "/entry.sh: a script for /bin/sh -> /bin/sh (-> /usr/bin/dash): ELF 64-bit LSB pie" in detail


def test_wrong_architecture_of_the_image_is_exec_format_error(built):
    verdict = judge({"app": built["static"]}, arch="arm64")
    command = check(verdict, "command")
    assert not command.ok and "exec format error" in command.detail and "linux/arm64/v8" in command.detail


def test_unknown_platform_fails_the_platform_check(built):
    verdict = judge({"app": built["static"]}, arch="sparc64")
    assert not check(verdict, "platform").ok and "not an architecture this toolkit knows" in verdict.render()


def test_paths_resolve_inside_the_root_only():
    fs = imagecheck.ImageFS.from_tar(elfgen.image_tar({
        "etc/passwd": b"root:x:0:0::/root:/bin/sh\n", "escape": "../../../../etc/passwd",
        "abs": "/etc/passwd", "a/b/": b"", "a/b/up": "../../etc", "hard/": b""}))
    assert fs.resolve("/escape") == "/etc/passwd"
    assert fs.resolve("/abs") == "/etc/passwd"
    assert fs.resolve("/a/b/up/passwd") == "/etc/passwd"
    assert fs.resolve("/a/./b/../b/up/passwd") == "/etc/passwd"
    assert fs.resolve("/etc/passwd/x") is None
    assert fs.resolve("/nope") is None


def test_hardlinked_elf_files_count_once(built, tmp_path):
    import tarfile

    buf = elfgen.image_tar({"bin/a": built["static"]})
    with tarfile.open(fileobj=buf, mode="a") as tar:
        info = tarfile.TarInfo("bin/b")
        info.type, info.linkname = tarfile.LNKTYPE, "bin/a"
        tar.addfile(info)
    buf.seek(0)
    fs = imagecheck.ImageFS.from_tar(buf)
    assert fs.facts("/bin/b") is fs.facts("/bin/a")
    assert [p for p, _ in fs.elf_files()] == ["/bin/a"]


def test_a_stream_that_is_not_a_tar_is_one_clear_error():
    import io

    from toolkit.errors import EngineError

    with pytest.raises(EngineError, match="not a readable tar"):
        imagecheck.ImageFS.from_tar(io.BytesIO(b"not a tar at all" * 100))


class _CountingFS(imagecheck.ImageFS):
    """An image whose configuration-file reads are counted."""

    reads: dict[str, int]

    def text(self, path: str) -> str | None:
        self.reads[path] = self.reads.get(path, 0) + 1
        assert self.reads[path] < 50, f"{path} read {self.reads[path]} times"
        return super().text(path)


def test_ld_so_conf_files_that_include_each_other_are_read_once(built):
    """Before: 8 files each including /etc/c/*.conf again were read along every path through the includes (8^8
    reads: verify-image ran for minutes and grew past 600 MB). ld.so reads each file once; so does the check."""
    files = {**debian_base(built), "app": built["plain"], "opt/greet/lib/libgreet.so.1": built["lib"],
             "etc/ld.so.conf": b"include /etc/c/*.conf\n"}
    files.update({f"etc/c/{i}.conf": b"include /etc/c/*.conf\n" + (b"/opt/greet/lib\n" if i == 7 else b"")
                  for i in range(8)})
    fs = _CountingFS.from_tar(elfgen.image_tar(files))
    fs.reads = {}
    attrs = {"Os": "linux", "Architecture": "amd64", "Config": {"Cmd": ["/app"]}}
    verdict = imagecheck.check(fs, attrs, "test:image")
    assert verdict.ok, verdict.render()
    assert fs.reads and max(fs.reads.values()) == 1, fs.reads


@pytest.mark.parametrize(("files", "phrase"), [
    ({"app": "/loop/app", "loop": "/loop"}, "/app is a loop of symbolic links in the image: the container would "
                                            "fail with \"exec /app: too many levels of symbolic links\""),
    ({"app": "b", "b": "a", "a": "app"}, "too many levels of symbolic links"),
    ({"f": b"x", "app": "/f/app"}, "exec /app: not a directory"),
])
def test_a_symlink_loop_is_too_many_levels_not_missing(built, files, phrase):
    """Before: a command, interpreter or library reached through a loop of symbolic links was "not in the image"."""
    verdict = judge(files)
    assert not verdict.ok
    assert phrase in check(verdict, "command").detail, check(verdict, "command").detail


def test_an_interpreter_behind_a_symlink_loop_says_so(built):
    files = {"app": built["plain"], "lib64": "lib64"}
    verdict = judge(files)
    assert not verdict.ok
    assert "interpreter /lib64/ld-linux-x86-64.so.2 is a loop of symbolic links" in verdict.render(), \
        verdict.render()


def test_layers_merge_as_overlayfs_does(built):
    """A later layer's whiteouts remove files and whole directories of the layers below; .wh..wh..opq hides a
    directory's lower contents; a file replaces a directory."""
    lower = elfgen.image_tar({"app": built["static"], "etc/gone": b"x", "opt/a/b": b"x", "data/old": b"x",
                              "swap/inside": b"x"})
    upper = elfgen.image_tar({"etc/.wh.gone": b"", ".wh.opt": b"", "data/.wh..wh..opq": b"", "data/new": b"y",
                              "swap": b"now a file"})
    fs = imagecheck.ImageFS.from_layers([lower, upper])
    files = sorted(p for p, n in fs.nodes.items() if n.kind == "file")
    assert files == ["/app", "/data/new", "/swap"]
    assert fs.listdir("/") == ["app", "data", "etc", "swap"] and fs.listdir("/etc") == []
    attrs = {"Os": "linux", "Architecture": "amd64", "Config": {"Cmd": ["/app"]}}
    assert imagecheck.check(fs, attrs, "test:layers").files == 3
