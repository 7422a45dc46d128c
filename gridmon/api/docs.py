"""`/docs`: Swagger UI from the installed `swagger-ui-bundle-v2` wheel, never from a CDN.

FastAPI's default page loads Swagger UI's script and stylesheet from a public CDN, with an inline
script and no Content-Security-Policy: a compromised CDN, or a network without internet, and the
operator's page breaks or runs someone else's code with the operator's token in it. Here the
assets are served from site-packages (read once per process) under `/docs/assets/`, the start-up
code is a file of ours, and the page carries the same kind of CSP as the dashboard:
scripts from this origin only. ReDoc (`/redoc`, also CDN-loaded) is not offered.
"""

from __future__ import annotations

import functools
from importlib.resources.abc import Traversable

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse, Response

router = APIRouter(include_in_schema=False)

# Swagger UI sets style attributes at run time, hence 'unsafe-inline' for styles only.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"
)
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
}
_INIT_JS = b"""window.addEventListener("load", () => {
  window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true });
});
"""
_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>gridmon API</title>
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script src="/docs/assets/init.js"></script>
</body>
</html>
"""


class DocsAssetsMissing(RuntimeError):
    """The `swagger-ui-bundle-v2` package is not installed."""


def _bundle_dir() -> Traversable:
    try:
        import swagger_ui_bundle
    except ModuleNotFoundError as exc:
        raise DocsAssetsMissing("Swagger UI assets missing: install `swagger-ui-bundle-v2` (requirements.txt)") from exc
    return swagger_ui_bundle.swagger_ui_path


@functools.lru_cache(maxsize=len(ASSETS))
def asset_bytes(name: str) -> bytes:
    """One of the Swagger UI files, read once per process."""
    return (_bundle_dir() / name).read_bytes()


@router.get("/docs")
def docs_page() -> HTMLResponse:
    return HTMLResponse(_PAGE, headers={**HEADERS, "Cache-Control": "no-cache"})


@router.get("/docs/assets/{name}")
def docs_asset(name: str) -> Response:
    if name == "init.js":
        return Response(_INIT_JS, media_type=ASSETS["swagger-ui-bundle.js"], headers=HEADERS)
    media = ASSETS.get(name)
    if media is None:
        raise HTTPException(status_code=404, detail=f"no docs asset {name[:64]!r}")
    return Response(asset_bytes(name), media_type=media, headers={**HEADERS, "Cache-Control": "public, max-age=86400"})
