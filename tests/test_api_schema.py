"""Schema fuzzing: schemathesis drives every operation of the OpenAPI document (examples,
boundary values, random and invalid inputs) and checks that the API never answers 500 and that
every response matches the documented status codes, content types and schemas.

Bounded: a few dozen generated cases per operation. `/ready` is left out (it waits on a Celery
ping by design and has no inputs to fuzz; `test_api_health` covers it).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from gridmon.api import create_app
from gridmon.config import Settings
from tests.api_support import ADMIN, READER, add_alert, add_readings, bearer

APP = create_app(Settings.model_validate({"admin_token": ADMIN, "read_token": READER}))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP).exclude(path="/ready")


@pytest.fixture(scope="module", autouse=True)
def known_data(migrated_database: str) -> None:
    """Some rows for the generated requests to find (the `examples` in the schema name them)."""
    with psycopg.connect(migrated_database, autocommit=True) as conn:
        conn.execute(
            "TRUNCATE sensor_readings, devices, dead_letters, alerts, model_versions, maintenance_predictions"
            " RESTART IDENTITY CASCADE"
        )
        now = datetime.now(UTC)
        add_readings(conn, "meter-1", [(now - timedelta(minutes=m), 230.0 + m, 4.0, 40.0) for m in range(30)])
        add_alert(conn, "meter-1", "voltage")


@schema.parametrize()
# derandomize: the same cases every run, so a failure reproduces. A random run once reported a
# "schema-violating request accepted" whose only invalid parts were never sent: the Authorization
# header (replaced by the valid one below) and a `start` absent from the request it sent.
@settings(max_examples=25, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case: schemathesis.Case) -> None:
    # Left out: "valid data must be accepted". Some schema-valid requests are rightly 422 — a
    # cursor this API never issued, start after end, a range over the documented limits.
    case.call_and_validate(headers=bearer(ADMIN), excluded_checks=[positive_data_acceptance])
