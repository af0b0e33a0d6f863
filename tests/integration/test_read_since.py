"""Reading a topic from a time (`models compare --since`): the broker's time index gives each
partition's first record at or after T, so earlier records are not read at all; a partition
with nothing after T is read from its end, not waited on. On the embedded broker, real records."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import NewTopic

from radstream.streams.kafka.admin import admin_client
from radstream.streams.kafka.consumer import standalone_consumer
from radstream.streams.kafka.reader import partitions_of, read_to_end
from radstream.streams.kafka.settings import KafkaSettings

pytestmark = pytest.mark.integration


def test_read_to_end_from_a_time_skips_what_came_before(broker) -> None:
    settings = KafkaSettings.from_env(broker.bootstrap, {})
    topic = f"since-{uuid.uuid4().hex[:8]}"
    admin = admin_client(settings)  # kept: its futures fail if the client is collected first
    [f.result() for f in admin.create_topics([NewTopic(topic, 3, -1)]).values()]
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(6):
        producer.produce(topic, f"before-{i}".encode(), partition=i % 3)
    producer.flush()
    time.sleep(0.3)
    since = int(time.time() * 1000)
    time.sleep(0.3)
    for i in range(4):  # partitions 0 and 1 get newer records; partition 2 none
        producer.produce(topic, f"after-{i}".encode(), partition=i % 2)
    producer.flush()
    consumer = standalone_consumer(settings)
    try:
        parts = partitions_of(consumer, topic)
        started = time.monotonic()
        read = [(m.partition(), m.value().decode()) for m in read_to_end(consumer, topic, parts, 30, since_ms=since)]
        assert sorted(v for p, v in read if p in (0, 1)) == [f"after-{i}" for i in range(4)]  # sought past the rest
        assert {v for p, v in read if p == 2} <= {"before-2", "before-5"}
        assert time.monotonic() - started < 15  # nothing was waited on (the 30 s timeout)
        everything = [m.value().decode() for m in read_to_end(consumer, topic, parts, 30)]
        assert len(everything) == 10
    finally:
        consumer.close()
