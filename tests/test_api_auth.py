"""API access control: the token matrix (none / read / admin / wrong) for every route class."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.api_support import ADMIN, READER, WRONG, ClientFactory, bearer, make_client

__all__ = ["make_client"]

TASK = "0b8f1c2e-3d4a-4b5c-8d6e-7f8091a2b3c4"
READ_ROUTES = [
    ("GET", "/devices"),
    ("GET", "/devices/dev-1"),
    ("GET", "/devices/dev-1/readings"),
    ("GET", "/devices/dev-1/prediction"),
    ("GET", "/alerts"),
    ("GET", "/alerts/1"),
    ("GET", "/models"),
    ("GET", "/predictions"),
]
ADMIN_ROUTES = [
    ("PUT", "/devices/dev-1"),
    ("POST", "/alerts/1/ack"),
    ("POST", "/alerts/1/resolve"),
    ("GET", "/dead-letters"),
    ("POST", "/dead-letters/1/replay"),
    ("POST", "/admin/retrain"),
    ("POST", "/admin/scan"),
    ("POST", "/admin/predict"),
    ("GET", f"/admin/tasks/{TASK}"),
    ("POST", "/models/1/activate"),
]
OPEN_ROUTES = [("GET", "/health"), ("GET", "/metrics")]


def _call(client: TestClient, method: str, path: str, token: str | None):
    headers = bearer(token) if token else {}
    body = {"kind": "meter"} if method == "PUT" else None
    return client.request(method, path, headers=headers, json=body)


def _unauthorised(response, error: str | None = None) -> None:
    assert response.status_code == 401, response.text
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer")
    if error:
        assert f'error="{error}"' in challenge
    assert response.json()["detail"]


def _allowed(response) -> None:
    # Past the gate: whatever the route answers for an empty database, never an auth error or a crash.
    assert response.status_code not in (401, 403, 503), response.text
    assert response.status_code < 500, response.text


@pytest.mark.parametrize(("method", "path"), READ_ROUTES)
def test_read_routes_with_read_token_configured(db, redis_client, make_client: ClientFactory, method, path) -> None:
    client = make_client(admin=ADMIN, read=READER)
    _unauthorised(_call(client, method, path, None))
    _unauthorised(_call(client, method, path, WRONG), "invalid_token")
    _allowed(_call(client, method, path, READER))
    _allowed(_call(client, method, path, ADMIN))
    # Any other scheme is no bearer token at all.
    basic = client.request(method, path, headers={"Authorization": f"Basic {READER}"})
    _unauthorised(basic)


@pytest.mark.parametrize(("method", "path"), READ_ROUTES)
def test_read_routes_are_open_without_read_token(db, redis_client, make_client: ClientFactory, method, path) -> None:
    client = make_client(admin=ADMIN, read=None)
    _allowed(_call(client, method, path, None))
    _allowed(_call(client, method, path, WRONG))


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
def test_admin_routes_need_the_admin_token(db, redis_client, make_client: ClientFactory, method, path) -> None:
    client = make_client(admin=ADMIN, read=READER)
    _unauthorised(_call(client, method, path, None))
    _unauthorised(_call(client, method, path, WRONG), "invalid_token")
    forbidden = _call(client, method, path, READER)
    assert forbidden.status_code == 403 and "admin token" in forbidden.json()["detail"]
    _allowed(_call(client, method, path, ADMIN))


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
def test_admin_routes_closed_when_no_admin_token(db, make_client: ClientFactory, method, path) -> None:
    client = make_client(admin=None, read=None)
    for token in (None, WRONG, READER):
        response = _call(client, method, path, token)
        assert response.status_code == 503
        assert response.json()["detail"].startswith("admin token not configured")


@pytest.mark.parametrize(("method", "path"), OPEN_ROUTES)
def test_probe_routes_are_open(db, make_client: ClientFactory, method, path) -> None:
    client = make_client(admin=ADMIN, read=READER)
    assert _call(client, method, path, None).status_code == 200
    assert _call(client, method, path, WRONG).status_code == 200


def test_ready_is_open(db, redis_client, make_client: ClientFactory) -> None:
    client = make_client(admin=ADMIN, read=READER)
    assert client.get("/ready").status_code in (200, 503)


def test_short_or_placeholder_tokens_are_refused_at_startup(make_client: ClientFactory) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        make_client(admin="short")
    with pytest.raises(ValidationError):
        make_client(admin=ADMIN, read="changeme")
