"""A downstream consumer that uses ONLY confluent-kafka, fastavro and the .avsc files.

No radstream code: this is how a reporting system would read our topics, so the
end-to-end tests prove the contracts are enough.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import fastavro
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"


def _schemas() -> dict[bytes, tuple[str, dict]]:
    out = {}
    for path in SCHEMAS.glob("*.avsc"):
        parsed = fastavro.parse_schema(json.loads(path.read_text()))
        canonical = fastavro.schema.to_parsing_canonical_form(parsed)
        out[bytes.fromhex(fastavro.schema.fingerprint(canonical, "CRC-64-AVRO"))] = (path.stem, parsed)
    return out


class PlainReader:
    """Reads whole topics from the beginning and keeps every decoded record."""

    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        self.schemas = _schemas()
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "plain-reader",
                                  "enable.auto.commit": False, "fetch.wait.max.ms": 50})
        parts = []
        for t in topics:
            meta = self.consumer.list_topics(t, timeout=10).topics[t]
            parts += [TopicPartition(t, p, OFFSET_BEGINNING) for p in meta.partitions]
        self.consumer.assign(parts)
        self.records: dict[str, list[dict]] = {t: [] for t in topics}

    def decode(self, data: bytes) -> dict:
        assert data[:2] == b"\xc3\x01", "not Avro single-object encoding"
        _, schema = self.schemas[data[2:10]]
        return fastavro.schemaless_reader(io.BytesIO(data[10:]), schema)

    def poll_until(self, done, timeout_s: float, on_idle=None) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if done(self.records):
                return True
            msg = self.consumer.poll(0.2)
            if on_idle:
                on_idle()
            if msg is None or msg.error():
                continue
            self.records[msg.topic()].append(self.decode(msg.value()))
        return done(self.records)

    def close(self) -> None:
        self.consumer.close()


def raw_records(bootstrap: str, topics: list[str], settle_polls: int = 20) -> tuple[list[tuple], dict]:
    """Every record of `topics` as (topic, partition, offset, key, value, headers), read from the
    beginning until `settle_polls` empty polls of 0.1 s in a row; also the high watermarks seen
    at start, per (topic, partition)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "raw-reader", "enable.auto.commit": False})
    parts = [TopicPartition(t, p, OFFSET_BEGINNING) for t in topics
             for p in consumer.list_topics(t, timeout=10).topics[t].partitions]
    ends = {(tp.topic, tp.partition): consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in parts}
    consumer.assign(parts)
    records, idle = [], 0
    while idle < settle_polls:
        msg = consumer.poll(0.1)
        if msg is None or msg.error():
            idle += 1
            continue
        idle = 0
        records.append((msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value(), tuple(msg.headers() or ())))
    consumer.close()
    return records, ends
