"""The deploy files (issue 13): the image runs as an unprivileged user, the processes connect to
PostgreSQL as the least-privilege role and only `migrate` holds the owner's password, the broker
has per-device logins and an ACL. No Docker engine runs here: these are read, not built."""

from __future__ import annotations

import re

import yaml

from gridmon.config import REPO_ROOT

GRIDMON_SERVICES = ("bridge", "worker", "worker-analytics", "beat", "api", "flower", "simulator")


def _instructions() -> list[tuple[str, str]]:
    text = (REPO_ROOT / "Dockerfile").read_text()
    joined = re.sub(r"\\\n\s*", " ", text)
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in joined.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def test_the_image_runs_as_an_unprivileged_user() -> None:
    steps = _instructions()
    users = [i for i, (op, _) in enumerate(steps) if op == "USER"]
    assert users, "the Dockerfile never leaves root"
    last_user = steps[users[-1]][1].strip()
    assert last_user.split(":")[0] not in ("root", "0")
    assert all(op != "RUN" for op, _ in steps[users[-1] :]), "nothing may run as root after USER"
    created = " ".join(arg for op, arg in steps if op == "RUN")
    uid = last_user.split(":")[0]
    assert re.search(rf"useradd .*--uid {uid}\b", created), "the USER must be created in the image"


def _compose() -> dict:
    return yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())


def test_processes_connect_as_the_app_role_and_only_migrate_knows_the_owner() -> None:
    services = _compose()["services"]
    for name in GRIDMON_SERVICES:
        env = services[name]["environment"]
        assert env["GRIDMON_DATABASE_URL"].startswith("postgresql://gridmon_app:"), name
        assert "POSTGRES_PASSWORD" not in str(env), name
        assert "GRIDMON_DATABASE_OWNER_URL" not in env, name
        assert services[name].get("user") in (None, "10001:10001"), name
    migrate = services["migrate"]
    assert "POSTGRES_PASSWORD" in migrate["environment"]["GRIDMON_DATABASE_OWNER_URL"]
    assert "gridmon db app-role gridmon_app" in " ".join(migrate["command"])


def test_the_broker_has_per_device_logins_and_an_acl() -> None:
    compose = _compose()["services"]
    mounts = " ".join(compose["mosquitto"]["volumes"])
    assert "deploy/mosquitto/acl:/mosquitto/config/acl" in mounts
    conf = (REPO_ROOT / "deploy" / "mosquitto" / "mosquitto.conf").read_text()
    assert "allow_anonymous false" in conf and "acl_file /mosquitto/config/acl" in conf
    acl = (REPO_ROOT / "deploy" / "mosquitto" / "acl").read_text()
    assert "pattern write grid/sensors/%u" in acl
    assert "user bridge@gridmon\ntopic read grid/sensors/#" in acl
    # Sparkplug B: an edge node publishes only under its own login's name and reads its commands.
    assert "pattern write spBv1.0/+/+/%u\npattern write spBv1.0/+/+/%u/+\npattern read spBv1.0/+/NCMD/%u" in acl
    assert "topic read spBv1.0/#\ntopic write spBv1.0/+/NCMD/#" in acl
    # The password file is kept across restarts (device logins live in it), never recreated.
    assert "mosquitto_passwd -c" not in str(compose["mosquitto-passwd"]["command"])
    assert compose["credentials"]["entrypoint"] == ["gridmon", "devices", "credentials"]


def test_flower_is_published_on_loopback_only() -> None:
    # Flower answers /metrics and /healthcheck without its login.
    assert _compose()["services"]["flower"]["ports"] == ["127.0.0.1:5555:5555"]
