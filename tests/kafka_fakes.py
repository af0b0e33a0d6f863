"""A stand-in for confluent_kafka.Message, for unit tests of the Kafka layer's logic (ordering,
offsets, end detection). The real broker is in the integration tests."""

from __future__ import annotations


class FakeMessage:
    def __init__(self, topic: str, partition: int = 0, offset: int = 0) -> None:
        self._topic, self._partition, self._offset = topic, partition, offset

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def error(self) -> None:
        return None
