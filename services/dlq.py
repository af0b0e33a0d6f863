"""Dead letters: list them, and replay them onto the topic they came from.

A stage's DLQ is `<input topic>.dlq` (the runtime writes it). Each DeadLetter keeps
the original key, value bytes and headers, so a replay re-produces exactly the
message that failed, plus one header saying where it came from. Replaying twice, or
replaying a message that later succeeded, is harmless: every output carries an
idempotency key derived from its inputs, and consumers deduplicate on it.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Iterator
from dataclasses import dataclass

from radstream.services.times import iso
from radstream.streams.codec import Codec
from radstream.streams.kafka.producer import EventPublisher
from radstream.streams.kafka.reader import read_events
from radstream.streams.kafka.settings import KafkaSettings
from radstream.streams.kafka.topics import STUDY_RESULTS, dlq
from radstream.streams.stage import Stage

REPLAYED_FROM = "radstream-replayed-from"
# study.results has several consumers (forward and every `export <target>`), which share one DLQ: a
# replay names the stage it is for, and the others skip it (ExportStage, WebhookForwarder).
REPLAYED_FOR = "radstream-replayed-for"
RESULT_CONSUMERS = re.compile(r"^(forward|export-[a-z0-9]+)$")


def replayed_for_another(headers: list[tuple[str, bytes | None]], stage: str) -> bool:
    """Whether a message is a DLQ replay meant for another consumer of the same topic."""
    for key, value in headers:
        if key == REPLAYED_FOR and value is not None and value.decode("utf-8", "replace") != stage:
            return True
    return False


def input_topic(stage: str) -> str:
    """The logical input topic of a stage, from its Stage class (`streams/stages/<stage>.py`); the
    consumers of study.results (`forward`, `export-<target>`) read it too."""
    from radstream.streams.stages.registry import STAGES

    if RESULT_CONSUMERS.match(stage):
        return STUDY_RESULTS
    if stage not in STAGES:
        raise LookupError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")
    module = importlib.import_module(f"radstream.streams.stages.{stage}")
    for _, cls in inspect.getmembers(module, inspect.isclass):
        if issubclass(cls, Stage) and cls is not Stage and getattr(cls, "name", None) == stage:
            return cls.input_topic
    raise LookupError(f"no Stage class named {stage!r} in {module.__name__}")


@dataclass(frozen=True)
class DeadLetter:
    """One DLQ record and where it sits in the DLQ topic."""

    dlq_topic: str  # physical
    partition: int
    offset: int
    record: dict

    @property
    def origin(self) -> str:
        return f"{self.dlq_topic}@{self.partition}:{self.offset}"

    def replay_headers(self) -> list[tuple[str, bytes | None]]:
        """The original headers, with one `radstream-replayed-from` naming this DLQ record (the latest replay wins)
        and, for a consumer of study.results, one `radstream-replayed-for` naming the stage that failed."""
        kept = [(h["key"], h["value"]) for h in self.record["headers"] if h["key"] not in (REPLAYED_FROM, REPLAYED_FOR)]
        kept.append((REPLAYED_FROM, self.origin.encode()))
        if RESULT_CONSUMERS.match(self.record["stage"]):  # a shared DLQ: only the stage that failed takes it
            kept.append((REPLAYED_FOR, self.record["stage"].encode()))
        return kept

    def summary(self) -> str:
        r = self.record
        key = r["key"].decode("utf-8", "replace") if r["key"] is not None else "-"
        return (f"{iso(r['failed_at'])} {self.partition}:{self.offset} {r['error_code']} key={key} "
                f"attempts={r['attempts']} {r['error_message']}")


def in_window(failed_at: int, since: int | None, until: int | None) -> bool:
    return (since is None or failed_at >= since) and (until is None or failed_at <= until)


def dead_letters(settings: KafkaSettings, stage: str, since: int | None = None, until: int | None = None,
                 codec: Codec | None = None) -> Iterator[DeadLetter]:
    """Every DLQ record of `stage` (oldest first per partition) whose failed_at is in [since, until].
    A DLQ that several stages share (study.results.dlq) yields only the records `stage` wrote."""
    logical = dlq(input_topic(stage))
    physical = settings.topic(logical)
    shared = bool(RESULT_CONSUMERS.match(stage))
    for msg, record in read_events(settings, logical, codec=codec):
        if shared and record["stage"] != stage:
            continue
        if in_window(record["failed_at"], since, until):
            yield DeadLetter(physical, msg.partition(), msg.offset(), record)


def replay(settings: KafkaSettings, letters: list[DeadLetter], producer: EventPublisher | None = None,
           dry_run: bool = False) -> list[tuple[DeadLetter, str]]:
    """Re-produce each letter's original key, value and headers onto its source topic; (letter, topic) pairs."""
    done = []
    for letter in letters:
        target = letter.record["source_topic"]
        if not dry_run:
            producer = producer or EventPublisher(settings)
            producer.send_raw(target, letter.record["key"], letter.record["value"], letter.replay_headers())
        done.append((letter, target))
    if producer is not None and not dry_run:
        producer.flush()
    return done
