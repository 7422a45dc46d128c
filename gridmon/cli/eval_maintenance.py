"""`gridmon eval maintenance`: score failure-time prediction on simulated or real devices.

Without `--csv`: simulated degrading and healthy devices (`gridmon.evaluation.maintenance`).
With `--csv FILE --time-col C --map temperature=COL[,current=COL] --limit DEG`: one real series
replayed day by day (`gridmon.evaluation.maintenance_real`): false failure dates, and the error
of the temperature path against persistence and seasonal-naive forecasts.

The command object is `maintenance_eval`; the CLI mounts it under `gridmon eval`. It also runs
alone: `python -m gridmon.cli.eval_maintenance --json`. The last line printed is one JSON object.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
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
@click.option(
    "--csv",
    "csv_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="A real device's series: replay it day by day instead of the simulated grid.",
)
@click.option("--time-col", default="timestamp", show_default=True, help="With --csv: the time column.")
@click.option("--map", "mapping", default=None, help="With --csv: temperature=COL[,current=COL,voltage=COL].")
@click.option("--sep", default=",", show_default=True, help="With --csv: the field separator.")
@click.option("--limit", type=float, default=None, help="With --csv: the device's temperature limit (°C).")
def maintenance_eval(
    as_json: bool,
    quick: bool,
    seeds: int,
    seed_base: int,
    interval_s: float,
    healthy_per_noise: int,
    csv_file: Path | None,
    time_col: str,
    mapping: str | None,
    sep: str,
    limit: float | None,
) -> None:
    """Failure-time error, interval coverage and healthy false dates, against the original's predictor;
    with --csv, false dates and forecast error on a real series."""
    if csv_file is not None:
        _real(csv_file, time_col, mapping, sep, limit, as_json)
        return
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


def _real(csv_file: Path, time_col: str, mapping: str | None, sep: str, limit: float | None, as_json: bool) -> None:
    from gridmon.evaluation.csv_files import CsvSetup, load_csv, parse_mapping
    from gridmon.evaluation.maintenance_real import replay

    if not mapping or limit is None:
        raise click.UsageError("--csv needs --map temperature=COL[,current=COL] and --limit")
    try:
        metrics = parse_mapping(mapping)
        if "temperature" not in metrics:
            raise ValueError("--map must name the temperature column (temperature=COL)")
        unknown = sorted(set(metrics) - {"temperature", "current", "voltage"})
        if unknown:
            raise ValueError(f"--map: maintenance reads temperature, current and voltage only, not {unknown}")
        data = load_csv(csv_file, CsvSetup(time_col=time_col, mapping=metrics, label_col=None, sep=sep))
        result = replay(data.frame.drop(columns=["device_id"]), limit_c=limit, device_id=data.device_id)
    except (ValueError, OSError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    if not as_json:
        click.echo(
            f"{result['cuts']} daily cuts, limit {limit:g} °C (series max {_fmt(result['series_max_c'])} °C): "
            f"dated within 7 d {_fmt(result['dated_7d_pct'])} %, within 30 d {_fmt(result['dated_30d_pct'])} %; "
            f"false dates 7 d {_fmt(result['false_dates_7d_pct'])} %, 30 d {_fmt(result['false_dates_30d_pct'])} %"
        )
        click.echo(f"{'MAE °C':<10}{'gridmon':>10}{'persistence':>13}{'seasonal naive':>16}")
        for horizon, row in result["mae_c"].items():
            click.echo(
                f"{'+' + horizon:<10}{_fmt(row['gridmon']):>10}{_fmt(row['persistence']):>13}"
                f"{_fmt(row['seasonal_naive']):>16}"
            )
    click.echo(json.dumps(result))


if __name__ == "__main__":
    maintenance_eval()
