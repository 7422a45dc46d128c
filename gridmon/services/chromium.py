"""The local Chromium that the dashboard's browser test and `scripts/screenshots.py` drive.

Debian's package (`apt-get install -y chromium`; `.ci/run` installs it) or the binary named by
`GRIDMON_CHROMIUM`. Playwright's own browser downloads are not used: the machines this runs on
install from Debian and PyPI only.
"""

from __future__ import annotations

import os
import shutil

# Without the background-networking flags, Chromium keeps dialling out, which a closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
NOT_FOUND = (
    "Chromium not found: install Debian's package (`apt-get update && apt-get install -y chromium`; "
    ".ci/run does) or set GRIDMON_CHROMIUM to its path"
)


def find_chromium() -> str | None:
    """The Chromium binary to launch, or None when there is none."""
    return os.environ.get("GRIDMON_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
