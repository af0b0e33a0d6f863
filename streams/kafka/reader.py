"""Reading topics without joining a group: changelog restore, the config topic, and commands.

`PartitionEnds` is the one place that decides when a partition has been read to its
end (`read_to_end` and the gateway's source use it). It does not trust the high
watermark alone: Tansu 0.6.0 reports it as the first offset of the last batch + 1
(docs/evidence/faust-on-tansu.md), which would silently drop the tail of that batch.
So after reaching the reported end it keeps reading until no data has arrived for
`settle_s`. On Apache Kafka the watermark is exact and the settle only costs that much
time once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import logging

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition

from radstream.streams.codec import Codec
from radstream.streams.kafka.consumer import standalone_consumer
from radstream.streams.kafka.settings import KafkaSettings
from radstream.streams.kafka.topics import schema_of

log = logging.getLogger(__name__)


def partitions_of(consumer: Consumer, topic: str, timeout_s: float = 30.0) -> list[int]:
    meta = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
    if meta is None or meta.error is not None:
        raise LookupError(f"topic {topic} does not exist (run `radstream topics create`)")
    return sorted(meta.partitions)


class PartitionEnds:
    """The ends some partitions had when a read began, and whether the read has reached them.

    Reached means: the last message before each recorded end has been seen, and then no data
    has arrived for `settle_s` (D-011). Feed it every message read (`saw`), ask `reached()`
    whenever a poll comes back empty.
    """

    def __init__(self, consumer: Consumer, partitions: dict[str, list[int]], timeout_s: float = 60.0,
                 settle_s: float = 0.5) -> None:
        self.ends = {(t, p): consumer.get_watermark_offsets(TopicPartition(t, p), timeout=timeout_s)[1]
                     for t, ps in partitions.items() for p in ps}
        self.settle_s = settle_s
        self._pending = {tp for tp, end in self.ends.items() if end > 0}
        self._last_data = time.monotonic()

    def from_beginning(self) -> list[TopicPartition]:
        """What to `assign()` to read these partitions from their first offset."""
        return [TopicPartition(t, p, OFFSET_BEGINNING) for t, p in self.ends]

    def from_time(self, consumer: Consumer, since_ms: int, timeout_s: float = 60.0) -> list[TopicPartition]:
        """What to `assign()` to read these partitions from the first record at or after `since_ms`
        (the broker's time index); a partition with none is read from its end, and a broker that
        cannot answer is read from the beginning (the caller filters by timestamp either way)."""
        try:
            found = consumer.offsets_for_times([TopicPartition(t, p, since_ms) for t, p in self.ends], timeout=timeout_s)
        except KafkaException as exc:
            log.debug("offsets for time %d not available (%s): reading from the beginning", since_ms, exc)
            return self.from_beginning()
        out = []
        for tp in found:
            key = (tp.topic, tp.partition)
            if tp.error is not None:
                out.append(TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING))
            elif tp.offset < 0:  # nothing at or after since_ms: nothing to wait for either
                self._pending.discard(key)
                out.append(TopicPartition(tp.topic, tp.partition, self.ends[key]))
            else:
                out.append(TopicPartition(tp.topic, tp.partition, tp.offset))
        return out

    def saw(self, msg: Message) -> None:
        self._last_data = time.monotonic()
        tp = (msg.topic(), msg.partition())
        if tp in self._pending and msg.offset() >= self.ends[tp] - 1:
            self._pending.discard(tp)

    def reached(self) -> bool:
        return not self._pending and time.monotonic() - self._last_data >= self.settle_s


def read_to_end(consumer: Consumer, topic: str, partitions: list[int], timeout_s: float = 60.0,
                settle_s: float = 0.5, since_ms: int | None = None) -> Iterator[Message]:
    """Assign `partitions` of `topic` from the beginning (or from `since_ms`, by the broker's
    time index, where it has one); yield every message up to the end.

    The consumer stays assigned afterwards, so a caller may go on following the topic.
    """
    ends = PartitionEnds(consumer, {topic: partitions}, timeout_s, settle_s)
    consumer.assign(ends.from_beginning() if since_ms is None else ends.from_time(consumer, since_ms, timeout_s))
    deadline = time.monotonic() + timeout_s
    while True:
        msg = consumer.poll(0.05)
        if msg is None or msg.error():
            if msg is not None and msg.error().code() != KafkaError._PARTITION_EOF:
                raise RuntimeError(f"reading {topic}: {msg.error()}")
            if ends.reached():
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic} not read to its end within {timeout_s:.0f}s "
                                   f"(ends {({p: end for (_, p), end in ends.ends.items()})})")
            continue
        ends.saw(msg)
        yield msg


def read_topic(settings: KafkaSettings, topic: str, follow: bool = False, idle_timeout_s: float | None = None,
               timeout_s: float = 30.0, since_ms: int | None = None) -> Iterator[Message]:
    """Yield messages of `topic` (logical name) to its end, or forever with `follow=True`.

    `idle_timeout_s` ends a follow after that long without data. `since_ms`: start at the first
    record at or after that time where the broker can say which (earlier ones may still come).
    """
    physical = settings.topic(topic)
    consumer = standalone_consumer(settings)
    try:
        yield from read_to_end(consumer, physical, partitions_of(consumer, physical, timeout_s), timeout_s,
                               since_ms=since_ms)
        last_data = time.monotonic()
        while follow:
            msg = consumer.poll(0.2)
            if msg is None or msg.error():
                if idle_timeout_s is not None and time.monotonic() - last_data > idle_timeout_s:
                    return
                continue
            last_data = time.monotonic()
            yield msg
    finally:
        consumer.close()


def read_events(settings: KafkaSettings, topic: str, follow: bool = False, idle_timeout_s: float | None = None,
                codec: Codec | None = None, skip_undecodable: bool = False, schema: str | None = None,
                timeout_s: float = 30.0, since_ms: int | None = None) -> Iterator[tuple[Message, dict[str, Any]]]:
    """`read_topic`, each message decoded with the schema of `topic` (topics.SCHEMAS): (message, record).

    A message that does not decode as that schema raises (DecodeError, one line), or with
    `skip_undecodable=True` is passed over. `schema` is for a topic outside the table that holds
    records of a known one (shadow replay reads arrivals from any topic it is pointed at).
    """
    codec = codec or Codec(settings.schema_registry_config())
    schema = schema or schema_of(topic)
    for msg in read_topic(settings, topic, follow=follow, idle_timeout_s=idle_timeout_s, timeout_s=timeout_s,
                          since_ms=since_ms):
        try:
            _, record = codec.decode(msg.value(), expect=schema)
        except Exception:  # the Confluent path can raise the registry's or fastavro's own errors too
            if skip_undecodable:
                continue
            raise
        yield msg, record
