"""The admin/operator HTTP API (FastAPI). `create_app()` builds it; `gridmon api` serves it."""

from gridmon.api.app import create_app

__all__ = ["create_app"]
