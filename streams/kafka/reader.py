"""Read a whole topic without joining a group: for commands (results, dlq) and tests.

Assigns every partition from the beginning and stops at the high watermarks seen
at start, or follows forever with `follow=True`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from radstream.streams.kafka.settings import KafkaSettings


def read_topic(settings: KafkaSettings, topic: str, follow: bool = False, idle_timeout_s: float | None = None,
               timeout_s: float = 30.0) -> Iterator[Message]:
    """Yield messages of `topic` (logical name). `idle_timeout_s` ends a follow after that long without data."""
    physical = settings.topic(topic)
    consumer = Consumer(settings.consumer_config(None))
    try:
        meta = consumer.list_topics(physical, timeout=timeout_s).topics.get(physical)
        if meta is None or meta.error is not None:
            raise LookupError(f"topic {physical} does not exist (run `radstream topics create`)")
        parts = sorted(meta.partitions)
        ends = {}
        for p in parts:
            low, high = consumer.get_watermark_offsets(TopicPartition(physical, p), timeout=timeout_s)
            ends[p] = high
        consumer.assign([TopicPartition(physical, p, OFFSET_BEGINNING) for p in parts])
        done = {p for p in parts if ends[p] <= 0}
        last_data = time.monotonic()
        while follow or len(done) < len(parts):
            msg = consumer.poll(0.2)
            if msg is None:
                if idle_timeout_s is not None and time.monotonic() - last_data > idle_timeout_s:
                    return
                if not follow and time.monotonic() - last_data > timeout_s:
                    raise TimeoutError(f"reading {physical} stalled before the end offsets {ends}")
                continue
            if msg.error():
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    raise RuntimeError(f"reading {physical}: {msg.error()}")
                continue
            last_data = time.monotonic()
            if not follow and msg.offset() >= ends[msg.partition()] - 1:
                done.add(msg.partition())
            if follow or msg.offset() < ends[msg.partition()]:
                yield msg
    finally:
        consumer.close()
