"""A small producer for commands (publish, thresholds, tests): encode, send, and fail loudly.

Stages do not use this: their producing is part of the runtime's commit protocol.
"""

from __future__ import annotations

from confluent_kafka import KafkaError, Message, Producer

from radstream.streams.codec import Codec
from radstream.streams.kafka.settings import KafkaSettings
from radstream.streams.kafka.topics import schema_of


class EventProducer:
    def __init__(self, settings: KafkaSettings, codec: Codec | None = None) -> None:
        self.settings = settings
        self.codec = codec or Codec(settings.schema_registry_url)
        self._producer = Producer(settings.producer_config())
        self._errors: list[str] = []

    def send(self, topic: str, key: str | None, value: dict, headers: list | None = None) -> None:
        """Encode `value` with the schema of `topic` (logical name; topics.SCHEMAS) and send it."""
        physical = self.settings.topic(topic)
        self.send_raw(physical, key.encode() if key else None, self.codec.encode(schema_of(topic), value, physical),
                      headers)

    def send_raw(self, physical_topic: str, key: bytes | None, value: bytes | None, headers: list | None = None) -> None:
        """Bytes as they are: also how tests put poison messages on a topic."""
        self._producer.produce(physical_topic, key=key, value=value, headers=headers or [], on_delivery=self._delivered)
        self._producer.poll(0)

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._errors.append(f"{msg.topic()}: {err}")

    def flush(self, timeout_s: float = 30.0) -> None:
        remaining = self._producer.flush(timeout_s)
        if remaining or self._errors:
            errors, self._errors = self._errors, []  # reported once; the next flush starts clean
            raise RuntimeError(f"broker did not acknowledge {remaining or len(errors)} message(s): "
                               + "; ".join(errors[:3]))
