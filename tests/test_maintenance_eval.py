"""`gridmon eval maintenance`: the command runs the simulator's scenarios and ends with its JSON line."""

from __future__ import annotations

import json

from click.testing import CliRunner

from gridmon.cli.eval_maintenance import _table, maintenance_eval


def test_eval_prints_the_summary_json_for_ours_and_the_baseline():
    result = CliRunner().invoke(maintenance_eval, ["--quick", "--json"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1  # --json: the JSON line only
    summary = json.loads(lines[-1])
    for scores in (summary, summary["baseline"]):
        assert set(scores) >= {"error_pct", "interval_coverage", "healthy_with_date", "healthy_devices"}
        assert set(scores["error_pct"]) == {"25", "50", "75"}
    assert summary["cuts"] == 12 and summary["healthy_devices"] == 2
    # the quick grid's fast degradations are all dated, inside the targets from half-way on
    assert summary["undated"] == {"25": 0, "50": 0, "75": 0}
    assert summary["error_pct"]["50"] <= 10 and summary["error_pct"]["75"] <= 10
    assert summary["interval_coverage"] >= 0.8
    assert summary["healthy_with_date"] == 0
    # the original always hands out a date, and has no interval
    assert summary["baseline"]["healthy_with_date"] == summary["baseline"]["healthy_devices"]
    assert summary["baseline"]["interval_coverage"] is None
    # without --json a table of the same figures precedes the JSON line
    table = _table(summary)
    assert table[0].startswith("method") and table[2].startswith("gridmon") and "—" in table[3]
