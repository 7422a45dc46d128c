"""The MQTT → Celery bridge: decode, validate, micro-batch, hand off, then acknowledge."""
