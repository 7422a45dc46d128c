"""Who the simulated fleet is, kept per data directory: `<data_dir>/simulator/fleet.json`.

A fleet's identity — its device ids, each device's normal levels and phase (`make_profile`),
kind, location and rating (`gridmon.simulator.demo`), and the demo's scripted degradation — is
drawn from one seed, the *fleet seed*, written to this file the first time a simulator runs with
the data directory. Every later run reads it back, so a restart brings back the same devices:
their baselines do not move, and a detector that learned them has nothing new to alarm on. Only
the noise and the fault schedule (the run's own seed) differ from run to run.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

FLEET_FILE = Path("simulator") / "fleet.json"


@dataclass(frozen=True)
class FleetIdentity:
    """The fleet seed and when the fleet was first created (epoch seconds)."""

    seed: int
    created_at: float

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> FleetIdentity:
        doc = json.loads(text)
        return cls(seed=int(doc["seed"]), created_at=float(doc["created_at"]))


def fleet_file(data_dir: Path) -> Path:
    return data_dir / FLEET_FILE


def load_identity(path: Path) -> FleetIdentity | None:
    """The identity stored at `path`, or None when there is none yet."""
    try:
        return FleetIdentity.from_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not a fleet identity ({exc}); move it away to start a new fleet") from exc


def ensure_identity(path: Path, now: float, seed: int | None = None) -> FleetIdentity:
    """The identity at `path`; created (with `seed`, or a random one) if there is none yet.

    Written to a temporary file and renamed, so two simulators starting together both end up
    with the one identity that won the rename.
    """
    found = load_identity(path)
    if found is not None:
        return found
    identity = FleetIdentity(seed=secrets.randbits(31) if seed is None else seed, created_at=now)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".fleet-")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(identity.to_json())
    try:
        os.link(tmp, path)  # fails if another run created it meanwhile: theirs stands
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
    result = load_identity(path)
    assert result is not None
    return result
