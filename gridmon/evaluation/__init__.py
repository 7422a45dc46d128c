"""Evaluations and baselines: how well detection and maintenance do on data whose truth is known.

- `adapter`: the one door to the detector (`detect_series`: a device's series in, per-row flags
  and scores out). Every detection evaluation below goes through it.
- `catalogue`: `gridmon eval` on the simulator's fault catalogue, against the null,
  flag-everything and `original` (the original design's detector) rows.
- `csv_files`: `gridmon eval --csv` on labelled CSV files; `alarm_rate`: `--no-label`.
- `nab_score`, `nab`: `gridmon eval nab` (NAB's scoring, written from its published method).
- `skab`: `gridmon eval skab` (SKAB's point-wise and changepoint protocol).
- `scoring`: alarms from flags, event-level and alarm-time figures, point-wise figures.
- `maintenance`: `gridmon eval maintenance` on simulated degrading devices, against
  `maintenance_baseline`, the original design's predictor; `maintenance_real`: `--csv`, a real
  series replayed day by day against persistence and seasonal-naive forecasts.

Evaluations call the same pure functions the jobs call (`gridmon.detection`, `gridmon.maintenance`)
on data from `gridmon.simulator` or files; they touch no database and no Redis. The commands that
print them are in `gridmon.cli` (`evaluate`, `eval_bench`, `eval_maintenance`).
"""
