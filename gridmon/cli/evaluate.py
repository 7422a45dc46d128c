"""`gridmon eval`: detection quality on the simulator's catalogue or on labelled CSV files.

Without `--csv` it runs `gridmon.evaluation.catalogue`; with `--csv` (repeatable, globs
allowed) `gridmon.evaluation.csv_files`. A table goes first, and the last line printed is
always one JSON object. `gridmon eval maintenance`
scores failure-time prediction.
"""

from __future__ import annotations

import glob
import json
import sys
from pathlib import Path
from typing import Any

import click

_COLUMNS = ("precision", "recall", "f1", "median_delay_s", "false_alerts_per_device_day", "events", "episodes")


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def _table(rows: dict[str, dict[str, Any]]) -> str:
    header = f"{'':16}" + "".join(f"{c[:14]:>15}" for c in _COLUMNS)
    lines = [header]
    for name, row in rows.items():
        lines.append(f"{name:16}" + "".join(f"{_fmt(row.get(c)):>15}" for c in _COLUMNS))
    return "\n".join(lines)


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("precision", "recall", "f1", "false_alerts_per_device_day", "median_delay_s")
    return {k: row.get(k) for k in keys} | {k: v for k, v in row.items() if k not in keys}


def _expand(patterns: tuple[str, ...]) -> list[Path]:
    paths: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not matches:
            raise click.BadParameter(f"no file matches {pattern!r}", param_hint="--csv")
        paths.extend(Path(m) for m in matches)
    return paths


@click.group(name="eval", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print only the JSON line.")
@click.option("--devices", default=10, show_default=True, help="Devices with faults.")
@click.option("--fault-free", default=5, show_default=True, help="Extra devices without faults.")
@click.option("--hours", default=24.0, show_default=True, help="Simulated duration.")
@click.option("--interval", default=2.0, show_default=True, help="Seconds between readings.")
@click.option("--faults-per-day", default=4.0, show_default=True, help="Faults per faulty device and day.")
@click.option("--seed", default=0, show_default=True)
@click.option("--tolerance", default=30.0, show_default=True, help="Seconds around a truth window that still match.")
@click.option("--max-gap", default=60.0, show_default=True, help="Seconds of quiet that close an episode.")
@click.option("--no-per-kind", is_flag=True, help="Skip the per-kind runs (faster).")
@click.option("--csv", "csv_files", multiple=True, help="Labelled CSV file or glob (repeatable).")
@click.option("--time-col", default="timestamp", show_default=True)
@click.option("--map", "mapping", default=None, help="voltage=COL,current=COL,temperature=COL[,name=COL…]")
@click.option("--label-col", default="label", show_default=True)
@click.option("--sep", default=",", show_default=True)
@click.option("--train-rows", default=400, show_default=True, help="Leading rows per file used for training.")
@click.option("--no-safety", is_flag=True, help="Skip the grid safety limits (for non-grid equipment).")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Write timestamp,score,flag per row.")
@click.pass_context
def eval_group(
    ctx: click.Context,
    as_json: bool,
    devices: int,
    fault_free: int,
    hours: float,
    interval: float,
    faults_per_day: float,
    seed: int,
    tolerance: float,
    max_gap: float,
    no_per_kind: bool,
    csv_files: tuple[str, ...],
    time_col: str,
    mapping: str | None,
    label_col: str,
    sep: str,
    train_rows: int,
    no_safety: bool,
    out: Path | None,
) -> None:
    """Score detection: the simulator's fault catalogue, or labelled CSV files (--csv)."""
    if ctx.invoked_subcommand is not None:
        return
    if csv_files:
        if not mapping:
            raise click.UsageError("--csv needs --map")
        from gridmon.evaluation.csv_files import CsvSetup, evaluate_csv, parse_mapping

        try:
            setup = CsvSetup(
                time_col=time_col,
                mapping=parse_mapping(mapping),
                label_col=label_col,
                sep=sep,
                train_rows=train_rows,
                safety=not no_safety,
                tolerance_s=tolerance,
                max_gap_s=max_gap,
                out=out,
            )
            report = evaluate_csv(_expand(csv_files), setup)
        except (ValueError, OSError) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        if not as_json:
            for row in report["files"]:
                click.echo(f"{row['file']}: f1 {row['f1']:.3f} far {row['far']:.3f} mar {row['mar']:.3f}")
            p, e = report["pointwise"], report["events"]
            click.echo(f"point-wise (summed): f1 {p['f1']:.3f} far {p['far']:.3f} mar {p['mar']:.3f}")
            click.echo(f"events: precision {e['precision']:.3f} recall {e['recall']:.3f} f1 {e['f1']:.3f}")
        click.echo(json.dumps({"pointwise": report["pointwise"], "events": report["events"]}))
        return

    from gridmon.evaluation.catalogue import CatalogueSetup, evaluate_catalogue

    report = evaluate_catalogue(
        CatalogueSetup(
            devices=devices,
            fault_free_devices=fault_free,
            duration_s=hours * 3600.0,
            interval_s=interval,
            seed=seed,
            faults_per_device_day=faults_per_day,
            tolerance_s=tolerance,
            max_gap_s=max_gap,
            per_kind=not no_per_kind,
        )
    )
    if not as_json:
        rows = {"overall": report["overall"], **report["by_kind"], "baseline": report["baseline"]}
        click.echo(_table(rows))
    final = {
        "overall": _summary(report["overall"]),
        "by_kind": {k: _summary(v) for k, v in report["by_kind"].items()},
        "baseline": _summary(report["baseline"]),
        "setup": report["setup"],
        "forest": report["forest"],
    }
    click.echo(json.dumps(final))


def register(group: click.Group) -> None:
    """Mount `eval` and `eval maintenance` on the gridmon group."""
    from gridmon.cli.eval_maintenance import maintenance_eval

    if "maintenance" not in eval_group.commands:
        eval_group.add_command(maintenance_eval, name="maintenance")
    group.add_command(eval_group)
