"""API limits (issue 13): bodies refused before they are read, bounded metric labels, cursors,
statement timeouts per role, a readings budget, /predictions by index, /ready cached and
discreet, local Swagger UI with a CSP, the dashboard's session cookie."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gridmon.api import create_app
from gridmon.config import Settings
from gridmon.domain.maintenance import MaintenancePrediction
from gridmon.storage import db as storage_db
from gridmon.storage.predictions import insert_prediction
from tests.api_support import ADMIN, READER, ClientFactory, add_readings, bearer, make_client
from tests.conftest import TEST_REDIS_URL
from tests.test_dashboard_live import ServerThread

__all__ = ["make_client"]


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


# --- bodies -----------------------------------------------------------------------------------


def test_a_body_is_not_read_before_the_admin_token(db, make_client: ClientFactory) -> None:
    client = make_client()
    pulled = 0

    def body() -> Iterator[bytes]:
        nonlocal pulled
        for _ in range(10_000):  # 10 MB, if anyone reads it
            pulled += 1
            yield b" " * 1024

    response = client.put("/devices/dev-1", content=body(), headers={"Content-Type": "application/json"})
    assert response.status_code == 401
    assert pulled <= 1  # nothing (or the first chunk the transport hands over unasked) was read
    reader = client.put("/devices/dev-1", content=b'{"kind": "meter"}', headers=bearer(READER))
    assert reader.status_code in (401, 403)


def test_a_declared_oversized_body_is_refused_before_it_is_sent(db) -> None:
    settings = Settings.model_validate({"admin_token": ADMIN, "redis_url": TEST_REDIS_URL})
    with ServerThread(create_app(settings)) as server, socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.settimeout(10)
        # Headers of a 150 MB upload, and not one byte of it: the answer must not wait for the body.
        sock.sendall(
            b"PUT /devices/dev-1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 157286400\r\n\r\n"
        )
        head = _answer(sock)
    assert head.startswith("HTTP/1.1 413"), head
    assert "GRIDMON_API_MAX_BODY_BYTES" in head


def _answer(sock: socket.socket) -> str:
    """What the server sent until it closed the connection (or went quiet for the timeout)."""
    answer = b""
    try:
        while chunk := sock.recv(4096):
            answer += chunk
    except TimeoutError:
        pass
    return answer.decode("latin-1")


def test_a_chunked_body_is_read_only_up_to_the_limit(db) -> None:
    settings = Settings.model_validate(
        {"admin_token": ADMIN, "redis_url": TEST_REDIS_URL, "api_max_body_bytes": 2048}
    )
    with ServerThread(create_app(settings)) as server, socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.settimeout(10)
        sock.sendall(
            b"PUT /devices/dev-1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {ADMIN}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        for _ in range(3):  # 3 KB of a body that never ends: the answer cannot wait for its end
            sock.sendall(b"400\r\n" + b" " * 1024 + b"\r\n")
        head = _answer(sock)
    assert head.startswith("HTTP/1.1 413"), head
    assert "2048" in head


def test_a_small_body_with_the_admin_token_reaches_the_route(db, make_client: ClientFactory) -> None:
    client = make_client(GRIDMON_API_MAX_BODY_BYTES="2048")
    assert client.put("/devices/nobody", json={"kind": "meter"}, headers=bearer(ADMIN)).status_code == 404
    too_big = client.put("/devices/nobody", content=b" " * 4096, headers=bearer(ADMIN))
    assert too_big.status_code == 413


# --- metrics, cursors, ids --------------------------------------------------------------------


def test_metric_labels_come_from_fixed_sets(db, make_client: ClientFactory) -> None:
    client = make_client()
    for k in range(50):
        client.request(f"M{k:03d}" + "X" * 4000, "/health")
        client.get(f"/no/such/path/{k}")
    text = client.get("/metrics").text
    methods, routes = set(), set()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            methods.add(sample.labels.get("method"))
            routes.add(sample.labels.get("route"))
    assert methods - {None} <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}
    assert "other" in methods
    assert not any(r and "/no/such" in r for r in routes) and "unmatched" in routes
    assert len(text) < 100_000


def test_a_nul_in_a_cursor_is_a_400(db, make_client: ClientFactory) -> None:
    client = make_client()
    response = client.get("/devices", params={"cursor": "WyJcdTAwMDAiXQ"})  # ["\u0000"]
    assert response.status_code == 400 and "cursor" in response.json()["detail"]


@pytest.mark.parametrize("path", ["/devices/%2E", "/devices/%2E%2E", "/devices/%2E%2E/readings"])
def test_dot_device_ids_are_refused(db, make_client: ClientFactory, path: str) -> None:
    assert make_client().get(path).status_code == 422


# --- database work ----------------------------------------------------------------------------


def test_statement_timeouts_per_role(migrated_database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from gridmon.config import get_settings

    settings = get_settings()
    monkeypatch.setattr(settings, "api_statement_timeout_s", 2.0)
    monkeypatch.setattr(settings, "job_statement_timeout_s", 120.0)
    storage_db.dispose_engine()
    try:
        with storage_db.connection() as conn:
            job = conn.execute("SHOW statement_timeout").fetchone()
        with storage_db.role(storage_db.API), storage_db.connection() as conn:
            api = conn.execute("SHOW statement_timeout").fetchone()
    finally:
        storage_db.dispose_engine()
    assert (api, job) == (("2s",), ("2min",))


def test_a_pathological_request_is_cut_by_its_timeout_while_others_are_served(db: psycopg.Connection) -> None:
    now = _now()
    add_readings(db, "dev-locked", [(now - timedelta(seconds=5), 230.0, 4.0, 35.0)])
    add_readings(db, "dev-free", [(now - timedelta(seconds=5), 230.0, 4.0, 35.0)])
    settings = Settings.model_validate(
        {"admin_token": ADMIN, "redis_url": TEST_REDIS_URL, "api_statement_timeout_s": 1.0}
    )
    storage_db.dispose_engine()
    release = threading.Event()
    locked = threading.Event()

    def hold_lock() -> None:  # another session keeps the device row locked for up to a minute
        with psycopg.connect(db.info.dsn) as other:
            other.execute("SELECT 1 FROM devices WHERE device_id = 'dev-locked' FOR UPDATE")
            locked.set()
            release.wait(60)

    holder = threading.Thread(target=hold_lock, daemon=True)
    holder.start()
    assert locked.wait(10)
    outcome: dict[str, Any] = {}
    try:
        with ServerThread(create_app(settings)) as server, httpx.Client(base_url=server.url, timeout=30) as client:

            def pathological() -> None:
                outcome["response"] = client.put("/devices/dev-locked", json={"kind": "meter"}, headers=bearer(ADMIN))
                outcome["lock_still_held"] = not release.is_set()

            slow = threading.Thread(target=pathological)
            slow.start()
            served = [client.get(path).status_code for path in ("/health", "/devices", "/devices/dev-free") * 3]
            slow.join(30)
    finally:
        release.set()
        holder.join(10)
        storage_db.dispose_engine()
    assert served == [200] * 9
    response = outcome["response"]
    assert response.status_code == 503, response.text
    assert "GRIDMON_API_STATEMENT_TIMEOUT_S" in response.json()["detail"]
    assert outcome["lock_still_held"]  # the timeout ended it, not the lock going away


def test_a_readings_range_beyond_the_budget_is_a_400_naming_the_limit(db, make_client: ClientFactory) -> None:
    end = _now()
    add_readings(db, "dev-1hz", [(end - timedelta(seconds=s), 230.0, 4.0, 35.0) for s in range(1, 601)])
    client = make_client()
    start = end - timedelta(days=3650)
    response = client.get(
        "/devices/dev-1hz/readings", params={"start": start.isoformat(), "end": end.isoformat(), "bucket": "1d"}
    )
    assert response.status_code == 400
    assert "GRIDMON_API_MAX_ROWS_PER_REQUEST" in response.json()["detail"]
    hour = client.get(
        "/devices/dev-1hz/readings",
        params={"start": (end - timedelta(hours=1)).isoformat(), "end": end.isoformat(), "bucket": "1m"},
    )
    assert hour.status_code == 200 and sum(b["count"] for b in hour.json()["buckets"]) == 600


def _prediction(device: str, at: datetime, level: str) -> MaintenancePrediction:
    return MaintenancePrediction(
        device_id=device,
        predicted_failure_date=None,
        interval=None,
        confidence=0.5,
        risk_score=10.0,
        risk_level=level,
        risk_factors=[],
        recommended_actions=[],
        computed_at=at,
        inputs={},
    )


def test_predictions_are_served_from_the_latest_rows_by_index(db: psycopg.Connection, make_client: ClientFactory) -> None:
    from gridmon.storage.predictions import latest_predictions_page

    now = _now()
    levels = ("low", "medium", "high", "critical")
    with db.transaction():
        for d in range(30):
            for k in range(40):  # a long history per device; the newest decides
                insert_prediction(db, _prediction(f"dev-{d:02d}", now - timedelta(hours=40 - k), levels[(d + k) % 4]))
    db.execute("ANALYZE maintenance_predictions")
    with db.transaction():
        page = latest_predictions_page(db, after="dev-04", risk_levels=None, limit=5)
        read = db.execute(
            "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables"
            " WHERE relname = 'maintenance_predictions'"
        ).fetchone()
    assert [p.device_id for p in page] == ["dev-05", "dev-06", "dev-07", "dev-08", "dev-09"]
    assert all(p.computed_at == now - timedelta(hours=1) for p in page)
    assert read is not None and read[0] <= 40, read  # ~2 rows per device listed, not 1,200
    client = make_client()
    critical = client.get("/predictions", params={"risk_level": "critical", "limit": 500}).json()["items"]
    expected = {f"dev-{d:02d}" for d in range(30) if levels[(d + 39) % 4] == "critical"}
    assert {p["device_id"] for p in critical} == expected


# --- /ready, /docs, sessions -----------------------------------------------------------------


def test_ready_is_cached_and_its_details_need_a_token(db, make_client: ClientFactory, monkeypatch) -> None:
    from gridmon.api.routes import health

    rounds = 0
    real = health.run_checks

    def counted(settings: Settings) -> Any:
        nonlocal rounds
        rounds += 1
        return real(settings)

    monkeypatch.setattr(health, "run_checks", counted)
    client = make_client(GRIDMON_READY_CACHE_S="3600")
    anonymous = client.get("/ready").json()
    assert all(set(check) <= {"ok", "detail", "age_s"} and check.get("detail") is None for check in anonymous["checks"].values())
    assert "127.0.0.1" not in str(anonymous)
    detailed = client.get("/ready", headers=bearer(ADMIN)).json()
    assert "127.0.0.1" in detailed["checks"]["database"]["detail"]
    for _ in range(5):
        client.get("/ready")
    assert rounds == 1


def test_docs_are_served_locally_with_a_csp(make_client: ClientFactory) -> None:
    import swagger_ui_bundle

    client = make_client()
    page = client.get("/docs")
    assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    assert "http" not in page.text and "<script>" not in page.text  # no CDN, no inline script
    bundle = client.get("/docs/assets/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and bundle.headers["content-security-policy"]
    assert bundle.content == (swagger_ui_bundle.swagger_ui_path / "swagger-ui-bundle.js").read_bytes()
    assert client.get("/docs/assets/init.js").status_code == 200
    assert client.get("/docs/assets/../openapi.json").status_code == 404
    assert client.get("/redoc").status_code == 404


def test_the_session_cookie_stands_in_for_the_token(db, make_client: ClientFactory) -> None:
    client = make_client(read=READER)
    add_readings(db, "dev-s", [(_now() - timedelta(seconds=5), 230.0, 4.0, 35.0)])
    assert client.get("/devices").status_code == 401
    started = client.post("/ui/session", headers=bearer(ADMIN))
    assert started.status_code == 200 and started.json()["role"] == "admin"
    assert ADMIN not in started.headers["set-cookie"]
    assert client.get("/devices").status_code == 200
    assert client.get("/ui/session").json()["role"] == "admin"
    # A write with the cookie needs the header no cross-site form can send.
    assert client.put("/devices/dev-s", json={"kind": "meter"}).status_code == 403
    assert client.put("/devices/dev-s", json={"kind": "meter"}, headers={"X-Requested-With": "gridmon"}).status_code == 200
    assert client.delete("/ui/session").status_code == 204
    client.cookies.clear()
    assert client.get("/devices").status_code == 401
    # A session made with a token that was since rotated is worth nothing.
    client.post("/ui/session", headers=bearer(READER))
    rotated = make_client(read="another-read-token-0123456789")
    rotated.cookies = client.cookies
    assert rotated.get("/devices").status_code == 401


def test_old_sessions_expire(make_client: ClientFactory) -> None:
    from gridmon.api import session

    settings = Settings.model_validate({"admin_token": ADMIN, "read_token": READER})
    value, expires = session.issue(settings, "read", now=time.time() - 10 * 86400)
    assert expires < time.time() and session.verify(settings, value) is None
    assert session.verify(settings, value.replace("read.", "admin.", 1)) is None  # role is signed


def test_replaying_a_year_0_dead_letter_is_refused_not_stored(db: psycopg.Connection, make_client: ClientFactory) -> None:
    import orjson

    from gridmon.domain.readings import dead_letter
    from gridmon.storage.dead_letters import write_dead_letters

    doc = {"timestamp": "0001-01-01T00:00:00+14:00", "voltage": 230.0, "current": 4.0, "temperature": 35.0}
    with db.cursor() as cur:
        write_dead_letters(
            cur, [dead_letter(time.time(), "grid/sensors/dev-0", orjson.dumps(doc), "bad_timestamp", "t", keep_bytes=8192)]
        )
    [letter_id] = [row[0] for row in db.execute("SELECT id FROM dead_letters")]
    response = make_client().post(f"/dead-letters/{letter_id}/replay", headers=bearer(ADMIN))
    assert response.status_code == 422 and response.json()["reason"] == "bad_timestamp"
    assert db.execute("SELECT count(*) FROM sensor_readings").fetchone() == (0,)
    assert make_client().get("/devices").status_code == 200
