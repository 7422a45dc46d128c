"""`gridmon eval nab`, `eval skab` and `eval noise`: the detector on public labelled benchmarks and on fault-free noise.

Each prints a table (unless `--json`) with the null and flag-everything rows and the published
anchors, then one JSON line. The scoring is `gridmon.evaluation.nab` and
`gridmon.evaluation.skab`; neither command touches a database.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from gridmon.cli.eval_format import anchors_line, budget_line, budget_of, budget_option, phases_option, table

NAB_COLUMNS = (
    ("standard", "standard"),
    ("reward_low_FP", "reward_low_FP"),
    ("reward_low_FN", "reward_low_FN"),
    ("detections", "detections"),
    ("windows_detected", "windows found"),
    ("false_onsets", "false onsets"),
)
SKAB_COLUMNS = (
    ("f1", "F1"),
    ("far_pct", "FAR %"),
    ("mar_pct", "MAR %"),
    ("changepoint_nab_standard", "CP NAB std"),
    ("detected_changepoints", "changes"),
)


def _fail(exc: Exception) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(2)


@click.command(name="nab")
@click.option(
    "--data",
    "data_dir",
    required=True,
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="Corpus folder: <category>/<name>.csv with timestamp,value.",
)
@click.option(
    "--labels",
    "labels_file",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="combined_windows.json",
)
@click.option("--json", "as_json", is_flag=True, help="Print only the JSON line.")
@click.option("--no-forest", is_flag=True, help="Score without the IsolationForest (to measure its contribution).")
@phases_option
@budget_option
def nab_eval(
    data_dir: Path, labels_file: Path, as_json: bool, no_forest: bool, phases: int, budget: float | None
) -> None:
    """NAB's scoring (onsets, three profiles, normalized) over a corpus in NAB's layout."""
    from gridmon.evaluation.adapter import alarm_budget, use_forest
    from gridmon.evaluation.nab import evaluate_nab
    from gridmon.evaluation.phases import run_phases, summary_rows

    use_forest(not no_forest)
    alarms = budget_of(budget)
    try:
        with alarm_budget(alarms):
            report: dict[str, Any] = {
                **run_phases(lambda: evaluate_nab(data_dir, labels_file), phases),
                "forest": not no_forest,
                "alarms_per_device_day": alarms,
            }
    except (ValueError, OSError) as exc:
        _fail(exc)
        return
    if not as_json:
        corpus = report["corpus"]
        click.echo(f"{corpus['files']} files, {corpus['windows']} windows, {corpus['rows']} rows; normalized scores")
        click.echo(table(summary_rows(report), NAB_COLUMNS, digits=1))
        anchors = {k: v for k, v in report["anchors"].items() if k not in ("profile", "corpus")}
        title = "anchors (standard profile; NAB's published detections, scored this way on NAB's 53-file corpus)"
        click.echo(anchors_line(title, anchors))
        click.echo(budget_line(alarms))
    click.echo(json.dumps(report))


@click.command(name="skab")
@click.option(
    "--data",
    "data_dir",
    required=True,
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="Folder searched for labelled *.csv (';'-separated, with an anomaly column).",
)
@click.option("--train-rows", default=400, show_default=True, help="Leading rows per file used for training.")
@click.option("--json", "as_json", is_flag=True, help="Print only the JSON line.")
@click.option("--no-forest", is_flag=True, help="Score without the IsolationForest (to measure its contribution).")
@phases_option
@budget_option
def skab_eval(
    data_dir: Path, train_rows: int, as_json: bool, no_forest: bool, phases: int, budget: float | None
) -> None:
    """SKAB's protocol: point-wise F1/FAR/MAR and the changepoint NAB score, from the same flags."""
    from gridmon.evaluation.adapter import alarm_budget, use_forest
    from gridmon.evaluation.phases import run_phases, summary_rows
    from gridmon.evaluation.skab import evaluate_skab

    use_forest(not no_forest)
    alarms = budget_of(budget)
    try:
        with alarm_budget(alarms):
            report: dict[str, Any] = {
                **run_phases(lambda: evaluate_skab(data_dir, train_rows=train_rows), phases),
                "forest": not no_forest,
                "alarms_per_device_day": alarms,
            }
    except (ValueError, OSError) as exc:
        _fail(exc)
        return
    if not as_json:
        corpus = report["corpus"]
        click.echo(
            f"{corpus['files']} labelled files, {corpus['rows']} rows, first {corpus['train_rows']} of each train"
        )
        click.echo(table(summary_rows(report), SKAB_COLUMNS))
        outlier = report["anchors"]["outlier"]
        click.echo(
            "anchors, outlier (F1 / FAR % / MAR %): "
            + ", ".join(f"{k} {v['f1']} / {v['far_pct']} / {v['mar_pct']}" for k, v in outlier.items())
        )
        click.echo(anchors_line("anchors, changepoint (NAB standard)", report["anchors"]["changepoint_nab_standard"]))
        click.echo(budget_line(alarms))
    click.echo(json.dumps(report))


NOISE_COLUMNS = (
    ("onsets_per_device_day", "onsets/dev-day"),
    ("first_day", "day 1"),
    ("later", "after day 1"),
    ("times_budget", "× budget"),
    ("time_in_alarm_pct", "% in alarm"),
    ("onsets", "onsets"),
)


@click.command("noise")
@click.option("--devices", default=40, show_default=True, help="New devices per kind of noise.")
@click.option("--metrics", default=1, show_default=True, help="Independent metrics per device (of the same noise).")
@click.option("--days", default=3.0, show_default=True, help="Days each device reports.")
@click.option("--interval", default=10.0, show_default=True, help="Seconds between readings.")
@click.option("--seed", default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print only the JSON line.")
@budget_option
def noise_eval(
    devices: int, metrics: int, days: float, interval: float, seed: int, as_json: bool, budget: float | None
) -> None:
    """Alarm onsets of new devices on fault-free generated noise, against the alarm budget."""
    from gridmon.evaluation.adapter import alarm_budget
    from gridmon.evaluation.noise import NoiseSetup, evaluate_noise

    try:
        with alarm_budget(budget_of(budget)):
            setup = NoiseSetup(devices=devices, days=days, interval_s=interval, seed=seed, metrics=metrics)
            report = evaluate_noise(setup)
    except ValueError as exc:
        _fail(exc)
        return
    if not as_json:
        given = report["setup"]
        per = f" of {given['metrics']} metrics" if given["metrics"] > 1 else ""
        click.echo(
            f"{given['devices']} new devices{per} per kind, {given['days']} days at {given['interval_s']} s, "
            "no faults: every onset is a false page"
        )
        click.echo(table(report["rows"], NOISE_COLUMNS))
        click.echo(f"budget: {report['budget_per_device_day']} onsets per device-day (--budget)")
    click.echo(json.dumps(report))
