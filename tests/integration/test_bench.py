"""`invoke bench --quick` still works: it writes a well-formed table. Figures are never checked here."""

from __future__ import annotations

import re

import pytest

from tests.conftest import invoke

pytestmark = [pytest.mark.engine, pytest.mark.slow]

VERDICTS = ("yes", "no", "n/a")
FIGURE = re.compile(r"^[0-9][0-9,]*(\.[0-9]+)? (s|MiB|B)$")


def _cells(line: str) -> list[str]:
    assert line.startswith("| ") and line.endswith(" |"), line
    return [c.strip() for c in re.split(r"(?<!\\)\|", line[1:-1])]


def _bench_tags(docker_client) -> set[str]:
    return {t for i in docker_client.images.list() for t in i.tags if t.startswith("fromscratch-bench-")}


def test_bench_quick_writes_a_well_formed_table(tmp_path, docker_client, builder_base):
    before = _bench_tags(docker_client)
    out = tmp_path / "BENCH.md"
    result = invoke("bench", "--quick", "--out", str(out), "--builder-base", builder_base, timeout=900)
    assert result.code == 0, result
    assert "Traceback" not in result.err
    lines = out.read_text().splitlines()

    start = lines.index(next(line for line in lines if line.startswith("| # |")))
    header = _cells(lines[start])
    assert header[-3:] == ["Ours ÷ peer", "Target", "Met"]
    assert set(lines[start + 1]) <= set("|-")
    rows = []
    for line in lines[start + 2:]:
        if not line:
            break
        rows.append(_cells(line))
    assert len(rows) >= 12  # every benchmark the issue lists has its row, measured or skipped with a reason
    assert [r[0] for r in rows] == [str(n) for n in range(1, len(rows) + 1)]
    for row in rows:
        assert len(row) == len(header), row
        met = row[-1]
        if met.startswith("skipped: "):
            assert len(met) > len("skipped: ") + 10, row  # a stated reason
            continue
        assert met in VERDICTS, row
        assert FIGURE.match(row[2]), row  # ours has a figure
        assert row[6] == "—" or re.fullmatch(r"[0-9]+\.[0-9]{2}", row[6]), row
    assert any(r[-1] in VERDICTS for r in rows)

    commands = lines[lines.index("## What each row runs") + 2:]
    assert [c.split(".", 1)[0] for c in commands[:len(rows)]] == [r[0] for r in rows]
    machine = "\n".join(lines[lines.index("## Machine"):])
    for key in ("date", "cores", "memory", "engine"):
        assert re.search(rf"^- {key}: \S", machine, re.M), key
    assert re.search(r"^- date: \d{4}-\d{2}-\d{2} ", machine, re.M)
    assert "Docker Engine" in machine
    assert _bench_tags(docker_client) <= before  # every image the bench made is gone
