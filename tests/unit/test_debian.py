"""build --debian without the network or an engine: what --debian accepts (Debian's grammar, hostile values
refused), the build-dep layer's Dockerfile, the source package as an SBOM names it, and which programs are
delivered (by name, from a Contents index)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from toolkit import targets
from toolkit.compile import buildimage
from toolkit.debian import build, source
from toolkit.errors import BuildFailed, InputError

HOSTILE = ["pv'", 'pv"', "pv;id", "$(id)", "`id`", "pv\nRUN id", "-o", "--help", "-pv", "PV", "p", "pv/../x",
           "pv=$(id)", "pv=1;id", "pv=1 2", "pv=-1", "pv=1\n", "pv=", "pv=a1", "pv=1:", "pv==1", " pv", "pv\x00",
           "pv=1.0-", "x" * 200]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_values_are_refused_in_one_line(text: str) -> None:
    with pytest.raises(InputError) as caught:
        source.parse(text)
    assert "\n" not in str(caught.value).replace(repr(text), "")
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(("text", "name", "version"), [
    ("pv", "pv", None), ("lua5.4", "lua5.4", None), ("libc++", "libc++", None), ("pv=1.6.20-1", "pv", "1.6.20-1"),
    ("xz-utils=5.4.1-0.2", "xz-utils", "5.4.1-0.2"), ("vim=2:9.0.1378-2", "vim", "2:9.0.1378-2"),
    ("gcc-12=12.2.0-14+deb12u1", "gcc-12", "12.2.0-14+deb12u1"), ("xx=1.0~rc1", "xx", "1.0~rc1"),
])
def test_names_and_versions_debian_has(text: str, name: str, version: str | None) -> None:
    assert source.parse(text) == source.Request(name, version)
    assert source.parse(text).spec == text


@pytest.mark.parametrize("spec", ["pv", "pv=1;id", "pv=$(id)", "$(id)=1"])
def test_a_build_dep_layer_takes_no_unchecked_word(spec: str) -> None:
    with pytest.raises(InputError):
        buildimage.BuildImage("fromscratch/builder:abc", (), build_dep=spec)
    with pytest.raises(ValueError):
        buildimage.BuildImage("fromscratch/builder:abc", (), build_dep="pv=1", build_arch="arm64;id")


def test_build_dep_layers_native_and_cross() -> None:
    amd64, arm64 = targets.lookup("amd64"), targets.lookup("arm64")
    # the layer below the last (a project's image ends with ccache, compile/kept.py)
    native = buildimage.chain("b:1", amd64, "amd64", project=True, base_id="x", build_dep="pv=1.6.20-1")[:-1]
    cross = buildimage.chain("b:1", arm64, "amd64", project=True, base_id="x", build_dep="pv=1.6.20-1")[:-1]
    assert "build-dep -y --no-install-recommends --arch-only pv=1.6.20-1" in native[-1].dockerfile
    assert "deb-src" in native[-1].dockerfile
    assert "dpkg --add-architecture arm64" in cross[-1].dockerfile
    assert "--arch-only -a arm64 pv=1.6.20-1" in cross[-1].dockerfile
    # a layer per package, version and target, over the same layers below
    other = buildimage.chain("b:1", amd64, "amd64", project=True, base_id="x", build_dep="pv=1.6.20-2")[:-1]
    assert native[:-1] == other[:-1] and native[-1].tag != other[-1].tag
    plain = buildimage.chain("b:1", amd64, "amd64", project=True, base_id="x")[:-1]
    assert plain == native[:-1]


def test_the_sbom_names_the_source_package() -> None:
    src = source.Source("vim", "2:9.0.1378-2", Path("/x"), ("vim",))
    assert src.purl == "pkg:deb/debian/vim@2%3A9.0.1378-2?arch=source"
    package = src.sbom_package().to_json()
    assert package["name"] == "vim" and package["versionInfo"] == "2:9.0.1378-2"
    assert package["primaryPackagePurpose"] == "SOURCE"
    assert src.said() == ""
    assert "without Debian's patches" in source.Source("x", "1", Path("/x"), (), unpatched="404").said()


def test_mirror_and_suite_are_checked() -> None:
    line, suite = source.sources_lines("http://deb.example/debian", "trixie")
    assert line.endswith("http://deb.example/debian trixie main") and suite == "trixie"
    with pytest.raises(InputError):
        source.sources_lines("http://x/debian trixie main\ndeb-src http://evil/", None)
    with pytest.raises(InputError):
        source.sources_lines(None, "bookworm main\ndeb-src http://evil/ x")


@pytest.fixture
def index(tmp_path: Path) -> Path:
    # as rootfs/contents.py keeps an index: PATH<tab>PACKAGES
    path = tmp_path / "index.txt"
    path.write_text("usr/bin/chkfont\tgames/figlet\nusr/bin/figlet-figlet\tgames/figlet\n"
                    "usr/bin/figlist\tgames/figlet\nusr/games/sl\tgames/sl\nusr/bin/ls\tutils/coreutils\n"
                    "usr/bin/sub/deeper\tgames/figlet\n")
    return path


def _made(tmp_path: Path, *names: str) -> list[Path]:
    (tmp_path / "out").mkdir(exist_ok=True)
    return [tmp_path / "out" / n for n in names]


def test_programs_are_the_packages_own(index: Path, tmp_path: Path) -> None:
    said: list[str] = []
    figlet = source.Source("figlet", "2.2.5-3", tmp_path, ("figlet",))
    pick = build.Picker(figlet, lambda arch: index, None, said.append)
    amd64 = targets.lookup("amd64")
    made = _made(tmp_path, "chkfont", "figlet", "helper")
    # figlet: the binary package's own name (Debian ships it as figlet-figlet, an alternative)
    assert [p.name for p in pick(amd64, made)] == ["chkfont", "figlet"]
    assert said == ["left out for linux/amd64, not a program figlet's packages ship: helper"]
    assert pick.shipped(amd64) == {"chkfont": "figlet", "figlet-figlet": "figlet", "figlist": "figlet"}
    sl = build.Picker(source.Source("sl", "5.02-1", tmp_path, ("sl",)), lambda arch: index, None, said.append)
    assert [p.name for p in sl(amd64, _made(tmp_path, "sl"))] == ["sl"]
    # screen installs screen-4.9.0 (and the link screen): the program under its versioned name is the package's
    screen = build.Picker(source.Source("screen", "4.9.0-4", tmp_path, ("screen",)), lambda arch: None, None,
                          said.append)
    screen.shipped = lambda target: {"screen": "screen"}  # type: ignore[method-assign]
    assert [p.name for p in screen(amd64, _made(tmp_path, "screen-4.9.0", "screenrc-1"))] == ["screen-4.9.0"]


def test_program_flag(index: Path, tmp_path: Path) -> None:
    figlet = source.Source("figlet", "2.2.5-3", tmp_path, ("figlet",))
    amd64 = targets.lookup("amd64")
    one = build.Picker(figlet, lambda arch: index, "chkfont", print)
    one.check(amd64)
    assert [p.name for p in one(amd64, _made(tmp_path, "chkfont", "figlet"))] == ["chkfont"]
    with pytest.raises(InputError, match="ships no program ls"):
        build.Picker(figlet, lambda arch: index, "ls", print).check(amd64)
    with pytest.raises(BuildFailed, match="made no figlist"):
        build.Picker(figlet, lambda arch: index, "figlist", print)(amd64, _made(tmp_path, "chkfont"))


def test_none_of_the_packages_programs_made(index: Path, tmp_path: Path) -> None:
    pick = build.Picker(source.Source("figlet", "1", tmp_path, ("figlet",)), lambda arch: index, None, print)
    with pytest.raises(BuildFailed, match="made none of the programs"):
        pick(targets.lookup("amd64"), _made(tmp_path, "other"))


def test_without_an_index_every_program_is_delivered(tmp_path: Path) -> None:
    said: list[str] = []
    pick = build.Picker(source.Source("x", "1", tmp_path, ("x",)), lambda arch: None, None, said.append)
    assert len(pick(targets.lookup("arm64"), _made(tmp_path, "a", "b"))) == 2
    assert said and "cannot be had" in said[0]


def test_a_program_that_came_out_dynamic_does_not_fail_its_siblings(binaries, caplog) -> None:
    from toolkit.compile import pipeline

    host = targets.lookup(os.uname().machine)
    kept, facts = pipeline._verified_alone([binaries["static"], binaries["dynamic"]], host)
    assert kept == [binaries["static"]] and set(facts) == {"static"}
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(said) == 1 and said[0].startswith("left out dynamic: came out dynamic (")
    assert "\n" not in said[0]
    with pytest.raises(BuildFailed, match="no program of the build .* is static: dynamic: came out dynamic"):
        pipeline._verified_alone([binaries["dynamic"]], host)


@pytest.mark.parametrize(("args", "said"), [
    (["build", "--program", "pv"], "--program: only a --debian build takes them"),
    (["build", "--debian", "pv", "--project", "."], "--src, --project and --debian each say what to build"),
    (["build", "--debian", "pv", "--toolchain", "zig"], "--debian with the zig toolchain"),
    (["build", "--debian", "pv", "--save"], "a --debian build has none to write"),
    (["build", "--debian", "pv;id"], "is not a Debian source package name"),
    (["build", "--debian", "pv", "--suite", "x y"], "is not a suite name"),
    (["image", "--tag", "x", "--program", "pv"], "--program: only with --debian"),
    (["image", "--tag", "x", "--debian", "pv", "--arch", "amd64", "--platform", "linux/arm64"],
     "--arch and --platform with --debian"),
])
def test_flags_that_cannot_go_together_are_one_line(tmp_path: Path, args: list[str], said: str) -> None:
    from tests.conftest import assert_clean_failure, invoke

    done = invoke(*args, cwd=tmp_path, env={"XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert_clean_failure(done, 2)
    errors = [line for line in done.err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and said in errors[0], done.err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def _package_tree(tmp_path: Path, control: str, files: dict[str, str] | None = None) -> Path:
    tree = tmp_path / "src"
    (tree / "debian" / "patches").mkdir(parents=True)
    (tree / "debian" / "control").write_text(f"Source: x\n{control}\n\nPackage: x\nDepends: debhelper-compat (= 13)\n")
    for name, text in (files or {}).items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text(text)
    return tree


@pytest.mark.parametrize(("control", "files", "runs"), [
    ("Build-Depends: debhelper-compat (= 11), flex", {}, True),  # bc: dh_autoreconf runs from compat 10
    ("Build-Depends: debhelper-compat (= 9)", {}, False),
    ("Build-Depends: debhelper (>= 9), dh-autoreconf", {}, True),
    ("Build-Depends: debhelper (>= 10)", {"debian/compat": "10\n"}, True),
    ("Build-Depends: debhelper (>= 9)", {"debian/compat": "9\n"}, False),
    ("Build-Depends: debhelper-compat (= 13)", {"debian/rules": "%:\n\tdh $@ --without autoreconf\n"}, False),
    ("Build-Depends: debhelper-compat (= 9)",  # a patch that touches Makefile.am: autoreconf, whatever the level
     {"debian/patches/series": "# comment\nfix.patch\n",
      "debian/patches/fix.patch": "--- a/Makefile.am\n+++ b/Makefile.am\n@@ -1 +1 @@\n-x\n+y\n"}, True),
    ("Build-Depends: debhelper-compat (= 9)",
     {"debian/patches/series": "../../escape.patch\n", "escape.patch": "+++ b/configure.ac \n"}, False),
])
def test_autoreconf_runs_where_debian_runs_it(tmp_path: Path, control: str, files: dict[str, str],
                                              runs: bool) -> None:
    assert build.reconfigures(_package_tree(tmp_path, control, files)) is runs


def test_an_upstream_tree_without_debian_is_not_reconfigured(tmp_path: Path) -> None:
    assert build.reconfigures(tmp_path) is False


@pytest.mark.parametrize(("present", "ran"), [
    (["configure.ac", "configure"], "autoreconf -fi"),  # even with a configure: its Makefile.am was patched
    (["configure"], ""),  # pv: a configure without its autoconf input is used as it is
    (["autogen.sh"], "autogen"),
])
def test_the_reconf_step_regenerates_only_from_an_autoconf_input(tmp_path: Path, present: list[str],
                                                                 ran: str) -> None:
    from toolkit.compile import plan

    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "autoreconf").write_text('#!/bin/sh\necho "autoreconf $*" >> ran\n')
    (tools / "autoreconf").chmod(0o755)
    project = tmp_path / "p"
    project.mkdir()
    for name in present:
        (project / name).write_text('echo autogen >> ran\n' if name == "autogen.sh" else "")
    first = plan.steps(plan.Plan(project, system="autotools", reconf=True), False, "x86_64-linux-gnu")[0]
    subprocess.run(["sh", "-c", first], cwd=project, check=True, env={"PATH": f"{tools}:/usr/bin:/bin"})
    assert ((project / "ran").read_text().strip() if (project / "ran").exists() else "") == ran


@pytest.mark.parametrize(("present", "rules", "system"), [
    (["configure", "configure.ac", "CMakeLists.txt"], "", "autotools"),  # xz-utils: ninja's "multiple rules"
    (["configure.ac", "meson.build"], "", "autotools"),
    (["Makefile", "CMakeLists.txt"], "", "make"),
    (["Makefile", "CMakeLists.txt"], "%:\n\tdh $@ --buildsystem=cmake+ninja\n", "cmake"),
    (["configure", "meson.build"], "%:\n\tdh $@ -S meson\n", "meson"),
    (["CMakeLists.txt"], "", "cmake"),
    (["README"], "", None),
])
def test_a_debian_package_builds_with_the_system_debhelper_picks(tmp_path: Path, present: list[str], rules: str,
                                                                 system: str | None) -> None:
    from toolkit.compile import plan

    tree = _package_tree(tmp_path, "Build-Depends: debhelper-compat (= 13)", {"debian/rules": rules})
    for name in present:
        (tree / name).write_text("")
    assert build.debhelper_system(tree) == (system, "")
    if "CMakeLists.txt" in present:  # a project of the user's keeps CMake first
        assert plan.detect(tree) == "cmake"


@pytest.mark.parametrize(("rules", "found"), [
    ("override_dh_auto_configure:\n\tdh_auto_configure --buildsystem=cmake \\\n\t\t--sourcedir=$(CURDIR)/build/cmake\n",
     ("cmake", "build/cmake")),  # zstd
    ("%:\n\tdh $@ -D build/cmake\n", ("cmake", "build/cmake")),
    ("%:\n\tdh $@ --sourcedirectory=../../etc\n", ("make", "")),
    ("%:\n\tdh $@ --sourcedirectory=nosuchdir\n", ("make", "")),
    ("override_dh_auto_configure:\n\tdh_auto_configure --sourcedirectory=debian/libtool\n", ("make", "")),  # lua
    ("%:\n\tdh $@\nexecute_after_dh_auto_configure:\n\tdh_auto_configure \\\n\t\t--buildsystem=cmake \\\n"
     "\t\t--sourcedir=$(CURDIR)/build/cmake\n", ("make", "")),  # zstd: an extra build beside the Makefile's
])
def test_the_directory_debian_rules_builds_in(tmp_path: Path, rules: str, found: tuple[str, str]) -> None:
    tree = _package_tree(tmp_path, "Build-Depends: debhelper-compat (= 13)", {"debian/rules": rules})
    (tree / "Makefile").write_text("")
    (tree / "build" / "cmake").mkdir(parents=True)
    (tree / "debian" / "libtool").mkdir()
    (tree / "build" / "cmake" / "CMakeLists.txt").write_text("")
    assert build.debhelper_system(tree) == found
    assert build.debhelper_system(tree, "lib")[1] == "lib"  # the user's --subdir stands


@pytest.mark.parametrize(("rules", "keeps"), [
    ("# upstream maintains config.h.in manually\nexport AUTOHEADER = true\n%:\n\tdh $@ --with=autoreconf\n", True),
    ("export AUTOHEADER := true\n", True), ("export AUTOHEADER = /usr/bin/autoheader\n", False), ("", False),
])
def test_autoheader_stays_off_where_debian_rules_turns_it_off(tmp_path: Path, rules: str, keeps: bool) -> None:
    from toolkit.compile import plan

    tree = _package_tree(tmp_path, "Build-Depends: debhelper-compat (= 12)", {"debian/rules": rules})
    assert build.keeps_header(tree) is keeps
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "autoreconf").write_text('#!/bin/sh\necho "AUTOHEADER=${AUTOHEADER:-} autoreconf $*" > ran\n'
                                      'echo "AUTOPOINT=${AUTOPOINT:-}" > autopoint\n')
    (tools / "autoreconf").chmod(0o755)
    (tree / "configure.ac").write_text("")
    first = plan.steps(plan.Plan(tree, system="autotools", reconf=True, keep_header=build.keeps_header(tree)), False,
                       "x86_64-linux-gnu")[0]
    subprocess.run(["/bin/sh", "-c", first], cwd=tree, check=True, env={"PATH": str(tools)})  # no autopoint
    assert (tree / "ran").read_text().strip() == f"AUTOHEADER={'true' if keeps else ''} autoreconf -fi"
    # cpio: no autopoint on PATH here, so autoreconf keeps the tarball's gettext files
    assert (tree / "autopoint").read_text().strip() == "AUTOPOINT=true"


def test_only_a_builds_own_failure_is_tried_again_with_debian_rules() -> None:
    from toolkit.errors import timed_out

    assert build._rules_may_build(BuildFailed("the build made no program"))
    assert not build._rules_may_build(None)
    assert not build._rules_may_build(timed_out("building lua5.4", 60))  # twice the time for the same end
    assert not build._rules_may_build(BuildFailed("link failed", lacking=(("library", "onig"),)))
    assert not build._rules_may_build(InputError("--subdir x: no such directory"))


def test_debian_rules_command_is_the_script_s_own_text() -> None:
    """No word of the package's or the user's reaches it: the target comes from the environment the build script
    sets, the rules file is the tree's (run by make, as dpkg-buildpackage does)."""
    sh = subprocess.run(["sh", "-n", "-c", build.DEBIAN_RULES], capture_output=True, text=True)
    assert sh.returncode == 0, sh.stderr
    assert '"$CROSS_TRIPLE"' in build.DEBIAN_RULES and "nocheck" in build.DEBIAN_RULES
