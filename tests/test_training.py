"""Model lifecycle against the real database: retrain → active forest set → picked up by the scan
without a restart; too little data keeps the previous version; roll back by activating."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridmon.config import get_settings
from gridmon.jobs.retrain import retrain
from gridmon.jobs.scan import run_scan
from gridmon.storage.model_versions import activate_model, list_models
from tests.alerts_support import base_time, fresh_alerting, normal_rows, store, with_voltage

__all__ = ["fresh_alerting"]
pytestmark = pytest.mark.usefixtures("fresh_alerting")

N = 400  # readings per device: the replay keeps rows after 200 settling readings


@pytest.fixture()
def model_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(get_settings(), "model_dir", tmp_path / "models")
    return tmp_path / "models"


def training_data(t0: float, devices: int = 4, n: int = N) -> None:
    for d in range(devices):
        store(normal_rows(f"dev-{d}", t0, n, step=1.0, seed=d))


def test_retrain_activates_a_version_and_the_scan_picks_it_up(db, redis_client, model_dir):
    t0 = base_time()
    training_data(t0)
    assert run_scan(now=t0 + 600, drain=False).model_id is None

    first = retrain()
    assert first.status == "trained" and first.model_id is not None
    assert list(first.groups) == ["default|voltage,current,temperature"]
    assert 256 <= first.n_samples <= 4 * (N - 200)
    [row] = list_models(db)
    assert (row["id"], row["status"], row["n_samples"]) == (first.model_id, "active", first.n_samples)
    assert Path(row["artifact_path"]).parent == model_dir.resolve()
    assert Path(row["artifact_path"]).exists()
    assert row["features"] == list(first.groups) and row["params"]["alarms_per_day"] > 0

    store(normal_rows("dev-0", t0 + 500, 10, seed=9))
    assert run_scan(now=t0 + 600, drain=False).model_id == first.model_id
    versions = {v for (v,) in db.execute("SELECT forest_version FROM detector_state WHERE device_id = 'dev-0'")}
    assert versions == {first.model_id}

    second = retrain()
    assert second.model_id != first.model_id
    store(normal_rows("dev-0", t0 + 520, 10, seed=10))
    assert run_scan(now=t0 + 600, drain=False).model_id == second.model_id  # no restart needed

    # Roll back: the operator activates the first version again.
    activated = activate_model(db, first.model_id)
    assert activated is not None and activated["status"] == "active"
    assert [(m["id"], m["status"]) for m in list_models(db)] == [
        (second.model_id, "inactive"),
        (first.model_id, "active"),
    ]
    store(normal_rows("dev-0", t0 + 540, 10, seed=11))
    assert run_scan(now=t0 + 600, drain=False).model_id == first.model_id
    assert activate_model(db, 999) is None


def test_too_little_data_keeps_the_previous_version(db, redis_client, model_dir):
    t0 = base_time()
    training_data(t0)
    trained = retrain()
    assert trained.status == "trained"

    # Devices seen in the last 0.01 h (36 s) that have only 150 readings each: fewer than the
    # replay's 200 settling readings, so no normal row at all (the first devices were not seen then).
    for d in range(4):
        store(normal_rows(f"new-{d}", t0 + 1000, 150, step=1.0, seed=20 + d))
    skipped = retrain(window_hours=0.01, now=t0 + 1160)
    assert skipped.status == "skipped"
    assert skipped.reason is not None and "need 128" in skipped.reason
    assert skipped.active_model_id == trained.model_id
    assert [(m["id"], m["status"]) for m in list_models(db)] == [(trained.model_id, "active")]
    assert len(list(model_dir.iterdir())) == 1


def test_devices_reporting_hourly_get_a_forest_from_their_last_readings(db, redis_client, model_dir):
    # 24 h of hourly readings are 24 per device: the retrain reaches back to each device's last
    # 400 readings (about 17 days), whatever the window, so the forest sees what it needs.
    end = base_time()
    for d in range(2):
        store(normal_rows(f"hourly-{d}", end - 500 * 3600.0, 500, step=3600.0, seed=30 + d))
    result = retrain(window_hours=24.0, now=end + 1.0)
    assert result.status == "trained", result.reason
    assert result.groups == {"default|voltage,current,temperature": result.n_samples}
    assert 128 <= result.n_samples <= 2 * 200  # rows after the 200 settling readings of 400 per device


def test_retrain_task_reports_its_outcome(db, redis_client, model_dir):
    from workers.training import retrain as retrain_task

    result = retrain_task.apply(kwargs={"window_hours": 1.0}).get()
    assert result["status"] == "skipped" and result["active_model_id"] is None

    training_data(base_time() + 1800)  # within the last hour
    result = retrain_task.apply(kwargs={"window_hours": 1.0}).get()
    assert result["status"] == "trained" and result["active_model_id"] == result["model_id"]


def test_readings_the_detector_calls_abnormal_are_left_out_of_training(db, redis_client, model_dir):
    t0 = base_time()
    training_data(t0, devices=2, n=2 * N)
    clean = retrain().n_samples
    faulty = normal_rows("dev-0", t0 + 2 * N, 300, step=1.0, seed=5)
    faulty[50:150] = with_voltage(faulty[50:150], 245.0)  # inside the limits, far from 230 ± 0.7
    store(faulty)
    result = retrain()
    assert result.status == "trained"
    assert result.n_samples < clean + 300 - 90  # the fault's readings did not become training rows
