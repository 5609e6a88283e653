"""Every shell script the toolkit runs lives as a .sh file in the package, where shellcheck reads it: each one
found under toolkit/ is held to `shellcheck --severity=warning` (scripts/dev installs it; under CI=true a missing
shellcheck fails, elsewhere it skips)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import REPO, missing

SCRIPTS = sorted((REPO / "toolkit").rglob("*.sh"))


def test_the_scripts_are_found():
    assert REPO / "toolkit" / "sbom" / "links.sh" in SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(REPO)))
def test_shellcheck_finds_no_warning(script):
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        missing("shellcheck is not installed (scripts/dev installs it)")
    checked = subprocess.run([shellcheck, "--severity=warning", str(script)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
