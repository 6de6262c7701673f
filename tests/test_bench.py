"""`tview-tui bench` end to end at --quick sizes, on a real server: every workload runs, prints
numeric medians, and the oracle is 0. Timings are not asserted (they go in the closing note)."""

from __future__ import annotations

import argparse
import json
import re

import pytest

from tview_tui import cli
from tview_tui.tools import bench


def parse(*argv: str) -> argparse.Namespace:
    """The bench's arguments as the CLI parses them."""
    return cli.build_parser().parse_args(["bench", *argv])


def section(output: str, workload: str) -> str:
    """The printed table of one workload (from its header to the next blank line)."""
    match = re.search(rf"^== {workload}: .*?(?=\n\n)", output, re.S | re.M)
    assert match, f"no table for {workload} in:\n{output}"
    return match.group(0)


def medians(table: str) -> dict[str, float]:
    """Arm name -> median ms, for the rows that carry numbers."""
    rows = re.findall(r"^   (\S.*?)\s{2,}(\d+\.\d+)\s+(\d+\.\d+)\s", table, re.M)
    return {name: float(median) for name, median, _ in rows}


@pytest.mark.slow
def test_quick_bench_on_an_embedded_server_runs_every_default_workload(capsys):
    code = cli.main(["bench", "--quick", "--repeat", "2"])
    out = capsys.readouterr().out
    assert code == 0, out
    for workload in bench.DEFAULT_WORKLOADS:
        table = section(out, workload)
        assert "ERROR" not in table
        numbers = medians(table)
        assert len(numbers) >= 2 and all(v > 0 for v in numbers.values()), table
        assert re.search(r"oracle after the runs .*: .* 0$", table, re.M), table
        assert not re.search(r"oracle after the runs .* [1-9]\d*(,|$)", table, re.M), table
    assert "== scale_m" not in out                       # only when asked for
    assert "per-key" in medians(section(out, "large_cascade"))
    assert "REFRESH MATERIALIZED VIEW" in medians(section(out, "full_refresh"))
    assert {"hand trigger leaf", "engine leaf", "bare leaf", "composed recompute parent"} <= set(
        medians(section(out, "versus_hand")))
    assert "oracle: 0 rows differ" in out
    for target in ("large cascade: per-key / set-based", "bulk insert with TVIEWs / bare",
                   "REFRESH MATERIALIZED VIEW / engine single-row", "medium cascade: TVIEW recompute / TVIEW patch",
                   "default scale leaf: engine / hand trigger", "default scale parent: composed with patching / hand trigger"):
        assert re.search(rf"^  {re.escape(target)} = (\d+\.\d+x|n/a: not implemented)", out, re.M), target


@pytest.mark.slow
def test_patch_arm_is_measured_or_reported_as_not_implemented(capsys, server_dsn, tmp_path):
    """Never a number for an arm the engine cannot run; a number with mode 'patch' when it can."""
    out_file = tmp_path / "bench.json"
    code = cli.main(["bench", server_dsn, "--quick", "--repeat", "2", "--workload", "medium",
                     "--workload", "scale_m", "--json", str(out_file)])
    out = capsys.readouterr().out
    assert code == 0, out
    result = json.loads(out_file.read_text())
    arms = {a["name"]: a for w in result["workloads"] for a in w["arms"]}
    patch = arms["TVIEW patch"]
    if result["patching"]:
        assert patch["samples_ms"] and patch["modes"]["tv_post"].startswith("patch"), patch
    else:
        assert patch["samples_ms"] == [] and "not implemented" in patch["unavailable"]
        assert re.search(r"^   TVIEW patch\s+not implemented", out, re.M)
    assert arms["TVIEW recompute"]["modes"]["tv_post"] == "recompute"
    assert arms["TVIEW recompute"]["drift"] == 0 and arms["bare write"]["drift"] is None

    scale_m = section(out, "scale_m")
    assert {"hand trigger leaf", "engine leaf", "hand trigger parent", "engine parent"} <= set(medians(scale_m))
    rates = {t["name"]: t for w in result["workloads"] for t in w["throughput"]}
    for clients in ("1 client", "2 clients", "4 clients"):
        assert rates[f"engine, {clients}"]["commits"] > 0 and rates[f"hand trigger, {clients}"]["commits"] > 0
    scale_m_result = next(w for w in result["workloads"] if w["name"] == "scale_m")
    assert scale_m_result["oracle"] and set(scale_m_result["oracle"].values()) == {0}


def test_scale_m_is_never_a_default_and_needs_scale_one():
    printed = []
    assert "scale_m" not in bench.chosen_workloads(parse(), printed.append)
    assert bench.chosen_workloads(parse("--workload", "scale_m", "--scale", "0.5"), printed.append) == []
    assert "skipped" in printed[-1]
    assert bench.chosen_workloads(parse("--workload", "scale_m", "--workload", "medium"), printed.append) == [
        "medium", "scale_m"]
