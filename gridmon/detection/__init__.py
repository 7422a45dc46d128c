"""Anomaly detection: pure functions over frames of readings (no I/O)."""
