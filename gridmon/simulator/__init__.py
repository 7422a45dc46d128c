"""Simulated grid sensors: the device model, the fault catalogue, datasets and live publishing.

- `catalogue`: fault kinds, `Fault` (ground truth), planning and applying faults;
- `device`: normal behaviour (nominal values, daily load cycle, noise);
- `dataset`: pure, seeded datasets for scoring (`generate_dataset`, `degradation_scenario`,
  `healthy_scenario`);
- `fleet` + `runner`: the live simulator behind `gridmon simulate`;
- `payload`: the wire format; `publisher`: the QoS 1 MQTT publisher;
- `load`: healthy load payloads and paced publishing (`make_load_payloads`, `publish_readings`);
- `truth`: the ground-truth JSONL file.
"""

from gridmon.simulator.catalogue import FAULT_KINDS, Fault
from gridmon.simulator.dataset import Dataset, degradation_scenario, generate_dataset, healthy_scenario
from gridmon.simulator.load import PublishStats, make_load_payloads, publish_readings
from gridmon.simulator.payload import encode_reading
from gridmon.simulator.publisher import BrokerUnavailable, MqttPublisher

__all__ = [
    "FAULT_KINDS",
    "BrokerUnavailable",
    "Dataset",
    "Fault",
    "MqttPublisher",
    "PublishStats",
    "degradation_scenario",
    "encode_reading",
    "generate_dataset",
    "healthy_scenario",
    "make_load_payloads",
    "publish_readings",
]
