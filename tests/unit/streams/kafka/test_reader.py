"""When a read has reached the end (D-011), against a fake consumer: a broker that
under-reports its high watermark (Tansu 0.6.0) on cue. The embedded-broker tests
(restore, config load, the gateway) read real topics the same way."""

from __future__ import annotations

import time

from confluent_kafka import TopicPartition

from radstream.streams.kafka.reader import PartitionEnds, read_to_end
from tests.kafka_fakes import FakeMessage


class FakeConsumer:
    """Reports `reported` as each partition's high watermark but holds `messages`."""

    def __init__(self, reported: dict[tuple[str, int], int], messages: list[FakeMessage]) -> None:
        self.reported, self.messages, self.assigned = reported, list(messages), []

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float = 0) -> tuple[int, int]:
        return 0, self.reported[(tp.topic, tp.partition)]

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned = [(tp.topic, tp.partition, tp.offset) for tp in partitions]

    def poll(self, timeout: float = 0) -> FakeMessage | None:
        return self.messages.pop(0) if self.messages else None


def test_read_to_end_reads_the_tail_past_an_under_reported_watermark() -> None:
    msgs = [FakeMessage("t", 0, o) for o in range(5)]
    consumer = FakeConsumer({("t", 0): 3, ("t", 1): 0}, msgs)  # the batch 3..4 is reported as ending at 3
    got = [m.offset() for m in read_to_end(consumer, "t", [0, 1], timeout_s=5, settle_s=0.05)]
    assert got == [0, 1, 2, 3, 4]
    assert [p for _, p, _ in consumer.assigned] == [0, 1]


def test_partition_ends_are_reached_only_after_the_last_message_and_the_settle() -> None:
    consumer = FakeConsumer({("a", 0): 2, ("b", 0): 1, ("b", 1): 0}, [])
    ends = PartitionEnds(consumer, {"a": [0], "b": [0, 1]}, settle_s=0.05)
    assert [(tp.topic, tp.partition) for tp in ends.from_beginning()] == [("a", 0), ("b", 0), ("b", 1)]
    ends.saw(FakeMessage("a", 0, 1))
    time.sleep(0.06)
    assert not ends.reached()  # b[0] not yet read to its end
    ends.saw(FakeMessage("b", 0, 0))
    assert not ends.reached()  # data just arrived: the settle starts again
    time.sleep(0.06)
    assert ends.reached()
