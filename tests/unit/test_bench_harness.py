"""The bench harness's own arithmetic and measuring, on real processes: figures, verdicts, the table's shape."""

from __future__ import annotations

import sys

import pytest

from bench.harness import (
    MIB,
    CommandFailed,
    Row,
    Stat,
    faster_by,
    ours_below,
    over_peer_below,
    render,
    run_once,
    within,
)


def test_run_once_measures_each_childs_own_peak_memory():
    hog = "b = bytearray(80 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096])"
    big = run_once([sys.executable, "-c", hog], memory=True)
    small = run_once(["true"], memory=True)
    assert big.maxrss >= 80 * MIB
    assert small.maxrss < 8 * MIB  # neither the bench's own peak nor the last child's
    assert run_once(["true"]).maxrss == 0  # not asked for
    assert 0 < small.wall < big.wall + 5
    assert 0 < big.cpu <= big.wall * 2  # this child's own CPU time, not a running total


def test_run_once_refuses_an_unexpected_exit_code_and_names_it():
    script = "import sys; print('boom', file=sys.stderr); sys.exit(3)"
    with pytest.raises(CommandFailed, match=r"exited 3: .*boom"):
        run_once([sys.executable, "-c", script])
    with pytest.raises(CommandFailed, match=r"^`\S+ -c import sys.*` exited 3: .*boom"):  # GNU time not shown
        run_once([sys.executable, "-c", script], memory=True)
    assert run_once([sys.executable, "-c", "raise SystemExit(1)"], ok=(0, 1)).wall > 0


def test_verdicts_follow_the_median_and_the_targets_bounds():
    secs = Stat((0.1, 0.2, 9.0), "s")
    peer = Stat((0.6, 0.6, 0.6), "s")
    assert secs.median == 0.2 and secs.spread == "0.100 s – 9.000 s"
    assert Row("r", secs, peer, target=faster_by(3)).verdict == "yes"  # 0.2 / 0.6 is exactly 1/3
    assert Row("r", peer, secs, target=faster_by(3)).verdict == "no"
    assert Row("r", Stat((3.0,), "s"), Stat((1.0,), "s"), target=within(3)).verdict == "yes"
    assert Row("r", Stat((120.0,), "MiB"), None, target=ours_below(100, "MiB")).verdict == "no"
    assert Row("r", Stat((0.52,), "s"), Stat((0.02,), "s"), target=over_peer_below(0.5)).verdict == "yes"
    assert Row("r", Stat((0.6,), "s"), Stat((0.02,), "s"), target=over_peer_below(0.5)).verdict == "no"
    assert Row("r", secs, peer).verdict == "n/a"
    assert Row("r", skipped="not on main yet").verdict == "skipped"


def test_render_gives_one_row_per_measurement_with_the_machine():
    rows = [Row("a | b", Stat((1.0, 2.0), "s"), Stat((4.0, 4.0), "s"), "ours x", "peer y", within(3)),
            Row("sizes", Stat((5_000,), "B"), Stat((10_072,), "B"), "ours z"),
            Row("later", skipped="`invoke x --y` is not on main yet (issue 9)")]
    text = render(rows, [("cores", "2"), ("engine", "Docker Engine 20.10")], "T", "intro")
    table = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| #")]
    assert table == [
        "| 1 | a \\| b | 1.500 s | 1.000 s – 2.000 s | 4.000 s | 4.000 s – 4.000 s | 0.38 "
        "| within 3x (ratio ≤ 3) | yes |",
        "| 2 | sizes | 5,000 B | — | 10,072 B | — | 0.50 | — | n/a |",
        "| 3 | later | — | — | — | — | — | — | skipped: `invoke x --y` is not on main yet (issue 9) |",
    ]
    assert "1. ours: `ours x`; peer: `peer y`; 2 runs each" in text
    assert text.endswith("- cores: 2\n- engine: Docker Engine 20.10\n")


def test_a_full_run_waits_for_a_quiet_machine_but_not_forever(monkeypatch):
    """The load average is the kernel's: what a busy machine reports is given here (os.getloadavg replaced)."""
    from bench import run

    loads = [9.0, 9.0, 0.1]
    monkeypatch.setattr(run.os, "getloadavg", lambda: (loads.pop(0), 0.0, 0.0))
    assert run.settle(False, limit=60, poll=0.01).startswith("waited 0 s for a 1-minute load average under")
    assert loads == []  # asked until the load fell
    monkeypatch.setattr(run.os, "getloadavg", lambda: (9.0, 0.0, 0.0))
    assert run.settle(False, limit=0.03, poll=0.01).endswith("(it never fell that low)")
    assert run.settle(True) == "not waited for (--quick)"
