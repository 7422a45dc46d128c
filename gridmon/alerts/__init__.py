"""Alert rules: how detector findings and silent devices become alert episodes.

- `tracker.apply_findings`: detector findings → alerts (open / escalate / resolve).
- `stale.check_stale`: `no_data` alerts for silent devices.

Both run inside the caller's transaction (the ingest and scan jobs) and decide which statements
of `gridmon.storage.alerts` to run; the message consumers receive is `gridmon.domain.alerts`.
"""
