"""Storage side of anomaly detection: frames of readings from the database, device limits,
model versions and retraining. The detectors themselves (`gridmon.detection`) stay pure."""
