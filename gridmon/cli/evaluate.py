"""`gridmon eval`: detection quality on the simulator's catalogue, on CSV files, and on benchmarks.

Without `--csv` it runs `gridmon.evaluation.catalogue`; with `--csv` (repeatable, globs allowed)
`gridmon.evaluation.csv_files` on labelled files, or `gridmon.evaluation.alarm_rate` with
`--no-label`. Sub-commands: `nab`, `skab` (`gridmon.cli.eval_bench`) and `maintenance`
(`gridmon.cli.eval_maintenance`). Every command prints a table unless `--json`, and its last
line is always one JSON object; every table carries the null and flag-everything rows. Alarms
are grouped with the production episode gap (`GRIDMON_EPISODE_GAP_S`).
"""

from __future__ import annotations

import glob
import json
import sys
from pathlib import Path
from typing import Any

import click

from gridmon.cli import FullHelpGroup
from gridmon.cli.eval_format import budget_line, budget_of, budget_option, phases_option, table
from gridmon.config import get_settings

CATALOGUE_COLUMNS = (
    ("precision", "precision"),
    ("recall", "recall"),
    ("f1", "F1"),
    ("false_alerts_per_device_day", "false/dev-day"),
    ("alarm_time_precision", "alarm-time prec"),
    ("median_delay_s", "delay s"),
    ("alarms", "alarms"),
    ("events", "events"),
)
RATE_COLUMNS = (
    ("onsets_per_device_day", "onsets/dev-day"),
    ("time_in_alarm_pct", "% in alarm"),
    ("onsets", "onsets"),
    ("device_days", "device-days"),
)


def _expand(patterns: tuple[str, ...]) -> list[Path]:
    paths: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not matches:
            raise click.BadParameter(f"no file matches {pattern!r}", param_hint="--csv")
        paths.extend(Path(m) for m in matches)
    return paths


def _csv(options: dict[str, Any], as_json: bool) -> None:
    from gridmon.evaluation.alarm_rate import evaluate_alarm_rate
    from gridmon.evaluation.csv_files import CsvSetup, evaluate_csv, parse_mapping
    from gridmon.evaluation.phases import run_phases, summary_rows

    if not options["mapping"]:
        raise click.UsageError("--csv needs --map")
    no_label = options["no_label"]
    try:
        setup = CsvSetup(
            time_col=options["time_col"],
            mapping=parse_mapping(options["mapping"]),
            label_col=None if no_label else options["label_col"],
            sep=options["sep"],
            train_rows=options["train_rows"],
            safety=not options["no_safety"],
            tolerance_s=options["tolerance"],
            episode_gap_s=get_settings().episode_gap_s,
            out=options["out"],
        )
        paths = _expand(options["csv_files"])
        evaluate = evaluate_alarm_rate if no_label else evaluate_csv
        report = run_phases(lambda: evaluate(paths, setup), options["phases"])
    except (ValueError, OSError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    report["forest"] = not options["no_forest"]
    report["alarms_per_device_day"] = options["budget"]
    if not as_json:
        rows = summary_rows(report)
        if no_label:
            click.echo(table(rows, RATE_COLUMNS))
            click.echo(f"ISA-18.2 context: at most {report['isa_18_2_onsets_per_device_day']} onsets per device-day")
        else:
            point = {name: row["pointwise"] for name, row in rows.items()}
            click.echo(table(point, (("f1", "point F1"), ("far", "FAR"), ("mar", "MAR"))))
            events = {name: row["events"] for name, row in rows.items()}
            click.echo(table(events, tuple(c for c in CATALOGUE_COLUMNS if c[0] != "median_delay_s")))
        click.echo(budget_line(options["budget"]))
    click.echo(json.dumps(report))


@click.group(name="eval", cls=FullHelpGroup, invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print only the JSON line.")
@click.option("--devices", default=10, show_default=True, help="Devices with faults.")
@click.option("--fault-free", default=5, show_default=True, help="Extra devices without faults.")
@click.option("--hours", default=24.0, show_default=True, help="Scored duration (after the history).")
@click.option("--history-days", default=3.0, show_default=True, help="Fault-free days before it (training).")
@click.option("--interval", default=2.0, show_default=True, help="Seconds between readings.")
@click.option("--faults-per-day", default=4.0, show_default=True, help="Faults per faulty device and scored day.")
@click.option("--seed", default=0, show_default=True)
@click.option("--tolerance", default=30.0, show_default=True, help="Seconds around a truth window that still match.")
@click.option("--no-per-kind", is_flag=True, help="Skip the per-kind runs (faster).")
@click.option("--csv", "csv_files", multiple=True, help="CSV file or glob, one device each (repeatable).")
@click.option("--time-col", default="timestamp", show_default=True)
@click.option("--map", "mapping", default=None, help="voltage=COL,current=COL,temperature=COL[,name=COL…]")
@click.option("--label-col", default="label", show_default=True)
@click.option("--no-label", is_flag=True, help="Unlabelled files: report the alarm rate only.")
@click.option("--sep", default=",", show_default=True)
@click.option("--train-rows", default=400, show_default=True, help="Leading rows per file used for training.")
@click.option("--no-safety", is_flag=True, help="Skip the grid safety limits (for non-grid equipment).")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Write timestamp,score,flag per row.")
@click.option("--no-forest", is_flag=True, help="Score without the IsolationForest (to measure its contribution).")
@phases_option
@budget_option
@click.pass_context
def eval_group(ctx: click.Context, as_json: bool, **options: Any) -> None:
    """Score detection: the simulator's fault catalogue, or CSV files (--csv)."""
    if ctx.invoked_subcommand is not None:
        return
    from gridmon.evaluation.adapter import alarm_budget, use_forest

    use_forest(not options["no_forest"])
    options["budget"] = budget_of(options["budget"])
    with alarm_budget(options["budget"]):
        if options["csv_files"]:
            _csv(options, as_json)
        else:
            _catalogue(options, as_json)


def _catalogue(options: dict[str, Any], as_json: bool) -> None:
    from gridmon.evaluation.catalogue import CatalogueSetup, evaluate_catalogue
    from gridmon.evaluation.phases import run_phases, summary_rows

    setup = CatalogueSetup(
        devices=options["devices"],
        fault_free_devices=options["fault_free"],
        duration_s=options["hours"] * 3600.0,
        history_days=options["history_days"],
        interval_s=options["interval"],
        seed=options["seed"],
        faults_per_device_day=options["faults_per_day"],
        tolerance_s=options["tolerance"],
        episode_gap_s=get_settings().episode_gap_s,
        per_kind=not options["no_per_kind"],
    )
    report = run_phases(lambda: evaluate_catalogue(setup), options["phases"])
    report["forest"] = not options["no_forest"]
    report["alarms_per_device_day"] = options["budget"]
    if not as_json:
        click.echo(table({**summary_rows(report), **report["by_kind"]}, CATALOGUE_COLUMNS))
        click.echo(budget_line(options["budget"]))
    click.echo(json.dumps(report))


def register(group: click.Group) -> None:
    """Mount `eval` with its sub-commands (nab, skab, noise, maintenance) on the gridmon group."""
    from gridmon.cli.eval_bench import nab_eval, noise_eval, skab_eval
    from gridmon.cli.eval_maintenance import maintenance_eval

    commands = (("maintenance", maintenance_eval), ("nab", nab_eval), ("noise", noise_eval), ("skab", skab_eval))
    for name, command in commands:
        if name not in eval_group.commands:
            eval_group.add_command(command, name=name)
    group.add_command(eval_group)
