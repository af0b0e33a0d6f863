"""`radstream blobs gc`: retention for the blob store (domain/retention.py decides, this reads).

Raw and derived are the store's areas (D-029); which studies a raw blob belongs to comes from
`dicom.arrived` (each arrival names its DICOM blob); which studies are
final from `study.results`; whether a result was exported from the committed offsets of the
export consumer groups (`radstream-export-<target>`): a group has consumed a result when its
committed offset on that partition is past the result's offset.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import TopicPartition
from radstream.domain.retention import FinalResult, RetentionPlan, plan_retention
from radstream.streams.blobstore import BlobStore
from radstream.streams.codec import Codec, DecodeError
from radstream.streams.kafka.consumer import group_consumer
from radstream.streams.kafka.reader import read_events
from radstream.streams.kafka.settings import KafkaSettings
from radstream.streams.kafka.topics import DICOM_ARRIVED, STUDY_RESULTS, dlq, stat_twin


@dataclass(frozen=True)
class GcSummary:
    plan: RetentionPlan
    deleted: int
    freed_bytes: int
    dry_run: bool

    def line(self) -> str:
        raw = [d for d in self.plan.deletions if d.area == "raw"]
        derived = [d for d in self.plan.deletions if d.area == "derived"]
        verb = "would delete" if self.dry_run else "deleted"
        return (f"blobs gc: {verb} {len(raw)} raw and {len(derived)} derived blob(s), "
                f"{_mb(sum(d.blob.size_bytes for d in self.plan.deletions))}; kept raw: "
                f"{self.plan.kept_raw_not_final} of studies not final, {self.plan.kept_raw_recent} final but "
                f"recent or not exported, {self.plan.kept_raw_dead_lettered} dead-lettered, "
                f"{self.plan.kept_raw_unnamed} named by no arrival; "
                f"kept derived: {self.plan.kept_derived_recent} recent")


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def raw_blob_studies(settings: KafkaSettings) -> dict[str, set[str]]:
    """sha256 of each arrival's blob -> the studies that named it (urgent arrivals included: they
    are on dicom.arrived's STAT twin)."""
    raw: dict[str, set[str]] = {}
    for topic in (DICOM_ARRIVED, stat_twin(DICOM_ARRIVED)):
        for _, arrival in read_events(settings, topic, skip_undecodable=True):
            raw.setdefault(arrival["blob"]["sha256"], set()).add(arrival["study_uid"])
    return raw


def dead_lettered_raw(settings: KafkaSettings) -> frozenset[str]:
    """Raw blobs of arrivals that decode dead-lettered: `dlq replay` re-reads them."""
    codec, shas = Codec(settings.schema_registry_config()), set()
    for _, letter in read_events(settings, dlq(DICOM_ARRIVED), codec=codec, skip_undecodable=True):
        try:
            _, arrival = codec.decode(letter["value"], "DicomArrived")
        except DecodeError:  # a malformed arrival names no blob we could keep for it
            continue
        shas.add(arrival["blob"]["sha256"])
    return frozenset(shas)


def final_results(settings: KafkaSettings, export_targets: list[str]) -> dict[str, FinalResult]:
    """The latest final result of each study, and whether every export group is past it."""
    latest: dict[str, tuple[float, int, int]] = {}  # study -> (written at, partition, offset)
    for msg, result in read_events(settings, STUDY_RESULTS, skip_undecodable=True):
        if result["final"]:
            latest[result["study_uid"]] = (msg.timestamp()[1] / 1000.0, msg.partition(), msg.offset())
    committed = [_committed(settings, f"radstream-export-{t}") for t in export_targets]
    return {study: FinalResult(at, all(c.get(p, -1) > off for c in committed))
            for study, (at, p, off) in latest.items()}


def _committed(settings: KafkaSettings, group: str) -> dict[int, int]:
    """Committed offset per partition of study.results for one consumer group (none: -1)."""
    topic = settings.topic(STUDY_RESULTS)
    consumer = group_consumer(settings, settings.group(group))
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        tps = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        return {tp.partition: tp.offset for tp in tps if tp.offset >= 0}
    finally:
        consumer.close()


def collect(store: BlobStore, settings: KafkaSettings, raw_after_s: float, derived_after_s: float,
            export_targets: list[str], dry_run: bool, progress: Callable[[str], None] = print,
            now: float | None = None) -> GcSummary:
    raw = raw_blob_studies(settings)
    dead = dead_lettered_raw(settings)
    finals = final_results(settings, export_targets)
    progress(f"blobs gc: {len(raw)} raw blob(s) named by arrivals ({len(dead)} dead-lettered), "
             f"{len(finals)} final stud(ies)"
             + (f", exports required: {', '.join(export_targets)}" if export_targets else ""))
    stored = list(store.stored())
    progress(f"blobs gc: {len(stored)} blob(s) in the store")
    plan = plan_retention(stored, raw, finals, time.time() if now is None else now, raw_after_s,
                          derived_after_s, dead)
    deleted = freed = 0
    for i, d in enumerate(plan.deletions, 1):
        if not dry_run and store.delete(d.blob):
            deleted += 1
            freed += d.blob.size_bytes
        if i % 1000 == 0 or len(plan.deletions) <= 20:
            progress(f"  {'would delete' if dry_run else 'deleted'} {d.area} {d.blob.sha256[:16]} ({d.reason})"
                     if len(plan.deletions) <= 20 else f"  {i}/{len(plan.deletions)}")
    return GcSummary(plan, deleted, freed, dry_run)
