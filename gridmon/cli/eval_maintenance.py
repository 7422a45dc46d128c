"""`gridmon eval maintenance`: score failure-time prediction on simulated degrading devices.

The command object is `maintenance_eval`; the CLI mounts it under `gridmon eval`. It also runs
alone: `python -m gridmon.cli.eval_maintenance --json`. The last line printed is one JSON object.
The scoring is `gridmon.evaluation.maintenance`.
"""

from __future__ import annotations

import json
from typing import Any

import click

from gridmon.evaluation.maintenance import QUICK, EvalSpec, evaluate

DEFAULTS = EvalSpec()


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def _table(result: dict[str, Any]) -> list[str]:
    rows = [("gridmon", result), ("original (baseline)", result["baseline"])]
    if "baseline_without_fetch_limit" in result:
        rows.append(("original, no 1000-reading fetch", result["baseline_without_fetch_limit"]))
    header = f"{'method':<34}{'err@25%':>9}{'err@50%':>9}{'err@75%':>9}{'coverage':>10}{'healthy dated':>15}"
    lines = [header, "-" * len(header)]
    for name, scores in rows:
        err = scores["error_pct"]
        healthy = f"{scores['healthy_with_date']}/{scores['healthy_devices']}"
        lines.append(
            f"{name:<34}{_fmt(err['25']):>9}{_fmt(err['50']):>9}{_fmt(err['75']):>9}"
            f"{_fmt(scores['interval_coverage']):>10}{healthy:>15}"
        )
    scen = result["scenarios"]
    lines.append(
        f"{scen['degrading_devices']} degrading devices × 3 cuts, slopes {scen['slopes_c_per_day']} °C/day, "
        f"noise {scen['noise_c']} °C, onsets {scen['onset_days']} days, readings every {scen['interval_s']:g} s; "
        "errors are mean |predicted − true| as % of the remaining time"
    )
    return lines


@click.command(name="maintenance")
@click.option("--json", "as_json", is_flag=True, help="Print only the JSON summary line.")
@click.option("--quick", is_flag=True, help="A small grid for smoke tests (overrides the options below).")
@click.option("--seeds", default=DEFAULTS.seeds, show_default=True, help="Draws per (slope, noise, onset).")
@click.option("--seed-base", default=DEFAULTS.seed_base, show_default=True, help="Offset of every seed (fresh draws).")
@click.option("--interval-s", default=DEFAULTS.interval_s, show_default=True, help="Seconds between readings.")
@click.option(
    "--healthy-per-noise",
    default=DEFAULTS.healthy_per_noise,
    show_default=True,
    help="Healthy devices per noise level.",
)
def maintenance_eval(
    as_json: bool, quick: bool, seeds: int, seed_base: int, interval_s: float, healthy_per_noise: int
) -> None:
    """Failure-time error, interval coverage and healthy false dates, against the original's predictor."""
    spec = (
        QUICK
        if quick
        else EvalSpec(seeds=seeds, interval_s=interval_s, healthy_per_noise=healthy_per_noise, seed_base=seed_base)
    )
    result = evaluate(spec)
    if not as_json:
        for line in _table(result):
            click.echo(line)
    click.echo(json.dumps(result, sort_keys=False))


if __name__ == "__main__":
    maintenance_eval()
