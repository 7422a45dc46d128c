"""The streaming anomaly detector: per-device state carried from reading to reading.

`params.py` (the one configuration), `state.py` (what a device carries), `calib.py`
(self-calibrated thresholds), `kernel.py` (the compiled loop), `forest.py` (IsolationForest on
context features), `run.py` (`run_device`), `episodes.py` (alarm runs → alert episodes).
"""
