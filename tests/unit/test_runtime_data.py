"""What a program reads at run time besides libraries (terminfo, its locale, CA certificates, time zones), found in
real static programs of the host's gcc, symbols or stripped, and what verify says of it for a scratch image."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

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
    assert "locale" in programs["terminfo"].reads  # ncurses asks nl_langinfo whether the locale is UTF-8


def test_verify_warns_for_what_a_scratch_image_lacks_and_not_for_what_the_image_holds(programs):
    facts = programs["locale"]
    (warning,) = verify.verify(facts).runtime
    assert "nl_langinfo" in warning and "ANSI_X3.4-1968" in warning and "--locale C.UTF-8" in warning
    assert verify.verify(facts, image_files={verify.LOCALE_FILE}).runtime == ()
    (tz,) = verify.verify(programs["zoneinfo"], image_files=set()).runtime
    assert "this image has none" in tz and "--tzdata" in tz
    assert verify.verify(programs["hello"]).runtime == ()
