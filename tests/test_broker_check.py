"""The broker check at start: the version a broker publishes, and the opt-in self-test that
finds a per-client queue limit (private Mosquittos: stock limit of 1,000 vs the project's 0)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from gridmon.bridge.broker_check import SELFTEST_MESSAGES, check_broker, queue_selftest
from gridmon.config import Settings, get_settings
from gridmon.services.mosquitto import MosquittoProcess

pytestmark = pytest.mark.slow  # starts private Mosquitto processes


def _settings(monkeypatch: pytest.MonkeyPatch, port: int) -> Settings:
    monkeypatch.setenv("GRIDMON_MQTT_HOST", "127.0.0.1")
    monkeypatch.setenv("GRIDMON_MQTT_PORT", str(port))
    get_settings.cache_clear()
    return get_settings()


@pytest.fixture()
def stock_broker(tmp_path: Path) -> Iterator[MosquittoProcess]:
    with MosquittoProcess(tmp_path / "stock", settings={"max_queued_messages": "1000"}) as broker:
        yield broker


@pytest.fixture()
def project_broker(tmp_path: Path) -> Iterator[MosquittoProcess]:
    with MosquittoProcess(tmp_path / "project") as broker:
        yield broker


def test_a_stock_queue_limit_is_found_and_named(
    stock_broker: MosquittoProcess, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(monkeypatch, stock_broker.port)
    with caplog.at_level(logging.INFO, logger="gridmon.bridge.broker_check"):
        result = check_broker(settings, selftest=True)
    get_settings.cache_clear()
    assert result is not None and result.published == SELFTEST_MESSAGES
    assert 900 <= result.received <= 1000 + 20  # what the queue holds (plus any in flight)
    assert "version=mosquitto version" in caplog.text
    assert "max_queued_messages 0" in caplog.text and "only" in caplog.text


def test_the_project_broker_keeps_the_burst(project_broker: MosquittoProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(monkeypatch, project_broker.port)
    result = queue_selftest(settings)
    get_settings.cache_clear()
    assert result.lossless and result.received == SELFTEST_MESSAGES


def test_no_failure_without_a_broker(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from gridmon.services.mosquitto import free_port

    settings = _settings(monkeypatch, free_port())
    with caplog.at_level(logging.WARNING, logger="gridmon.bridge.broker_check"):
        assert check_broker(settings, selftest=True) is None  # nothing listens: logged, not raised
    get_settings.cache_clear()
    assert "MQTT broker check failed" in caplog.text


def test_without_the_flag_only_the_version_is_read(
    stock_broker: MosquittoProcess, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(monkeypatch, stock_broker.port)
    with caplog.at_level(logging.INFO, logger="gridmon.bridge.broker_check"):
        assert check_broker(settings, selftest=False) is None
    get_settings.cache_clear()
    assert "version=mosquitto version" in caplog.text  # the broker was reached
    assert "self-test" not in caplog.text and "max_queued_messages" not in caplog.text  # and not tested
