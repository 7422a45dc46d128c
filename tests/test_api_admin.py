"""API: admin enqueue endpoints and task status, model versions, maintenance predictions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from psycopg.types.json import Jsonb

from gridmon.celery import app as celery_app
from gridmon.maintenance.model import MaintenancePrediction
from gridmon.storage.predictions import insert_prediction
from tests.api_support import ADMIN, ClientFactory, add_readings, bearer, make_client

__all__ = ["make_client"]


@pytest.mark.parametrize(
    ("path", "task", "queue"),
    [
        ("/admin/retrain", "workers.training.retrain", "ml"),
        ("/admin/scan", "workers.scanning.scan", "scan"),
        ("/admin/predict", "workers.maintenance.predict", "maintenance"),
    ],
)
def test_enqueue_puts_the_task_on_its_queue(redis_client, make_client: ClientFactory, path, task, queue) -> None:
    response = make_client().post(path, headers=bearer(ADMIN))
    assert response.status_code == 202
    body = response.json()
    assert body["task"] == task and body["status_url"] == f"/admin/tasks/{body['task_id']}"
    messages = [json.loads(raw) for raw in redis_client.lrange(queue, 0, -1)]
    assert [(m["headers"]["task"], m["headers"]["id"]) for m in messages] == [(task, body["task_id"])]


def test_predict_for_one_device_passes_it_to_the_task(redis_client, make_client: ClientFactory) -> None:
    client = make_client()
    response = client.post("/admin/predict", json={"device_id": "tx-1"}, headers=bearer(ADMIN))
    assert response.status_code == 202
    (raw,) = redis_client.lrange("maintenance", 0, -1)
    message = json.loads(raw)
    assert message["headers"]["kwargsrepr"] == "{'device_id': 'tx-1'}"
    assert client.post("/admin/predict", json={"device_id": "bad id"}, headers=bearer(ADMIN)).status_code == 422


def test_task_status_follows_the_result_backend(redis_client, make_client: ClientFactory) -> None:
    client = make_client()
    task_id = client.post("/admin/retrain", headers=bearer(ADMIN)).json()["task_id"]
    pending = client.get(f"/admin/tasks/{task_id}", headers=bearer(ADMIN)).json()
    assert pending["state"] == "PENDING" and pending["ready"] is False and pending["result"] is None

    celery_app.backend.store_result(task_id, {"model_id": 7, "n_samples": 1200}, "SUCCESS")
    done = client.get(f"/admin/tasks/{task_id}", headers=bearer(ADMIN)).json()
    assert done["state"] == "SUCCESS" and done["ready"] is True
    assert done["result"] == {"model_id": 7, "n_samples": 1200} and done["date_done"] is not None

    failed_id = "0b8f1c2e-3d4a-4b5c-8d6e-7f8091a2b3c4"
    celery_app.backend.mark_as_failure(failed_id, ValueError("too little data"))
    failed = client.get(f"/admin/tasks/{failed_id}", headers=bearer(ADMIN)).json()
    assert failed["state"] == "FAILURE" and failed["error"] == "ValueError: too little data"

    assert client.get("/admin/tasks/not-a-uuid", headers=bearer(ADMIN)).status_code == 422


def _model(db, note: str, status: str = "inactive") -> int:
    row = db.execute(
        """INSERT INTO model_versions (n_samples, features, threshold, params, metrics, status, artifact_path, note)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
        (
            1000,
            Jsonb(["voltage", "current"]),
            0.61,
            Jsonb({"n_estimators": 100}),
            Jsonb({"fit_s": 1.5}),
            status,
            f"/models/{note}.joblib",
            note,
        ),
    ).fetchone()
    return int(row[0])


def test_models_list_and_activate(db, make_client: ClientFactory) -> None:
    first = _model(db, "first", status="active")
    second = _model(db, "second")
    client = make_client()
    listed = client.get("/models").json()
    assert [(m["id"], m["status"]) for m in listed] == [(second, "inactive"), (first, "active")]
    assert listed[0]["features"] == ["voltage", "current"] and listed[0]["threshold"] == 0.61

    activated = client.post(f"/models/{second}/activate", headers=bearer(ADMIN))
    assert activated.status_code == 200 and activated.json()["status"] == "active"
    assert activated.json()["activated_at"] is not None
    states = dict(db.execute("SELECT id, status FROM model_versions").fetchall())
    assert states == {first: "inactive", second: "active"}
    assert client.post("/models/9999/activate", headers=bearer(ADMIN)).status_code == 404
    assert client.get("/models", params={"limit": 1}).json()[0]["id"] == second


def _prediction(device: str, level: str, score: float, hours_ago: float = 0.0) -> MaintenancePrediction:
    now = datetime.now(UTC) - timedelta(hours=hours_ago)
    failure = now + timedelta(days=30)
    return MaintenancePrediction(
        device_id=device,
        predicted_failure_date=failure,
        interval=(failure - timedelta(days=3), failure + timedelta(days=4)),
        confidence=0.8,
        risk_score=score,
        risk_level=level,
        risk_factors=[{"name": "temperature_trend", "points": score}],
        recommended_actions=["check cooling"],
        computed_at=now,
        inputs={"window_days": 7},
    )


def test_predictions_latest_per_device(db, make_client: ClientFactory) -> None:
    add_readings(db, "quiet", [(datetime.now(UTC), 230.0, 4.0, 40.0)])
    with db.transaction():
        insert_prediction(db, _prediction("tx-1", "low", 10.0, hours_ago=2))
        insert_prediction(db, _prediction("tx-1", "high", 70.0))
        insert_prediction(db, _prediction("tx-2", "medium", 40.0))
        insert_prediction(db, _prediction("tx-3", "critical", 90.0))
    client = make_client()

    page = client.get("/predictions", params={"limit": 2}).json()
    assert [(p["device_id"], p["risk_level"]) for p in page["items"]] == [("tx-1", "high"), ("tx-2", "medium")]
    rest = client.get("/predictions", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert [p["device_id"] for p in rest["items"]] == ["tx-3"] and rest["next_cursor"] is None
    risky = client.get("/predictions", params={"risk_level": ["high", "critical"]}).json()
    assert [p["device_id"] for p in risky["items"]] == ["tx-1", "tx-3"]

    one = client.get("/devices/tx-1/prediction").json()
    assert one["risk_score"] == 70.0 and one["recommended_actions"] == ["check cooling"]
    assert len(one["interval"]) == 2
    no_prediction = client.get("/devices/quiet/prediction")
    assert no_prediction.status_code == 404 and "no prediction yet" in no_prediction.json()["detail"]
    assert client.get("/devices/ghost/prediction").status_code == 404

    # The device list shows the latest risk too.
    listed = {d["device_id"]: d for d in client.get("/devices").json()["items"]}
    assert listed["quiet"]["risk_level"] is None


def test_unreadable_body_is_400_not_422(db, make_client: ClientFactory) -> None:
    client = make_client()
    for body in (b"{not json", b"\xff\xfe"):
        response = client.post(
            "/admin/predict", content=body, headers={**bearer(ADMIN), "Content-Type": "application/json"}
        )
        assert response.status_code == 400, response.text
        assert response.json()["detail"] == "request body is not valid JSON"
