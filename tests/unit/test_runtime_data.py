"""What a program reads at run time besides libraries (terminfo, its locale, CA certificates, time zones), found in
real static programs of the host's gcc, symbols or stripped, and what verify says of it for a scratch image."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.image_helpers import member_tar
from toolkit.check import elf, verify

LOCALE = ('#include <langinfo.h>\n#include <locale.h>\n#include <stdio.h>\n'
          'int main(void){ setlocale(LC_ALL, ""); puts(nl_langinfo(CODESET)); return 0; }\n')
TERMINFO = ('#include <curses.h>\n#include <term.h>\n'
            'int main(void){ int err = 0; return setupterm(0, 1, &err) != OK; }\n')
ZONEINFO = ('#include <stdio.h>\n#include <time.h>\n'
            'int main(void){ time_t t = 0; puts(localtime(&t)->tm_zone); return 0; }\n')
HELLO = '#include <stdio.h>\nint main(void){ puts("hi"); return 0; }\n'


def _has_static_ncurses() -> bool:
    return any(Path(d, "libtinfo.a").is_file() for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
                                                          "/usr/lib"))


@pytest.fixture(scope="module")
def programs(tmp_path_factory) -> dict[str, elf.ElfFacts]:
    from tests.conftest import gcc

    if not shutil.which("gcc"):
        pytest.skip("no gcc on this host")
    tmp = tmp_path_factory.mktemp("reads")
    out = {name: elf.read(str(gcc(tmp, src, "-static", *flags, name=name)))
           for name, src, flags in (("locale", LOCALE, ()), ("zoneinfo", ZONEINFO, ()), ("hello", HELLO, ()),
                                    ("zoneinfo_stripped", ZONEINFO, ("-s",)))}
    if _has_static_ncurses():
        (tmp / "terminfo.c").write_text(TERMINFO)
        for name, flags in (("terminfo", ()), ("terminfo_stripped", ("-s",))):  # the libraries after the source
            subprocess.run(["gcc", "-static", *flags, str(tmp / "terminfo.c"), "-o", str(tmp / name), "-lncurses",
                            "-ltinfo"], check=True, capture_output=True)
            out[name] = elf.read(str(tmp / name))
    return out


def test_each_kind_is_found_and_a_plain_program_reads_nothing(programs):
    assert programs["hello"].reads == ()  # setlocale is in every static glibc program: no sign
    assert programs["locale"].reads == ("locale",)
    assert programs["zoneinfo"].reads == ("zoneinfo",)
    assert programs["zoneinfo_stripped"].reads == ("zoneinfo",)  # TZDIR, compiled in


def test_ncurses_is_found_with_its_terminfo_directories(programs):
    if "terminfo" not in programs:
        pytest.skip("no static ncurses (libncurses-dev) on this host")
    for name in ("terminfo", "terminfo_stripped"):
        facts = programs[name]
        assert "terminfo" in facts.reads
        assert set(facts.data_dirs) & set(elf.TERMINFO_DIRS)
    for name in ("terminfo", "terminfo_stripped"):  # ncurses asks nl_langinfo whether the locale is UTF-8
        assert "locale" in programs[name].reads
    shown = verify.verify(programs["terminfo"]).to_dict()  # verify --json
    assert shown["reads"] == ["terminfo", "locale"] and "/usr/share/terminfo" in shown["data_dirs"]


def test_verify_warns_for_what_a_scratch_image_lacks_and_not_for_what_the_image_holds(programs):
    facts = programs["locale"]
    (warning,) = verify.verify(facts).runtime
    assert "nl_langinfo" in warning and "ANSI_X3.4-1968" in warning and "--locale C.UTF-8" in warning
    assert verify.verify(facts, image_files={verify.LOCALE_FILE}).runtime == ()
    (tz,) = verify.verify(programs["zoneinfo"], image_files=set()).runtime
    assert "this image has none" in tz and "--tzdata" in tz
    assert verify.verify(programs["hello"]).runtime == ()


# --- the flags, and a package's files unpacked -----------------------------------------------------------------

@pytest.mark.parametrize("given", ['xterm"', "$(id)", "a\nb", "-x", "../x", "x/../y", "x/y", "", "a b", "é"])
def test_a_terminfo_name_that_is_not_one_is_refused(given):
    from toolkit.errors import InputError
    from toolkit.image import runtime

    with pytest.raises(InputError, match=r"^--terminfo "):
        runtime.parse_terminfo(f"xterm,{given}")


def test_the_flags_parse_to_what_is_added():
    from toolkit.errors import InputError
    from toolkit.image import runtime

    assert runtime.parse_terminfo(True) == runtime.TERMINFO_DEFAULT
    assert runtime.parse_terminfo("xterm,putty,xterm") == ("xterm", "putty")
    assert runtime.parse_terminfo(None) == ()
    assert runtime.parse_off(None) == runtime.AUTO and runtime.parse_off(True) == ()
    assert runtime.parse_off("locale") == ("terminfo", "ca-certificates")
    assert runtime.parse_locale("C.UTF-8") and not runtime.parse_locale(None)
    for bad in (lambda: runtime.parse_off("zoneinfo"), lambda: runtime.parse_locale("de_DE.UTF-8")):
        with pytest.raises(InputError):
            bad()


def test_a_package_is_unpacked_under_its_prefixes_only(tmp_path):
    import tarfile

    from toolkit.rootfs import debfiles

    data = member_tar(tmp_path / "data.tar", [("./lib/terminfo/x/xterm", "file", "entry"),
                                              ("./lib/terminfo/x/xterm-debian", "symlink", "xterm"),
                                              ("./usr/bin/tic", "file", "a program")])
    root = tmp_path / "root"
    root.mkdir()
    with tarfile.open(data) as tar:
        debfiles.unpack(tar, root, ("lib/terminfo/",))
    assert (root / "lib/terminfo/x/xterm-debian").read_text() == "entry"
    assert not (root / "usr").exists()


@pytest.mark.parametrize("members", [
    [("./lib/terminfo/../../../escaped", "file", "x")],
    [("./lib/terminfo/x", "symlink", "/etc"), ("./lib/terminfo/x/passwd", "file", "x")],
    [("./lib/terminfo/fifo", "fifo", "")],
])
def test_a_package_path_that_leaves_its_root_is_refused(tmp_path, members):
    import tarfile

    from toolkit.errors import BuildFailed
    from toolkit.rootfs import debfiles

    root = tmp_path / "root"
    root.mkdir()
    with tarfile.open(member_tar(tmp_path / "data.tar", members)) as tar, pytest.raises(BuildFailed):
        debfiles.unpack(tar, root, ("lib/terminfo/",))
    assert not (tmp_path / "escaped").exists()


def test_what_was_not_asked_for_fails_softly_and_what_was_asked_for_fails_whole(programs, tmp_path):
    """With no Debian package to be had (no mirror, nothing kept), a program found to read its locale still gets
    its image, said in one line, and verify's warning stays; --locale asked for it, so that fails."""
    from toolkit import targets
    from toolkit.errors import BuildFailed
    from toolkit.image import runtime

    def unreachable(arch: str, name: str, prefixes: object) -> runtime.Unpacked:
        raise BuildFailed(f"Debian's {name} for {arch} cannot be had from the mirror: no answer")

    amd64 = targets.lookup("amd64")
    (added,) = runtime.plan(tmp_path / "prog", programs["locale"], amd64, runtime.Request(), unreachable,
                            frozenset(), ())
    assert added.entries == () and added.env == ()
    assert added.line() == (f"could not add locale (C.UTF-8) to the image (Debian's libc-bin for amd64 cannot be had "
                            f"from the mirror: no answer): {tmp_path / 'prog'} calls nl_langinfo, which asks the "
                            "locale's character set (setlocale reads locale files)")
    with pytest.raises(BuildFailed):
        runtime.plan(tmp_path / "prog", programs["locale"], amd64, runtime.Request(locale=True), unreachable,
                     frozenset(), ())


def test_verify_image_warns_for_what_the_commands_program_reads_and_the_image_lacks(programs, tmp_path):
    """The whole-image check knows the image's files and environment: no locale files, a warning; the files but
    no LANG, another; both, none."""
    from tests import elfgen
    from toolkit.check import image as imagecheck

    program = Path(programs["locale"].path).read_bytes()
    locale = {"usr/lib/locale/C.utf8/": "", "usr/lib/locale/C.utf8/LC_CTYPE": (b"ctype", 0o644)}

    def warnings(files: dict, env: list[str]) -> list[str]:
        fs = imagecheck.ImageFS.from_tar(elfgen.image_tar({"app": program, **files}))
        attrs = {"Architecture": "amd64", "Os": "linux", "Config": {"Cmd": ["/app"], "Env": env}}
        verdict = imagecheck.check(fs, attrs, "test:image")
        assert verdict.ok, verdict.render()
        return list(verdict.warnings)

    (bare,) = warnings({}, [])
    assert bare.startswith("/app: calls nl_langinfo") and "this image has none" in bare
    (unset,) = warnings(locale, [])
    assert "sets none of LANG, LC_ALL, LC_CTYPE" in unset
    assert warnings(locale, ["LANG=C.UTF-8"]) == []
