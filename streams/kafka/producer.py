"""Producing, and knowing whether the broker acknowledged it.

`AcknowledgedProducer` holds the one flush-and-error rule: `flush` raises DeliveryFailed
unless every message produced since the last flush was acknowledged (the client is
idempotent with acks=all: KafkaSettings.producer_config). It also numbers what it sends, so
a caller can ask, without waiting, whether everything sent before a `mark` is acknowledged
(`acknowledged`, `failed`): the runtime's checkpoint commits a stateless stage's offsets
that way (streams/checkpoint.py, D-060). Commands (publish, thresholds, tests) use
EventPublisher, which adds the codec.
"""

from __future__ import annotations

from confluent_kafka import KafkaError, Message, Producer

from radstream.streams.codec import Codec
from radstream.streams.kafka.settings import KafkaSettings
from radstream.streams.kafka.topics import schema_of

Headers = list[tuple[str, bytes | None]]


class DeliveryFailed(RuntimeError):
    """The broker did not acknowledge every message: whatever they stood for is not done."""


class AcknowledgedProducer:
    """A producer client plus the delivery reports of what it sent since the last flush."""

    def __init__(self, client: Producer) -> None:
        self._client = client
        self._errors: list[str] = []
        self.sent = 0  # messages produced so far; message n (from 0) is acknowledged once n is out of _unacked
        self._unacked: set[int] = set()
        self._first_failed: int | None = None  # the lowest numbered message the broker refused

    def produce(self, topic: str, key: bytes | None, value: bytes | None, headers: Headers | None = None,
                partition: int | None = None) -> None:
        """Queue one message; when the local queue is full, let it drain and retry (never drop)."""
        seq = self.sent
        kwargs: dict = {"key": key, "value": value, "headers": headers or [],
                        "on_delivery": lambda err, msg: self._delivered(err, msg, seq)}
        if partition is not None:
            kwargs["partition"] = partition
        while True:
            try:
                self._client.produce(topic, **kwargs)
                break
            except BufferError:
                self._client.poll(0.1)
        self._unacked.add(seq)
        self.sent += 1

    def poll(self, timeout_s: float = 0.0) -> int:
        """Serve delivery reports (and nothing else) for up to `timeout_s`."""
        return self._client.poll(timeout_s)

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait for every queued message; raise DeliveryFailed if any was not acknowledged.

        The failures are reported once: the next flush judges only what was produced after."""
        remaining = self._client.flush(timeout_s)
        if remaining or self._errors:
            errors, self._errors = self._errors, []
            detail = "; ".join(errors[:3]) or f"{remaining} still queued after {timeout_s:g}s"
            raise DeliveryFailed(f"broker did not acknowledge {remaining + len(errors)} message(s): {detail}")

    def acknowledged(self, mark: int) -> bool:
        """Whether every message produced before `mark` (a past value of `sent`) was acknowledged,
        as far as the delivery reports served so far (`poll`) say."""
        return (not self._unacked or min(self._unacked) >= mark) and not self.failed(mark)

    def failed(self, mark: int) -> bool:
        """Whether the broker refused a message produced before `mark`."""
        return self._first_failed is not None and self._first_failed < mark

    def drain(self, timeout_s: float) -> int:
        """Wait up to `timeout_s` for in-flight messages without judging them (shutdown, where
        every batch has already been judged by its checkpoint); returns how many are left."""
        return self._client.flush(timeout_s)

    def _delivered(self, err: KafkaError | None, msg: Message, seq: int) -> None:
        self._unacked.discard(seq)
        if err is not None:
            self._errors.append(f"{msg.topic()}: {err}")
            self._first_failed = seq if self._first_failed is None else min(self._first_failed, seq)


def open_producer(settings: KafkaSettings, linger_ms: int | None = None) -> AcknowledgedProducer:
    """`linger_ms`: instead of the settings' (0 for a stage that does not flush after each batch,
    so its outputs leave at once, as a flush would send them)."""
    return AcknowledgedProducer(Producer(settings.producer_config(linger_ms)))


class EventPublisher:
    """A small producer for commands (publish, thresholds, tests): encode, send, and fail loudly.

    Stages do not use this: their producing is part of the runtime's checkpoint (streams/checkpoint.py).
    """

    def __init__(self, settings: KafkaSettings, codec: Codec | None = None) -> None:
        self.settings = settings
        self.codec = codec or Codec(settings.schema_registry_config())
        self._producer = open_producer(settings)

    def send(self, topic: str, key: str | None, value: dict, headers: list | None = None) -> None:
        """Encode `value` with the schema of `topic` (logical name; topics.SCHEMAS) and send it."""
        physical = self.settings.topic(topic)
        self.send_raw(physical, key.encode() if key else None, self.codec.encode(schema_of(topic), value, physical),
                      headers)

    def send_raw(self, physical_topic: str, key: bytes | None, value: bytes | None, headers: list | None = None) -> None:
        """Bytes as they are: also how tests put poison messages on a topic."""
        self._producer.produce(physical_topic, key, value, headers)
        self._producer.poll(0)

    def flush(self, timeout_s: float = 30.0) -> None:
        """Raises DeliveryFailed (a RuntimeError) unless everything sent was acknowledged."""
        self._producer.flush(timeout_s)

    def close(self) -> None:
        """Destroy the client now, while its broker is still up: one left for the garbage
        collector outlives a stack's broker, and librdkafka then prints its disconnects and
        refused reconnects on the terminal. Unacknowledged sends are the caller's (flush first)."""
        self._producer = None  # type: ignore[assignment]
