"""Celery task modules, one per area. Thin: each task calls into `gridmon`."""
