"""The dashboard's files: its own HTML/CSS/JS in `static/`, and the plotly.js bundle that the
`plotly` wheel ships (served from site-packages, never copied into the repository or fetched
from a CDN — production networks have no internet either).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.metadata
import importlib.resources
import re
from dataclasses import dataclass
from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]*\.(html|js|css|svg)$"
_NAME = re.compile(NAME_PATTERN)


def static_file(name: str) -> Path | None:
    """The file `name` of the dashboard, or None. Only plain names of the known types: no paths."""
    if not _NAME.match(name):
        return None
    path = STATIC_DIR / name
    return path if path.is_file() else None


def media_type(path: Path) -> str:
    return MEDIA_TYPES[path.suffix]


class ChartLibraryMissing(RuntimeError):
    """The `plotly` package (which carries plotly.js) is not installed."""


@dataclass(frozen=True)
class Bundle:
    """A JavaScript bundle kept in memory, plain and gzip-compressed, with its ETag."""

    plain: bytes
    gzipped: bytes
    etag: str
    version: str


@functools.lru_cache(maxsize=1)
def plotly_bundle() -> Bundle:
    """plotly.js from the installed `plotly` wheel (`plotly/package_data/plotly.min.js`).

    Read and compressed once per process: about 4.8 MB plain, 1.4 MB gzipped.
    """
    try:
        resource = importlib.resources.files("plotly") / "package_data" / "plotly.min.js"
        plain = resource.read_bytes()
        version = importlib.metadata.version("plotly")
    except (ModuleNotFoundError, FileNotFoundError, importlib.metadata.PackageNotFoundError) as exc:
        raise ChartLibraryMissing(
            "plotly.js not found: install the pinned `plotly` package (requirements.txt)"
        ) from exc
    etag = '"plotly-' + version + "-" + hashlib.sha256(plain).hexdigest()[:16] + '"'
    return Bundle(plain=plain, gzipped=gzip.compress(plain, compresslevel=6, mtime=0), etag=etag, version=version)
