"""The gateway's one Kafka consumer: every partition of the four result topics, from the beginning.

No consumer group and no commits: the gateway is a read-only view and rebuilds its
index from the topics on every start. It is `ready` once every partition has been read
to the end it had at the start, decided like every read to the end (`PartitionEnds`,
D-011). The blocking confluent-kafka poll runs in a thread; each polled batch is handed
to the asyncio loop with `call_soon_threadsafe`, so neither the loop nor the clients can
stall the consumer. Overrides that no trusted key signed are dropped here, before the hub.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer

from radstream.services.gateway.events import FOLLOWED, KIND_BY_SCHEMA, Position
from radstream.services.gateway.hub import EventHub
from radstream.services.overrides import untrusted_override
from radstream.streams.codec import Codec
from radstream.domain.errors import StageError
from radstream.streams.kafka.consumer import standalone_consumer
from radstream.streams.kafka.reader import PartitionEnds, partitions_of
from radstream.streams.kafka.settings import KafkaSettings
from radstream.streams.kafka.topics import FINDINGS_OVERRIDES

log = logging.getLogger(__name__)

Batch = list[tuple[str, dict, Position]]


class KafkaEventSource:
    def __init__(self, settings: KafkaSettings, codec: Codec | None = None, batch_size: int = 500,
                 poll_s: float = 0.2, trusted: dict[str, Any] | None = None,
                 on_rejected: Callable[[dict, str], None] | None = None) -> None:
        """`on_rejected(record, reason)`: an override no trusted key signed (the gateway's
        command wires streams.config.RejectionAudit onto findings.overrides.audit)."""
        self.settings = settings
        self.codec = codec or Codec(settings.schema_registry_config())
        self.batch_size = batch_size
        self.poll_s = poll_s
        self.undecodable = 0
        self.untrusted = 0  # overrides no trusted key signed: never shown (services/overrides.py)
        self.trusted = trusted if trusted is not None else {}  # a live view of the file (Config.trusted_keys)
        self.on_rejected = on_rejected
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._logical = {settings.topic(t): t for t in FOLLOWED}

    def start(self, loop: asyncio.AbstractEventLoop, hub: EventHub) -> None:
        def deliver(batch: Batch) -> None:
            for kind, record, position in batch:
                hub.ingest(kind, record, position)

        def ready() -> None:
            hub.ready.set()

        self._thread = threading.Thread(
            target=self._run, name="gateway-kafka",
            args=(lambda b: loop.call_soon_threadsafe(deliver, b), lambda: loop.call_soon_threadsafe(ready)),
            daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout_s)

    def _run(self, hand_over: Callable[[Batch], None], on_ready: Callable[[], None]) -> None:
        consumer = standalone_consumer(self.settings)
        try:
            ends = self._assign(consumer)
            if ends is None:
                return
            ready = False
            while not self._stop.is_set():
                batch: Batch = []
                for msg in consumer.consume(self.batch_size, self.poll_s):
                    if msg.error():
                        log.warning("consumer error: %s", msg.error())
                        continue
                    ends.saw(msg)
                    item = self._decode(msg.topic(), msg.partition(), msg.offset(), msg.value())
                    if item:
                        batch.append(item)
                if batch:
                    hand_over(batch)
                if not ready and ends.reached():
                    ready = True
                    on_ready()
        finally:
            consumer.close()

    def _assign(self, consumer: Consumer) -> PartitionEnds | None:
        """Assign every partition from the beginning (waiting for the topics to exist); the start-time ends."""
        while not self._stop.is_set():
            try:
                parts = {t: partitions_of(consumer, t, 10) for t in self._logical}
                break
            except LookupError as exc:
                log.warning("gateway waiting for topics: %s", exc)
                self._stop.wait(2.0)
        else:
            return None
        ends = PartitionEnds(consumer, parts, timeout_s=10)
        consumer.assign(ends.from_beginning())
        log.info("gateway following %s (%d partitions)", ", ".join(parts), sum(len(p) for p in parts.values()))
        return ends

    def _decode(self, topic: str, partition: int, offset: int, value: bytes | None) -> tuple | None:
        try:
            name, record = self.codec.decode(value)
        except StageError as exc:
            self.undecodable += 1  # the stages dead-letter these; the gateway only shows good events
            log.warning("skipping undecodable message %s[%d]@%d: %s", topic, partition, offset, exc)
            return None
        kind = KIND_BY_SCHEMA.get(name)
        if kind is None or "study_uid" not in record:
            return None
        if kind == FINDINGS_OVERRIDES and (why := untrusted_override(record, self.trusted)) is not None:
            self.untrusted += 1
            if self.on_rejected:
                self.on_rejected(record, why)
            return None
        return kind, record, Position(self._logical.get(topic, topic), partition, offset)

