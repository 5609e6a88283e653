"""When a --debian build falls back to an emulated container, without an engine: which failures do (a cross
build-dep apt cannot satisfy), which do not, the lines it says, the suite check, the base images' names and the
times it compares."""

from __future__ import annotations

import json

import pytest

from toolkit import targets
from toolkit.compile import buildimage, emulated
from toolkit.errors import BuildFailed
from toolkit.rootfs import bases

S390X, RISCV64, ARM64 = targets.lookup("s390x"), targets.lookup("riscv64"), targets.lookup("arm64")
BASE_ID = "sha256:" + "a" * 64

# what apt-get build-dep -a s390x hexedit printed on bookworm (whose security archive has no s390x), as the
# engine's build stream gave it: escapes and all
UNMET = """Reading package lists...
Building dependency tree...
Some packages could not be installed. This may mean that you have
requested an impossible situation or if you are using the unstable
distribution that some required packages have not yet been created
or been moved out of Incoming.
The following information may help to resolve the situation:

The following packages have unmet dependencies:
 builddeps:hexedit:s390x : Depends: libncurses5-dev:s390x
\x1b[91mE\x1b[0m
\x1b[91m: Unable to correct problems, you have held broken packages.
\x1b[0m"""
UNREACHABLE = """Err:1 http://deb.debian.org/debian bookworm InRelease
  Temporary failure resolving 'deb.debian.org'
E: Failed to fetch http://deb.debian.org/debian/dists/bookworm/InRelease
E: Unable to find a source package for hexedit"""


def _layers(target: targets.Target, host: str = "amd64") -> list[buildimage.BuildImage]:
    return buildimage.chain("fromscratch/debian:bookworm", target, host, project=True, base_id=BASE_ID,
                            build_dep="hexedit=1.6-1")


def _build_dep(layers: list[buildimage.BuildImage]) -> buildimage.BuildImage:
    [layer] = [layer for layer in layers if layer.build_dep]
    return layer


def test_an_unsatisfiable_cross_build_dep_falls_back_with_apts_reason():
    reason = emulated.falls_back(_build_dep(_layers(S390X)), BuildFailed("a RUN step exited with 100", log=UNMET))
    assert reason == "builddeps:hexedit:s390x : Depends: libncurses5-dev:s390x"
    assert emulated.falling_back(S390X, reason) == (
        "cross build-dep failed for s390x (builddeps:hexedit:s390x : Depends: libncurses5-dev:s390x): building "
        "inside an emulated s390x container")


@pytest.mark.parametrize("why", ["native build-dep", "another layer", "archive unreachable"])
def test_other_failures_do_not_fall_back(why):
    """A native build-dep has no emulated build to fall back on; the cross gcc's layer is not about the package;
    an archive that cannot be reached is not reached from an emulated container either."""
    if why == "native build-dep":
        layer, log = _build_dep(_layers(S390X, host="s390x")), UNMET
    elif why == "another layer":
        layer, log = _layers(S390X)[0], UNMET
    else:
        layer, log = _build_dep(_layers(S390X)), UNREACHABLE
    assert emulated.falls_back(layer, BuildFailed("failed", log=log)) is None


def test_apts_reason_is_one_bounded_line():
    many = "The following packages have unmet dependencies:\n" + "\n".join(
        f" builddeps:x:s390x : Depends: libfoo{i}-dev:s390x" for i in range(40))
    reason = emulated.apt_reason(many)
    assert reason is not None and "\n" not in reason and len(reason) <= 300 and reason.endswith("...")
    assert emulated.apt_reason("E: Unable to locate package libnope-dev:s390x") == (
        "E: Unable to locate package libnope-dev:s390x")
    assert emulated.apt_reason("unmet dependencies") == "apt found its Build-Depends unsatisfiable"


def test_a_suite_without_the_architecture_says_which_suite_has_it():
    bookworm = ("all", "amd64", "arm64", "armel", "armhf", "i386", "mips64el", "ppc64el", "s390x")
    failed = emulated.arch_lacking("bookworm", bookworm, RISCV64)
    assert failed is not None
    assert failed.message == ("Debian bookworm has no riscv64 packages, so the Build-Depends cannot be installed for "
                              "riscv64, cross or emulated (riscv64 is an official Debian architecture from trixie on)")
    assert failed.hint is not None and failed.hint.startswith("build it from --suite trixie; bookworm has all, amd64")
    assert emulated.arch_lacking("bookworm", bookworm, S390X) is None
    assert emulated.arch_lacking("bookworm", (), RISCV64) is None  # a Release that names none: apt says the rest


def test_base_image_names_round_trip():
    assert bases.tag("bookworm") == "fromscratch/debian:bookworm"
    assert bases.tag("bookworm", S390X) == "fromscratch/debian:bookworm-s390x"
    assert bases.parse("fromscratch/debian:bookworm-s390x") == ("bookworm", S390X)
    assert bases.parse("fromscratch/debian:trixie") == ("trixie", None)
    assert bases.parse("fromscratch/debian:bookworm-armel") == ("bookworm", targets.lookup("arm-v5"))
    for other in ("ubuntu:24.04", "fromscratch/debian:bookworm-backports", "fromscratch/debian:Bookworm",
                  "fromscratch/debian:bookworm;rm", "docker.io/fromscratch/debian:bookworm"):
        assert bases.parse(other) is None, other


def test_the_emulated_chain_is_native_to_the_target_over_its_own_base():
    """Over the target's base the chain has no cross gcc and builds the Build-Depends without -a: apt-get build-dep
    as Debian's own buildds run it."""
    layers = buildimage.chain(bases.tag("bookworm", S390X), S390X, S390X.architecture, project=True,
                              base_id=BASE_ID, build_dep="hexedit=1.6-1")
    assert [layer.title for layer in layers] == ["gcc and g++", "build systems",
                                                 "the build dependencies of hexedit=1.6-1 for s390x", "ccache"]
    dep = _build_dep(layers)
    assert dep.build_arch == "" and dep.foreign == ()
    assert " -a " not in dep.dockerfile and "--add-architecture" not in dep.dockerfile
    assert layers[0].dockerfile.startswith("FROM fromscratch/debian:bookworm-s390x\n")
    # the label with apt's reason is not part of what the layer is: its tag stays
    from dataclasses import replace

    assert replace(dep, labels=((emulated.REASON_LABEL, "why"),)).tag == dep.tag


def test_timings_compare_with_the_packages_typical_cross_build(tmp_path):
    path = tmp_path / "times.json"
    kept = emulated.Timings(path)
    assert kept.cross("hexedit=1.6-1") is None
    line = emulated.Compared(S390X, 95.2, None).line("hexedit 1.6-1")
    assert line == ("hexedit 1.6-1 for s390x: built inside an emulated s390x container in 95 s (no cross build of "
                    "hexedit 1.6-1 to compare with yet)")
    for name, seconds in (("arm64", 6.0), ("arm-v7", 8.0), ("ppc64le", 30.0)):
        kept.record("hexedit=1.6-1", targets.lookup(name), "cross", seconds)
    kept.record("hexedit=1.6-1", targets.lookup("amd64"), "native", 2.0)
    kept.record("hexedit=1.6-1", S390X, "emulated", 95.2)
    assert kept.cross("hexedit=1.6-1") == ("arm-v7", 8.0)
    assert emulated.Compared(S390X, 95.2, kept.cross("hexedit=1.6-1")).line("hexedit 1.6-1") == (
        "hexedit 1.6-1 for s390x: built inside an emulated s390x container in 95 s, 11.9x the 8 s of its cross "
        "build for arm-v7")
    data = json.loads(path.read_text())
    assert data["hexedit=1.6-1"]["emulated"] == {"s390x": 95.2}
    path.write_text("not json")  # a damaged file is no figure, never a failure
    assert kept.cross("hexedit=1.6-1") is None
    kept.record("hexedit=1.6-1", ARM64, "cross", 5.0)
    assert kept.cross("hexedit=1.6-1") == ("arm64", 5.0)


def test_a_layer_that_fails_in_a_chain_is_named(monkeypatch):
    layers = _layers(S390X)
    dep = _build_dep(layers)

    def ensure(client, layer):
        if layer is dep:
            raise BuildFailed("a RUN step exited with 100", log=UNMET)
        return layer.tag

    monkeypatch.setattr(buildimage, "ensure", ensure)
    monkeypatch.setattr("toolkit.engine.client.image_exists", lambda client, ref: False)
    with pytest.raises(buildimage.LayerFailed) as failed:
        buildimage.ensure_chain(object(), layers)
    assert failed.value.layer is dep and failed.value.log == UNMET


def test_a_target_without_a_build_image_is_not_tried_again_with_debian_rules():
    """Debian's own rules run in the same build image: a target whose image cannot be made (the suite lacks its
    architecture, a layer failed) would fail the same way again, after saying it tries."""
    from toolkit.debian import build as debian_build

    lacking = emulated.arch_lacking("bookworm", ("amd64", "s390x"), RISCV64)
    assert lacking is not None and not debian_build._rules_may_build(lacking)
    layer = buildimage.LayerFailed(_build_dep(_layers(S390X)), BuildFailed("a RUN step exited with 100", log=UNMET))
    assert not debian_build._rules_may_build(layer)
    assert debian_build._rules_may_build(BuildFailed("make: *** [all] Error 2"))
