"""Evaluations and baselines: how well detection and maintenance do on data whose truth is known.

- `catalogue`: `gridmon eval` on the simulator's fault catalogue, against `original`, the
  original design's detector.
- `csv_files`: `gridmon eval --csv` on labelled CSV files (e.g. SKAB).
- `scoring`: event-level and point-wise scores against ground truth.
- `maintenance`: `gridmon eval maintenance` on simulated degrading devices, against
  `maintenance_baseline`, the original design's predictor.

Evaluations call the same pure functions the jobs call (`gridmon.detection`, `gridmon.maintenance`)
on data from `gridmon.simulator`; they touch no database and no Redis. The commands that print
them are in `gridmon.cli`.
"""
