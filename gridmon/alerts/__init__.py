"""Alerts: episodes of anomalous readings in the `alerts` table, published to Redis via an outbox.

- `tracker.apply_findings`: detector findings → alerts (open / escalate / resolve).
- `store`: the table and the API's operations (`acknowledge`, `resolve`, `get_alert`).
- `publisher`: outbox → `alerts:anomalies` list, channel and stream.
- `stale`: `no_data` alerts for silent devices.
- `hook`: the safety-limit check on the ingest path.
- `message.AnomalyAlert`: the published message.
"""
