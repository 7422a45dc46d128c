"""gridmon: power-grid telemetry, anomaly detection and predictive maintenance.

The Celery application lives in `gridmon.celery` (`celery -A gridmon worker` finds it there).
"""

__version__ = "0.1.0"
