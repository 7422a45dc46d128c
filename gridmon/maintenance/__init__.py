"""Predictive maintenance: temperature trend, time to the critical limit, insulation aging, risk.

Pure analysis (`trend`, `aging`, `factors`, `risk`, `predict`) over the bucket frame of `buckets`;
storage and notification (`storage`, `notify`); the run (`service`); the evaluation against
simulated failures (`evaluation`, `cli`). Method and figures: docs/maintenance.md.

Only the plain data types are imported here: beat_schedule imports this package, and beat (and
every process that loads the Celery app) should not pay for numpy, pandas and scipy.
"""

from gridmon.maintenance.model import DeviceProfile, MaintenanceConfig, MaintenancePrediction

__all__ = ["DeviceProfile", "MaintenanceConfig", "MaintenancePrediction"]
