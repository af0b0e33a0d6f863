"""Topic names and their creation. Logical names here; KafkaSettings.topic() adds the prefix."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import NewTopic

from radstream.domain.priority import STAT
from radstream.streams.kafka.admin import admin_client
from radstream.streams.kafka.settings import KafkaSettings

DICOM_ARRIVED = "dicom.arrived"
IMAGE_DECODED = "image.decoded"
IMAGE_PREPROCESSED = "image.preprocessed"
INFERENCE_RESULTS = "inference.results"
# A candidate model version's results (`radstream stage infer --model M --shadow`): the same
# contract as inference.results, read by `radstream models compare` only; fuse never consumes it.
INFERENCE_SHADOW = "inference.shadow"
FINDINGS_FUSED = "findings.fused"
STUDY_RESULTS = "study.results"
FINDINGS_OVERRIDES = "findings.overrides"
CONFIG_THRESHOLDS = "config.thresholds"
# Every pushed record, never compacted: `radstream thresholds history` reads this.
CONFIG_AUDIT = "config.thresholds.audit"
# Verdicts a reader ignored (unsigned, unknown key), each marked with the reason and the reader.
OVERRIDES_AUDIT = "findings.overrides.audit"
# The monitor stage's drift alarms, raised and cleared (streams/stages/monitor.py).
MONITOR_ALARMS = "monitor.alarms"

PIPELINE = [DICOM_ARRIVED, IMAGE_DECODED, IMAGE_PREPROCESSED, INFERENCE_RESULTS, FINDINGS_FUSED, STUDY_RESULTS]
# Topics a stage consumes: each gets a dead-letter topic.
CONSUMED = [DICOM_ARRIVED, IMAGE_DECODED, IMAGE_PREPROCESSED, INFERENCE_RESULTS, FINDINGS_FUSED]
# Stateful stages keep a compacted changelog, co-partitioned with their input.
CHANGELOGS = {"fuse": "radstream.fuse.changelog", "qc": "radstream.qc.changelog",
              # the PACS export edges: the SR each stored last per study (services/export/predecessors.py)
              "export-dicom": "radstream.export-dicom.changelog", "export-stow": "radstream.export-stow.changelog",
              # the monitor: findings, verdicts and drift windows (streams/monitoring.py)
              "monitor": "radstream.monitor.changelog"}


def dlq(topic: str) -> str:
    return f"{topic}.dlq"


# The STAT lane (D-044): an urgent event of these topics travels on its twin `<topic>.stat`, which
# the consuming stage drains first: every stage's input from decode to qc (D-057: fuse and qc read
# partition p of both topics on one member, into one state per partition). study.results, read by
# the reporting edges, has none. A twin shares its topic's schema, partitions and DLQ.
STAT_SUFFIX = ".stat"
STAT_LANED = (DICOM_ARRIVED, IMAGE_DECODED, IMAGE_PREPROCESSED, INFERENCE_RESULTS, FINDINGS_FUSED)


def stat_twin(topic: str) -> str:
    return f"{topic}{STAT_SUFFIX}"


def lane_of(topic: str, value: Mapping[str, Any]) -> str:
    """The logical topic an event of `topic` goes to: its .stat twin when the event is urgent."""
    return stat_twin(topic) if topic in STAT_LANED and value.get("priority") == STAT else topic


# Topics whose records failed somewhere get a dead-letter topic: the consumed ones, plus study.results
# (what the webhook forwarder could not deliver) and findings.overrides (what the monitor could not read).
DEAD_LETTERED = [*CONSUMED, STUDY_RESULTS, FINDINGS_OVERRIDES]

# The one pairing of a topic with the contract (`schemas/<name>.avsc`) its records follow. Stage outputs,
# the runtime's decode of inputs, the producer and `read_events` all look the schema up here.
# Changelogs are absent: they hold the stages' JSON state, not events.
SCHEMAS: dict[str, str] = {
    DICOM_ARRIVED: "DicomArrived",
    IMAGE_DECODED: "ImageDecoded",
    IMAGE_PREPROCESSED: "ImagePreprocessed",
    INFERENCE_RESULTS: "InferenceResult",
    INFERENCE_SHADOW: "InferenceResult",
    FINDINGS_FUSED: "FindingsFused",
    STUDY_RESULTS: "StudyResult",
    FINDINGS_OVERRIDES: "FindingOverride",
    CONFIG_THRESHOLDS: "ThresholdSet",
    CONFIG_AUDIT: "ThresholdSet",
    OVERRIDES_AUDIT: "FindingOverride",
    MONITOR_ALARMS: "MonitorAlarm",
    **{dlq(t): "DeadLetter" for t in DEAD_LETTERED},
}
SCHEMAS.update({stat_twin(t): SCHEMAS[t] for t in STAT_LANED})


def schema_of(topic: str) -> str:
    """The schema name of a logical topic's records."""
    try:
        return SCHEMAS[topic]
    except KeyError:
        raise LookupError(f"no schema for topic {topic!r}: add it to SCHEMAS in {__name__}") from None


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    compacted: bool = False
    retain_forever: bool = False

    def topic_config(self) -> dict[str, str]:
        if self.compacted:
            return {"cleanup.policy": "compact"}
        return {"retention.ms": "-1"} if self.retain_forever else {}


# The input each changelog is co-partitioned with (its stage's input_topic; a unit test checks).
CHANGELOG_INPUTS = {"fuse": INFERENCE_RESULTS, "qc": FINDINGS_FUSED, "export-dicom": STUDY_RESULTS,
                    "export-stow": STUDY_RESULTS, "monitor": STUDY_RESULTS}


def parse_topic_partitions(text: str) -> dict[str, int]:
    """RADSTREAM_TOPIC_PARTITIONS (`image.preprocessed=12,inference.results=6`): partitions per
    pipeline topic, over RADSTREAM_PARTITIONS. A ValueError names what is wrong."""
    found: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, count = item.partition("=")
        name = name.strip()
        if not sep or name not in PIPELINE or not count.strip().isdigit() or int(count) < 1:
            raise ValueError(f"RADSTREAM_TOPIC_PARTITIONS: {item!r} is not TOPIC=N with TOPIC one of "
                             f"{', '.join(PIPELINE)} and N >= 1")
        found[name] = int(count)
    return found


def topic_specs(partitions: int = 3, per_topic: Mapping[str, int] | None = None) -> list[TopicSpec]:
    """Every topic with its partitions: `per_topic` (pipeline topics) over `partitions`. A topic's
    STAT twin and DLQ take its count, a changelog its stage's input's (co-partitioning), so that
    a stage's consumers can scale to the partitions of what they read."""
    per_topic = per_topic or {}

    def count(topic: str) -> int:
        return per_topic.get(topic, partitions)

    specs = [TopicSpec(t, count(t)) for t in PIPELINE]
    specs += [TopicSpec(stat_twin(t), count(t)) for t in STAT_LANED]
    specs += [TopicSpec(dlq(t), count(t)) for t in DEAD_LETTERED]
    specs += [TopicSpec(t, count(CHANGELOG_INPUTS[stage]), compacted=True) for stage, t in CHANGELOGS.items()]
    specs.append(TopicSpec(CONFIG_THRESHOLDS, 1, compacted=True))
    specs.append(TopicSpec(FINDINGS_OVERRIDES, partitions, compacted=True))  # a radiologist's verdicts
    specs.append(TopicSpec(CONFIG_AUDIT, 1, retain_forever=True))
    specs.append(TopicSpec(OVERRIDES_AUDIT, 1, retain_forever=True))
    specs.append(TopicSpec(MONITOR_ALARMS, partitions))
    specs.append(TopicSpec(INFERENCE_SHADOW, count(INFERENCE_RESULTS)))  # keyed like inference.results
    return specs


def create_topics(settings: KafkaSettings, partitions: int = 3, timeout: float = 30.0,
                  per_topic: Mapping[str, int] | None = None) -> list[str]:
    """Create every topic that does not exist yet; return the names created."""
    admin = admin_client(settings)
    existing = set(admin.list_topics(timeout=timeout).topics)
    new = [
        NewTopic(
            settings.topic(s.name),
            num_partitions=s.partitions,
            replication_factor=-1,  # the broker's default
            config=s.topic_config(),
        )
        for s in topic_specs(partitions, per_topic)
        if settings.topic(s.name) not in existing
    ]
    if not new:
        return []
    created = []
    for name, future in admin.create_topics(new, request_timeout=timeout).items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    return created
