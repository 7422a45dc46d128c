"""The API's routers, one per area; `gridmon.api.app.create_app` mounts them all."""
