"""Units of work, one module each: `ingest`, `scan`, `retrain`, `predict`, `publish`.

A job opens its transactions (`gridmon.storage.db.connection`), calls repositories
(`gridmon.storage`) and pure functions (`gridmon.detection`, `gridmon.maintenance`, the alert rules
in `gridmon.alerts`), and returns a report dataclass. Celery tasks (`workers/`) are one job call
plus task options; tests and the CLI call the same functions. Helpers shared by jobs: `limits`
(safety limits as configured) and `models` (forest artifacts, the active model handle).
"""
