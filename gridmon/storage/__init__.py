"""Repositories: every SQL statement of gridmon, one module per table or aggregate.

`db` (engine, connections, server-level statements), `readings` (COPY write path), `frames`
(readings as detector frames), `series` (readings for the API), `maintenance_reads` (readings for
maintenance), `dead_letters`, `devices` (with profiles and limits), `alerts` (with
`alert_readings`), `silences` (the staleness check's reads), `outbox`, `model_versions`,
`predictions`, `scan_state`, `fleet` (the dashboard's summary). Functions take an open psycopg
connection; the caller (a job or a route) owns the transaction. Storage imports only
`gridmon.config` and `gridmon.domain`.
"""
