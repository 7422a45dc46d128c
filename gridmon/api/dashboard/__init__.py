"""The operator dashboard: plain HTML/CSS/JS pages (`static/`) served by the API at `/`, with live
updates over Server-Sent Events at `/live/events`. `router` is included by `gridmon.api.app`."""

from gridmon.api.dashboard.router import router

__all__ = ["router"]
