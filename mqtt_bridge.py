"""MQTT → Celery bridge entry point: `python mqtt_bridge.py [--client-id ID]` (or `gridmon bridge`).

All behaviour lives in `gridmon.bridge.service`; see there.
"""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError

from gridmon.config import settings_error
from gridmon.logsetup import configure_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="gridmon MQTT → Celery bridge")
    parser.add_argument("--client-id", help="MQTT client id (default GRIDMON_MQTT_CLIENT_ID); one per bridge")
    args = parser.parse_args(argv)
    try:
        configure_logging()
    except ValidationError as exc:  # a bad GRIDMON_* value: say which, not a traceback
        sys.stderr.write(settings_error(exc) + "\n")
        return 2
    from gridmon.bridge.service import run

    return run(args.client_id)


if __name__ == "__main__":
    sys.exit(main())
