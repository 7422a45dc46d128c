"""gridmon settings: one pydantic-settings class, read from the environment and `.env`.

Every component (bridge, workers, beat, API, CLI) reads its configuration from here; the Celery
configuration is derived from it in `gridmon.celery`, never configured a second way.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
"""The checkout (or install) root: where `alembic.ini` and `alembic/` live."""

_PLACEHOLDER_SECRETS = {"changeme", "changethis", "secret", "password", "admin", "token"}


def _env(name: str, *legacy: str) -> AliasChoices:
    """Accept `GRIDMON_<NAME>` and, where given, the original design's variable names."""
    return AliasChoices(f"GRIDMON_{name}", *legacy)


class Settings(BaseSettings):
    """Configuration of every gridmon process. Environment names are `GRIDMON_<FIELD>`."""

    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", populate_by_name=True, use_attribute_docstrings=True
    )

    # --- services -------------------------------------------------------------------------
    database_url: str = Field(
        "postgresql://postgres@127.0.0.1:5432/gridmon",
        validation_alias=_env("DATABASE_URL", "DB_DSN"),
    )
    """PostgreSQL/TimescaleDB URL (libpq form; `postgresql+psycopg://` is accepted too)."""

    database_owner_url: str | None = Field(None, validation_alias=_env("DATABASE_OWNER_URL"))
    """The schema owner's URL, for `gridmon migrate` and `gridmon db app-role`; default GRIDMON_DATABASE_URL.
    Set both to run the processes as a least-privilege role (docs/security.md)."""

    redis_url: str = Field("redis://127.0.0.1:6379/0", validation_alias=_env("REDIS_URL", "REDIS_URL"))
    """Redis for alerts, heartbeats and (by default) the Celery broker and result backend."""

    broker_url: str | None = Field(None, validation_alias=_env("BROKER_URL"))
    """Celery broker. Defaults to `redis_url`; `amqp://` (RabbitMQ) works too."""

    result_backend: str | None = Field(None, validation_alias=_env("RESULT_BACKEND"))
    """Celery result backend. Defaults to `redis_url`."""

    mqtt_host: str = Field("127.0.0.1", validation_alias=_env("MQTT_HOST", "BROKER_HOST"))
    """MQTT broker host."""

    mqtt_port: int = Field(1883, validation_alias=_env("MQTT_PORT", "BROKER_PORT"))
    """MQTT broker port."""

    mqtt_topic: str = Field("grid/sensors/#", validation_alias=_env("MQTT_TOPIC"))
    """Topic filter the bridge subscribes to; the simulator publishes to `grid/sensors/<id>`."""

    mqtt_username: str | None = Field(None, validation_alias=_env("MQTT_USERNAME"))
    """MQTT user name (bridge and simulator); none = anonymous."""

    mqtt_password: str | None = Field(None, validation_alias=_env("MQTT_PASSWORD"))
    """MQTT password."""

    mqtt_client_id: str = Field("", validation_alias=_env("MQTT_CLIENT_ID"))
    """Bridge client id. The persistent session is keyed by it: keep it stable per bridge. Unset:
    `gridmon-bridge-<8 hex digits>` derived from the data directory's absolute path, so two
    checkouts on one broker never share a session."""

    mqtt_password_file: Path | None = Field(None, validation_alias=_env("MQTT_PASSWORD_FILE"))
    """Mosquitto password file `gridmon devices credentials add` and `revoke` manage (per-device logins)."""

    mqtt_shared_group: str | None = Field(None, validation_alias=_env("MQTT_SHARED_GROUP"))
    """When set, subscribe `$share/<group>/<topic>` so several bridges split the load."""

    mqtt_protocol: int = Field(5, validation_alias=_env("MQTT_PROTOCOL"))
    """MQTT protocol: 5 (MQTT 5.0, default) or 4 (3.1.1)."""

    mqtt_receive_maximum: int = Field(20000, ge=1, le=65535, validation_alias=_env("MQTT_RECEIVE_MAXIMUM"))
    """MQTT 5 receive maximum: unacknowledged QoS 1 messages the broker may have in flight to us."""

    mqtt_session_expiry_s: int = Field(7 * 86400, ge=0, validation_alias=_env("MQTT_SESSION_EXPIRY_S"))
    """How long the broker keeps the bridge's session (and queues readings) while it is away."""

    mqtt_keepalive_s: int = Field(30, ge=5, validation_alias=_env("MQTT_KEEPALIVE_S"))
    """MQTT keepalive interval."""

    # --- bridge batching ------------------------------------------------------------------
    batch_max_readings: int = Field(1000, ge=1, le=20000, validation_alias=_env("BATCH_MAX_READINGS"))
    """Largest micro-batch handed to one ingest task."""

    batch_max_age_ms: int = Field(100, ge=1, validation_alias=_env("BATCH_MAX_AGE_MS"))
    """Oldest a reading may wait in the bridge before its batch is sent."""

    batch_idle_ms: float = Field(5.0, gt=0, validation_alias=_env("BATCH_IDLE_MS"))
    """A batch is also sent when no message arrived for this long (the stream paused)."""

    max_payload_bytes: int = Field(64 * 1024, ge=64, validation_alias=_env("MAX_PAYLOAD_BYTES"))
    """Larger MQTT payloads are dead-lettered as `too_large`."""

    max_future_s: float = Field(300.0, ge=0, validation_alias=_env("MAX_FUTURE_S"))
    """Readings stamped further than this in the future are dead-lettered."""

    # --- Sparkplug B ------------------------------------------------------------------------
    sparkplug_group: str | None = Field(None, validation_alias=_env("SPARKPLUG_GROUP"))
    """Sparkplug B group id the bridge also subscribes to (`spBv1.0/<group>/N|D BIRTH|DEATH|DATA/…`;
    `+` = every group). Unset = off. Enable it on one bridge only: a node's births and data must
    reach the same bridge."""

    sparkplug_metric_map: dict[str, str] = Field(default_factory=dict, validation_alias=_env("SPARKPLUG_METRIC_MAP"))
    """Sparkplug metric name → reading field (`voltage`, `current`, `temperature` or an extra
    metric name), JSON; names not listed map by their normalised last path segment (docs/sparkplug.md)."""

    sparkplug_birth_timeout_s: float = Field(30.0, gt=0, validation_alias=_env("SPARKPLUG_BIRTH_TIMEOUT_S"))
    """Data by alias that arrived before its birth certificate waits this long for the rebirth it
    asked for; then it is dead-lettered (`sparkplug_no_birth`), never dropped."""

    # --- storage ---------------------------------------------------------------------------
    timescaledb: str = Field("auto", pattern="^(auto|on|off)$", validation_alias=_env("TIMESCALEDB"))
    """Use TimescaleDB at migration: `auto` when the server can create the extension (installed
    *and* preloaded), otherwise plain PostgreSQL with one log line saying why; `on` fails with the
    fix when it cannot; `off` never touches it."""

    timescale_chunk_interval: str = Field("1 day", validation_alias=_env("TIMESCALE_CHUNK_INTERVAL"))
    """Hypertable chunk interval (TimescaleDB only)."""

    timescale_compress_after: str | None = Field("7 days", validation_alias=_env("TIMESCALE_COMPRESS_AFTER"))
    """Compress chunks older than this (TimescaleDB only; empty = no compression policy)."""

    timescale_retention: str | None = Field(None, validation_alias=_env("TIMESCALE_RETENTION"))
    """Drop chunks older than this (TimescaleDB only; unset = keep everything)."""

    rollup_interval_s: float = Field(60.0, gt=0, validation_alias=_env("ROLLUP_INTERVAL_S"))
    """How often beat refreshes the history rollups on plain PostgreSQL (TimescaleDB refreshes its
    continuous aggregates by its own policies; the task then does nothing)."""

    rollup_lag_s: float = Field(30.0, ge=0, validation_alias=_env("ROLLUP_LAG_S"))
    """The rollup refresh takes readings ingested at least this long ago, so an ingest transaction
    still open when it runs is not skipped (plain PostgreSQL)."""

    # --- API and access -------------------------------------------------------------------
    admin_token: str | None = Field(None, validation_alias=_env("ADMIN_TOKEN"))
    """Bearer token for write/admin API routes. Unset = admin routes answer 503."""

    read_token: str | None = Field(None, validation_alias=_env("READ_TOKEN"))
    """Bearer token for read routes. Unset = read routes are open."""

    api_host: str = Field("127.0.0.1", validation_alias=_env("API_HOST"))
    """Address the API binds to."""

    api_port: int = Field(8000, validation_alias=_env("API_PORT"))
    """API port (`gridmon api`)."""

    device_stale_after_s: float = Field(300.0, gt=0, validation_alias=_env("DEVICE_STALE_AFTER_S"))
    """API and dashboard: a device with no reading for this long is shown as stale (read at start)."""

    flower_user: str = Field("admin", validation_alias=_env("FLOWER_USER"))
    """Flower basic-auth user."""

    flower_password: str | None = Field(None, validation_alias=_env("FLOWER_PASSWORD"))
    """Flower basic-auth password; unset = Flower is started without auth on 127.0.0.1 only."""

    # --- observability --------------------------------------------------------------------
    log_level: str = Field("INFO", validation_alias=_env("LOG_LEVEL"))
    """Root log level."""

    log_json: bool = Field(False, validation_alias=_env("LOG_JSON"))
    """Log JSON lines instead of key=value."""

    bridge_metrics_port: int = Field(9101, validation_alias=_env("BRIDGE_METRICS_PORT"))
    """Prometheus port of the bridge (0 = off)."""

    worker_metrics_port: int = Field(9102, validation_alias=_env("WORKER_METRICS_PORT"))
    """Prometheus port of a Celery worker's main process (0 = off)."""

    tracing: bool = Field(False, validation_alias=_env("TRACING"))
    """OpenTelemetry spans across bridge → Celery task → database write (off: no cost)."""

    otlp_endpoint: str | None = Field(None, validation_alias=_env("OTLP_ENDPOINT"))
    """OTLP/HTTP traces endpoint (e.g. http://collector:4318/v1/traces); unset = console exporter."""

    heartbeat_interval_s: float = Field(5.0, gt=0, validation_alias=_env("HEARTBEAT_INTERVAL_S"))
    """How often bridge and beat write their heartbeat key to Redis."""

    data_dir: Path = Field(Path(".gridmon"), validation_alias=_env("DATA_DIR"))
    """Working directory for local state (models, ground truth, embedded services)."""

    # --- `gridmon up` ------------------------------------------------------------------------
    stop_drain_timeout_s: float = Field(30.0, ge=0, validation_alias=_env("STOP_DRAIN_TIMEOUT_S"))
    """On Ctrl-C, how long `gridmon up` waits for the ingest queue to drain before its workers stop;
    what is still queued then is written at the next start."""

    demo_devices: int = Field(10, ge=1, le=10_000, validation_alias=_env("DEMO_DEVICES"))
    """Simulated devices `gridmon up` runs (the demo fleet; who they are is fixed per data directory)."""

    demo_history_days: float = Field(3.0, ge=0, le=30, validation_alias=_env("DEMO_HISTORY_DAYS"))
    """On the demo's first start, days of simulated history written through the ingest job (0 = none)."""

    @field_validator("database_url", "database_owner_url")
    @classmethod
    def _normalise_db_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        scheme = parts.scheme.split("+", 1)[0]
        if scheme == "postgres":
            scheme = "postgresql"
        if scheme != "postgresql":
            raise ValueError(f"GRIDMON_DATABASE_URL must be a postgresql:// URL, got {parts.scheme!r}")
        return urlunsplit((scheme, *parts[1:]))

    @field_validator("database_owner_url", mode="before")
    @classmethod
    def _no_owner_url(cls, value: object) -> object:
        return value or None

    @field_validator("mqtt_protocol")
    @classmethod
    def _known_protocol(cls, value: int) -> int:
        if value not in (4, 5):
            raise ValueError("GRIDMON_MQTT_PROTOCOL must be 5 (MQTT 5.0) or 4 (MQTT 3.1.1)")
        return value

    @field_validator("alertmanager_url")
    @classmethod
    def _optional_base_url(cls, value: str | None) -> str | None:
        return value.rstrip("/") or None if value else None

    @field_validator("public_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("admin_token", "read_token", "flower_password", "mqtt_username", "mqtt_password")
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("admin_token", "read_token")
    @classmethod
    def _reject_placeholder(cls, value: str | None) -> str | None:
        if value is not None and (value.lower() in _PLACEHOLDER_SECRETS or len(value) < 16):
            raise ValueError("token is a placeholder or shorter than 16 characters; generate one")
        return value

    @model_validator(mode="after")
    def _derive_celery_urls(self) -> Settings:
        if not self.broker_url:
            self.broker_url = self.redis_url
        if not self.result_backend:
            self.result_backend = self.redis_url
        return self

    @property
    def owner_url(self) -> str:
        """The URL migrations run with (`database_owner_url`, else `database_url`)."""
        return self.database_owner_url or self.database_url

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL with SQLAlchemy's psycopg 3 driver named."""
        return self.database_url.replace("postgresql://", "postgresql+psycopg://", 1)

    @property
    def subscription_topic(self) -> str:
        """The topic filter the bridge subscribes to (shared subscription when configured)."""
        if self.mqtt_shared_group:
            return f"$share/{self.mqtt_shared_group}/{self.mqtt_topic}"
        return self.mqtt_topic

    # --- detection and alerts ---------------------------------------------------------------
    voltage_limits: tuple[float, float] = Field((200.0, 250.0), validation_alias=_env("VOLTAGE_LIMITS"))
    """Global safe voltage range in V, inclusive (JSON `[low, high]`); device profiles override it."""

    current_limits: tuple[float, float] = Field((0.0, 10.0), validation_alias=_env("CURRENT_LIMITS"))
    """Global safe current range in A, inclusive (JSON `[low, high]`)."""

    temperature_limits: tuple[float, float] = Field((0.0, 80.0), validation_alias=_env("TEMPERATURE_LIMITS"))
    """Global safe temperature range in °C, inclusive (JSON `[low, high]`)."""

    retrain_interval_s: float = Field(3600.0, gt=0, validation_alias=_env("RETRAIN_INTERVAL_S"))
    """How often beat retrains the IsolationForests (one per device group, on the `ml` queue)."""

    retrain_window_h: float = Field(24.0, gt=0, validation_alias=_env("RETRAIN_WINDOW_H"))
    """Hours of recent readings a retrain replays through the detector to learn from (and at least
    each device's last 400 readings, however long they span)."""

    retrain_max_samples: int = Field(1_000_000, ge=1000, validation_alias=_env("RETRAIN_MAX_SAMPLES"))
    """Most readings a retrain replays through the detector per device group (the most recent ones)."""

    alarms_per_device_day: float = Field(0.05, gt=0, le=10, validation_alias=_env("ALARMS_PER_DEVICE_DAY"))
    """Anomaly-detector alarm budget: false alarms per device and day of normal operation that every
    threshold is calibrated for (0.05 ≈ one a device every 20 days; ISA-18.2 context in docs/detection.md)."""

    model_dir: Path | None = Field(None, validation_alias=_env("MODEL_DIR"))
    """Where model artifacts (joblib) are written. Default `<data_dir>/models`."""

    scan_interval_s: float = Field(60.0, gt=0, validation_alias=_env("SCAN_INTERVAL_S"))
    """How often beat runs the incremental scan (one task per shard)."""

    scan_safety_lag_s: float = Field(1.0, ge=0, validation_alias=_env("SCAN_SAFETY_LAG_S"))
    """A scan reads rows ingested at least this long ago (besides waiting for open transactions)."""

    scan_max_rows: int = Field(200_000, ge=100, validation_alias=_env("SCAN_MAX_ROWS"))
    """Most new readings one scan step loads; a backlog is worked off in several steps."""

    scan_shards: int = Field(16, ge=1, le=4096, validation_alias=_env("SCAN_SHARDS"))
    """Devices are split into this many shards (stable hash of the id); beat enqueues one scan task per
    shard, so scan workers work in parallel. Change it with `gridmon scan reshard --shards N`."""

    scan_initial_lookback_s: float = Field(3600.0, ge=0, validation_alias=_env("SCAN_INITIAL_LOOKBACK_S"))
    """On the very first scan, how far back (by ingest time) to start."""

    episode_gap_s: float = Field(120.0, gt=0, validation_alias=_env("EPISODE_GAP_S"))
    """Safety-limit findings of one device and metric closer than this are one alert; such an alert
    ends when the device's readings run this far past its last finding without another. (Anomaly
    alerts open and close with the detector's own alarm.)"""

    predict_interval_s: float = Field(900.0, gt=0, validation_alias=_env("PREDICT_INTERVAL_S"))
    """How often beat runs the maintenance prediction (on the `maintenance` queue)."""

    scan_stuck_transaction_s: float = Field(600.0, gt=0, validation_alias=_env("SCAN_STUCK_TRANSACTION_S"))
    """Transactions open longer than this no longer hold back the scan's upper bound (they are logged)."""

    counted_readings_retention_s: float = Field(86400.0, gt=0, validation_alias=_env("COUNTED_READINGS_RETENTION_S"))
    """How long the readings a resolved alert counted are remembered (dedupe of ingest check and scan)."""

    outbox_retention_s: float = Field(7 * 86400.0, gt=0, validation_alias=_env("OUTBOX_RETENTION_S"))
    """Published outbox rows are kept this long for inspection, then deleted by the scan."""

    stale_factor: float = Field(5.0, gt=1, validation_alias=_env("STALE_FACTOR"))
    """A device silent for longer than this many times its usual interval raises `no_data`."""

    stale_min_s: float = Field(30.0, ge=0, validation_alias=_env("STALE_MIN_S"))
    """…and for at least this long, so a fast device's hiccup is not an alert."""

    broker_selftest: bool = Field(False, validation_alias=_env("BROKER_SELFTEST"))
    """At bridge start (and `gridmon up` external mode): publish a burst of 1,100 messages to a
    throwaway persistent session to check the broker keeps them (warns with the setting to change)."""

    data_gap_share: float = Field(0.05, gt=0, le=1, validation_alias=_env("DATA_GAP_SHARE"))
    """A device whose `seq` shows more than this share of its readings missing within
    `data_gap_window_s` raises a `data_gap` alert (resolved once the share is back at or below it)."""

    data_gap_window_s: float = Field(3600.0, gt=0, validation_alias=_env("DATA_GAP_WINDOW_S"))
    """The window (seconds before the check) over which the missing share is measured."""

    data_gap_min_missing: int = Field(10, ge=1, validation_alias=_env("DATA_GAP_MIN_MISSING"))
    """…and at least this many readings missing in it, so one lost reading of a slow device is no alert."""

    readings_missing_top_n: int = Field(10, ge=0, le=1000, validation_alias=_env("READINGS_MISSING_TOP_N"))
    """API `/metrics`: the devices with the most missing readings get a per-device gauge (0 = none)."""

    pipeline_gap_s: float = Field(15.0, gt=0, validation_alias=_env("PIPELINE_GAP_S"))
    """A pause of the bridges' heartbeat longer than this is a pipeline outage: silence inside it
    is not a device's fault (no `no_data`). Keep it above `heartbeat_interval_s`."""

    alerts_list_max: int = Field(10_000, ge=1, validation_alias=_env("ALERTS_LIST_MAX"))
    """Length cap of each outbox Redis list, `alerts:anomalies` and `alerts:maintenance` (LTRIM after each push)."""

    alerts_stream_maxlen: int = Field(100_000, ge=1, validation_alias=_env("ALERTS_STREAM_MAXLEN"))
    """Approximate length cap of each outbox Redis stream, `alerts:anomalies:stream` and
    `alerts:maintenance:stream` (XADD MAXLEN ~)."""

    publish_backoff_s: float = Field(5.0, ge=0, validation_alias=_env("PUBLISH_BACKOFF_S"))
    """After a Redis failure, the ingest path's opportunistic outbox drains wait this long before trying again."""

    publish_idle_check_s: float = Field(5.0, ge=0, validation_alias=_env("PUBLISH_IDLE_CHECK_S"))
    """With nothing known to be pending, the ingest path looks at the outbox at most this often."""

    # --- limits against misuse (docs/security.md) -------------------------------------------
    dead_letter_payload_bytes: int = Field(8192, ge=256, validation_alias=_env("DEAD_LETTER_PAYLOAD_BYTES"))
    """A dead letter keeps at most this many bytes of its payload, plus the payload's size and SHA-256;
    a longer payload cannot be replayed."""

    mqtt_max_packet_bytes: int = Field(
        128 * 1024, ge=1024, le=268_435_455, validation_alias=_env("MQTT_MAX_PACKET_BYTES")
    )
    """MQTT 5 Maximum Packet Size the bridge announces: the broker does not deliver larger packets to it."""

    api_max_body_bytes: int = Field(64 * 1024, ge=1024, validation_alias=_env("API_MAX_BODY_BYTES"))
    """Largest request body the API reads (413 above it); a body is read only after the admin token."""

    api_statement_timeout_s: float = Field(5.0, gt=0, validation_alias=_env("API_STATEMENT_TIMEOUT_S"))
    """PostgreSQL statement_timeout of API requests (a longer query is cancelled: 503)."""

    job_statement_timeout_s: float = Field(600.0, gt=0, validation_alias=_env("JOB_STATEMENT_TIMEOUT_S"))
    """PostgreSQL statement_timeout of everything else (ingest, scan, retrain, predict, CLI)."""

    api_max_rows_per_request: int = Field(
        5_000_000, ge=1000, validation_alias=_env("API_MAX_ROWS_PER_REQUEST")
    )
    """Most readings one API request may aggregate (estimated from the device's rate); more = 400."""

    ready_cache_s: float = Field(5.0, ge=0, validation_alias=_env("READY_CACHE_S"))
    """`/ready` answers from checks at most this old (one round of checks however many callers)."""

    live_max_streams: int = Field(100, ge=1, validation_alias=_env("LIVE_MAX_STREAMS"))
    """Open dashboard event streams per API process; more are refused with 503."""

    live_max_streams_per_client: int = Field(4, ge=1, validation_alias=_env("LIVE_MAX_STREAMS_PER_CLIENT"))
    """Open dashboard event streams per client address; more are refused with 503."""

    session_ttl_s: float = Field(12 * 3600.0, ge=60, validation_alias=_env("SESSION_TTL_S"))
    """Lifetime of the dashboard's session cookie (HttpOnly, SameSite=Strict), which stands in for the token."""

    @model_validator(mode="after")
    def _packet_fits_payload(self) -> Settings:
        if self.mqtt_max_packet_bytes < self.max_payload_bytes + 1024:
            raise ValueError(
                "GRIDMON_MQTT_MAX_PACKET_BYTES must exceed GRIDMON_MAX_PAYLOAD_BYTES by at least 1024 (topic and "
                "header), or oversized payloads are dropped by the broker instead of dead-lettered"
            )
        return self
    # --- Alertmanager --------------------------------------------------------------------------
    alertmanager_url: str | None = Field(None, validation_alias=_env("ALERTMANAGER_URL"))
    """Alertmanager base URL (e.g. `http://alertmanager:9093`): every alert state change is posted to
    its v2 API from the outbox, beside Redis. Unset = off."""

    alertmanager_resend_s: float = Field(60.0, gt=0, validation_alias=_env("ALERTMANAGER_RESEND_S"))
    """How often the alerts still firing are posted to Alertmanager again; keep it well below
    Alertmanager's `resolve_timeout` (default 5 min), or Alertmanager resolves them meanwhile."""

    alertmanager_timeout_s: float = Field(5.0, gt=0, validation_alias=_env("ALERTMANAGER_TIMEOUT_S"))
    """HTTP timeout of one post to Alertmanager; a failed post leaves its events pending in the outbox."""

    public_url: str = Field("http://127.0.0.1:8000", validation_alias=_env("PUBLIC_URL"))
    """Where operators open the API and dashboard: alert links (Alertmanager's `generatorURL` and
    `link` annotation) point to `<public_url>/#/device/<device_id>`."""

    @model_validator(mode="after")
    def _derive_client_id(self) -> Settings:
        if not self.mqtt_client_id:
            self.mqtt_client_id = default_client_id(self.data_dir)
        return self

    @model_validator(mode="after")
    def _derive_model_dir(self) -> Settings:
        if self.model_dir is None:
            self.model_dir = self.data_dir / "models"
        return self

    @property
    def models_path(self) -> Path:
        """The model artifact directory (`model_dir`, defaulted from `data_dir`)."""
        return self.model_dir if self.model_dir is not None else self.data_dir / "models"


def default_client_id(data_dir: Path) -> str:
    """The bridge's default MQTT client id: stable for one data directory, distinct across them."""
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:8]
    return f"gridmon-bridge-{digest}"


def with_database(url: str, name: str) -> str:
    """The same server URL with another database name."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def parts_for_log(url: str) -> str:
    """host:port/db of a database URL, without credentials (for error messages and logs)."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 5432}{parts.path}"


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once; tests call `get_settings.cache_clear()`)."""
    return Settings()


_SECRET_WORDS = ("TOKEN", "PASSWORD", "SECRET", "URL", "DSN", "KEY")  # values never echoed


def settings_error(exc: ValidationError) -> str:
    """What is wrong with the configuration, one line per setting (no traceback)."""
    lines = [f"error: invalid configuration ({exc.error_count()} setting(s); environment or .env):"]
    for err in exc.errors():
        name = ".".join(str(part) for part in err["loc"]) or "settings"
        secret = any(word in name.upper() for word in _SECRET_WORDS)
        got = "" if secret or "input" not in err else f" (got {err['input']!r})"
        lines.append(f"  {name}: {err['msg']}{got}")
    return "\n".join(lines)


def settings_or_exit() -> Settings:
    """`get_settings()` for a process another program starts (Celery, Alembic): a bad GRIDMON_*
    value ends it with `settings_error`'s lines (status 1) instead of a traceback."""
    try:
        return get_settings()
    except ValidationError as exc:
        raise SystemExit(settings_error(exc)) from None
