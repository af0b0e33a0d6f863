"""Capacity planning (`radstream plan`): from measured per-replica rates (a `radstream bench
--json-out` file) and a study volume to replicas per stage and partitions per input topic.

Pure arithmetic over the bench report, so that it is testable without a broker. The rules:
- peak images/s = studies per day x images per study / 86,400 x peak factor;
- a stage handles (its messages / the bench's images) messages per image (fuse: one per model);
- one replica does 1000 / wall_ms messages per second (the bench's wall time per message, which
  includes the streaming overhead and, on a loaded machine, the wait for a core);
- replicas = that load over one replica's rate at the target utilisation, rounded up, at least 1;
- an input topic needs at least as many partitions as its largest consumer group's replicas
  (a consumer beyond them idles), and never fewer than the default count.
The monitor is one replica whatever the load (its windows are global: docs/architecture.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

SECONDS_PER_DAY = 86_400
SINGLE_REPLICA = {"monitor"}  # global state: one pod holds every partition


@dataclass(frozen=True)
class StagePlan:
    """One consumer group: `stage` as the bench names it (`infer:MODEL` per model)."""

    stage: str
    input_topic: str
    messages_per_image: float
    replica_msgs_per_s: float  # one replica, measured
    peak_msgs_per_s: float
    replicas: int


@dataclass(frozen=True)
class Plan:
    studies_per_day: int
    images_per_study: float
    peak_factor: float
    utilisation: float
    peak_images_per_s: float
    stages: list[StagePlan]
    partitions: dict[str, int]  # input topic -> partitions
    default_partitions: int

    def topic_partitions_setting(self) -> str:
        """RADSTREAM_TOPIC_PARTITIONS for the topics that need more than the default."""
        return ",".join(f"{t}={n}" for t, n in sorted(self.partitions.items()) if n > self.default_partitions)

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"RADSTREAM_TOPIC_PARTITIONS": self.topic_partitions_setting()}


def plan(bench: Mapping[str, Any], input_topics: Mapping[str, str], studies_per_day: int, *,
         images_per_study: float = 4.0, peak_factor: float = 3.0, utilisation: float = 0.7,
         default_partitions: int = 3) -> Plan:
    """`input_topics`: stage name (decode, infer, ...) -> the topic it consumes. A ValueError
    names what is wrong with the bench report or the inputs."""
    if studies_per_day <= 0 or images_per_study <= 0 or peak_factor < 1 or not 0 < utilisation <= 1:
        raise ValueError("need studies per day > 0, images per study > 0, peak factor >= 1 and 0 < utilisation <= 1")
    rows, images = bench.get("stages"), bench.get("images")
    if not isinstance(rows, list) or not rows or not isinstance(images, (int, float)) or images <= 0:
        raise ValueError("not a `radstream bench --json-out` report: it needs `images` and a non-empty `stages` list")
    peak = studies_per_day * images_per_study / SECONDS_PER_DAY * peak_factor
    stages, partitions = [], {}
    for row in rows:
        try:
            name, messages, wall_ms = str(row["stage"]), float(row["messages"]), float(row["wall_ms"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"bench stage row {row!r}: needs stage, messages and wall_ms") from None
        base = name.split(":", 1)[0]
        if base not in input_topics:
            raise ValueError(f"bench stage {name!r} is no stage this version knows ({', '.join(sorted(input_topics))})")
        if messages <= 0 or wall_ms <= 0:
            raise ValueError(f"bench stage {name!r}: messages and wall_ms must be positive")
        per_image, rate = messages / images, 1000.0 / wall_ms
        load = peak * per_image
        replicas = 1 if base in SINGLE_REPLICA else max(1, math.ceil(load / (rate * utilisation)))
        stages.append(StagePlan(name, input_topics[base], per_image, rate, load, replicas))
        topic = input_topics[base]
        partitions[topic] = max(partitions.get(topic, default_partitions), replicas)
    return Plan(studies_per_day, images_per_study, peak_factor, utilisation, peak, stages, partitions,
                default_partitions)


def format_plan(p: Plan) -> str:
    lines = [f"{p.studies_per_day:,} studies/day x {p.images_per_study:g} images, peak x{p.peak_factor:g}: "
             f"{p.peak_images_per_s:.2f} images/s at peak; replicas sized for {100 * p.utilisation:.0f}% busy",
             f"{'stage':<24} {'input topic':<20} {'msgs/img':>8} {'1 replica msg/s':>16} {'peak msg/s':>11} "
             f"{'replicas':>8} {'partitions':>10}"]
    for s in p.stages:
        lines.append(f"{s.stage:<24} {s.input_topic:<20} {s.messages_per_image:>8.2f} {s.replica_msgs_per_s:>16.1f} "
                     f"{s.peak_msgs_per_s:>11.2f} {s.replicas:>8} {p.partitions[s.input_topic]:>10}")
    setting = p.topic_partitions_setting()
    lines.append(f"RADSTREAM_TOPIC_PARTITIONS={setting}" if setting else
                 f"every input topic fits the default {p.default_partitions} partitions")
    lines.append("set each ScaledObject's maxReplicaCount to its replicas (at most its topic's partitions)")
    return "\n".join(lines)
