"""`gridmon simulate`: simulated sensors publishing to MQTT, with faults and their ground truth.

The fleet (who the devices are) comes from the data directory's fleet identity unless a seed is
given; `--demo` is what `gridmon up` runs: that fleet with the scripted slow degradation of
`gridmon.simulator.demo`, and catalogue faults other than degradation.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import click

from gridmon.config import get_settings
from gridmon.simulator.catalogue import DEFAULT_TIME_COMPRESSION, FAULT_KINDS, validate_kinds
from gridmon.simulator.demo import HISTORY_KINDS, demo_degradation, fleet_profiles
from gridmon.simulator.identity import ensure_identity, fleet_file
from gridmon.simulator.publisher import BrokerUnavailable, MqttPublisher
from gridmon.simulator.runner import PrintSink, SimulationConfig, SimulationSummary, Sink, run_simulation
from gridmon.simulator.sparkplug import DEFAULT_GROUP, SparkplugEdge, SparkplugSink
from gridmon.simulator.truth import TruthWriter


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """First Ctrl-C / SIGTERM asks the run to stop cleanly; a second Ctrl-C interrupts at once."""
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _describe(summary: SimulationSummary, dry_run: bool) -> str:
    faults = ", ".join(f"{k}={n}" for k, n in summary.faults.items()) or "none"
    verb = "printed" if dry_run else "published"
    line = (
        f"{verb} {summary.published}/{summary.readings} readings in {summary.seconds:.1f} s "
        f"({summary.rate:.0f}/s), faults: {faults}, seed {summary.seed}, fleet {summary.fleet_seed}"
    )
    if summary.dropped or summary.unacked:
        line += f", dropped {summary.dropped}, unacknowledged {summary.unacked}"
    if summary.reconnects:
        line += f", reconnects {summary.reconnects}"
    if summary.truth_path:
        line += f", truth → {summary.truth_path}"
    return line


@click.command()
@click.option("--devices", default=10, show_default=True, type=click.IntRange(min=1), help="Number of sensors.")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), help="Total readings/s (load mode).")
@click.option("--count", type=click.IntRange(min=1), help="Stop after this many readings.")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), help="Stop after this many seconds.")
@click.option("--seed", type=int, help="Seed of the noise and faults (default: random, printed in the summary).")
@click.option(
    "--fleet-seed",
    type=int,
    help="Seed of who the devices are (levels, phase) [default: --seed if given, else the data directory's fleet].",
)
@click.option(
    "--demo",
    is_flag=True,
    help="The data directory's demo fleet with its slow scripted degradation, other faults from the catalogue.",
)
@click.option(
    "--anomaly-rate",
    default=0.01,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Chance that a healthy reading starts a fault.",
)
@click.option("--kinds", help=f"Comma-separated fault kinds (default all: {','.join(FAULT_KINDS)}).")
@click.option(
    "--truth",
    "truth_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Ground-truth JSONL file, appended to [default: <data_dir>/simulator/truth.jsonl; none for a dry run].",
)
@click.option(
    "--time-compression",
    default=DEFAULT_TIME_COMPRESSION,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Degradation speed-up: simulated seconds per wall-clock second.",
)
@click.option("--daily-cycle/--no-daily-cycle", default=True, show_default=True, help="Daily load cycle.")
@click.option("--dry-run", is_flag=True, help="Print payloads (one JSON per line) instead of publishing.")
@click.option("--host", help="MQTT host (default GRIDMON_MQTT_HOST).")
@click.option("--port", type=int, help="MQTT port (default GRIDMON_MQTT_PORT).")
@click.option("--client-id", help="MQTT client id (default gridmon-sim-<pid>).")
@click.option(
    "--connect-timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds to keep trying the broker at start-up.",
)
@click.option(
    "--max-inflight",
    default=1000,
    show_default=True,
    type=click.IntRange(1, 50_000),
    help="Unacknowledged QoS 1 messages allowed in flight.",
)
@click.option(
    "--sparkplug",
    is_flag=True,
    help="Publish as a Sparkplug B edge node (births, data by alias) instead of JSON; "
    "the bridge needs GRIDMON_SPARKPLUG_GROUP set to the same group.",
)
@click.option("--sparkplug-group", help="Sparkplug B group id [default: GRIDMON_SPARKPLUG_GROUP or 'gridmon'].")
@click.option("--sparkplug-node", default="gridmon-sim", show_default=True, help="Sparkplug B edge node id.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON line.")
def simulate(
    devices: int,
    rate: float | None,
    count: int | None,
    duration: float | None,
    seed: int | None,
    fleet_seed: int | None,
    demo: bool,
    anomaly_rate: float,
    kinds: str | None,
    truth_path: Path | None,
    time_compression: float,
    daily_cycle: bool,
    dry_run: bool,
    host: str | None,
    port: int | None,
    client_id: str | None,
    connect_timeout: float,
    max_inflight: int,
    sparkplug: bool,
    sparkplug_group: str | None,
    sparkplug_node: str,
    as_json: bool,
) -> None:
    """Simulated grid sensors publishing readings to grid/sensors/<device_id> at QoS 1."""
    settings = get_settings()
    try:
        chosen = validate_kinds(kinds.split(",")) if kinds is not None else (HISTORY_KINDS if demo else FAULT_KINDS)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--kinds") from None
    degradation = None
    if fleet_seed is None and (demo or seed is None):
        identity = ensure_identity(fleet_file(Path(settings.data_dir)), time.time())
        fleet_seed = identity.seed
        if demo:
            degradation = demo_degradation(identity, fleet_profiles(identity, devices))
    config = SimulationConfig(
        devices=devices,
        seed=secrets.randbits(31) if seed is None else seed,
        fleet_seed=fleet_seed,
        degradation=degradation,
        anomaly_rate=anomaly_rate,
        kinds=chosen,
        time_compression=time_compression,
        daily_cycle=daily_cycle,
        rate=rate,
        count=count,
        duration_s=duration,
    )
    # A dry run publishes nothing, so its faults only go to a truth file when one is named.
    if truth_path is None and not dry_run:
        truth_path = Path(settings.data_dir) / "simulator" / "truth.jsonl"
    if sparkplug and dry_run:
        raise click.BadParameter("Sparkplug B payloads are binary: no --dry-run", param_hint="--sparkplug")
    group = sparkplug_group or settings.sparkplug_group or DEFAULT_GROUP
    if group in ("+", "#"):
        group = DEFAULT_GROUP
    edge = SparkplugEdge(group, sparkplug_node, bd_seq=secrets.randbits(8)) if sparkplug else None
    sink: Sink
    if dry_run:
        sink = PrintSink(click.echo)
    else:
        publisher = MqttPublisher(
            host=host or settings.mqtt_host,
            port=port or settings.mqtt_port,
            client_id=client_id or f"gridmon-sim-{os.getpid()}",
            username=settings.mqtt_username,
            password=settings.mqtt_password,
            max_inflight=max_inflight,
            block_when_full=False,
            will=edge.node_death() if edge is not None else None,
        )
        try:
            publisher.connect(connect_timeout)
        except BrokerUnavailable as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        sink = SparkplugSink(publisher, edge) if edge is not None else publisher
    truth = TruthWriter(truth_path) if truth_path is not None else None
    target = "stdout" if dry_run else f"mqtt {host or settings.mqtt_host}:{port or settings.mqtt_port}"
    if edge is not None:
        target += f" as Sparkplug B node {group}/{sparkplug_node}"
    pace = f"{rate:g} readings/s" if rate else "every 1–3 s each"
    click.echo(
        f"simulating {devices} sensors ({pace}) → {target}, seed {config.seed}, "
        f"truth → {truth_path or 'not written'}; Ctrl-C to stop",
        err=True,
    )
    try:
        with _stop_on_signals() as stop:
            summary = run_simulation(config, sink, truth=truth, stop=stop)
    finally:
        if truth is not None:
            truth.close()
    # In a dry run stdout carries only payloads; the summary goes to stderr.
    click.echo(json.dumps(summary.to_dict()) if as_json else _describe(summary, dry_run), err=dry_run)


def register(group: click.Group) -> None:
    group.add_command(simulate)
