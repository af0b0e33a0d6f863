"""The one Avro codec: every event on the bus is encoded and decoded here.

Schemas come from `schemas/*.avsc` (the contracts between stages). The default wire
format is Avro single-object encoding (0xC3 0x01, the 8-byte little-endian CRC-64-AVRO
fingerprint, then the body), which any Avro library can read without a registry.
With a schema registry URL configured, the Confluent wire format is used instead.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import fastavro
import fastavro.schema
from fastavro.validation import validate

from radstream.domain.errors import PermanentError

MAGIC = b"\xc3\x01"
CONFLUENT_MAGIC = b"\x00"


def schema_dir() -> Path:
    """Folder of the `.avsc` contracts shipped with the package."""
    return Path(str(resources.files("radstream.schemas")))


def load_schema(name: str, folder: Path | None = None) -> dict:
    """Parse `<name>.avsc`; `folder` lets the compatibility test load released copies."""
    path = (folder or schema_dir()) / f"{name}.avsc"
    with open(path, encoding="utf-8") as f:
        return fastavro.parse_schema(json.load(f))


def schema_names() -> list[str]:
    return sorted(p.stem for p in schema_dir().glob("*.avsc"))


@dataclass(frozen=True)
class _Entry:
    name: str
    parsed: dict
    fingerprint: bytes


class DecodeError(PermanentError):
    """Bytes on the bus that are not one of our events."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, code="not_avro")


class Codec:
    """Encode and decode events by schema name (`DicomArrived`, `StudyResult`, ...)."""

    def __init__(self, registry: Mapping[str, str] | str | None = None) -> None:
        """`registry`: the SchemaRegistryClient settings (KafkaSettings.schema_registry_config(),
        which carries its TLS and basic auth), a bare URL, or None for single-object encoding."""
        self._by_name: dict[str, _Entry] = {}
        self._by_fp: dict[bytes, _Entry] = {}
        for name in schema_names():
            parsed = load_schema(name)
            canonical = fastavro.schema.to_parsing_canonical_form(parsed)
            fp = bytes.fromhex(fastavro.schema.fingerprint(canonical, "CRC-64-AVRO"))
            entry = _Entry(name, parsed, fp)
            self._by_name[name] = entry
            self._by_fp[fp] = entry
        if isinstance(registry, str):
            registry = {"url": registry}
        self._confluent = _ConfluentFormat(dict(registry), self._by_name) if registry else None

    def encode(self, name: str, record: dict[str, Any], topic: str = "") -> bytes:
        entry = self._entry(name)
        if not validate(record, entry.parsed, raise_errors=False):
            validate(record, entry.parsed, raise_errors=True)  # raises with the field path
        if self._confluent:
            return self._confluent.encode(name, record, topic)
        buf = io.BytesIO()
        buf.write(MAGIC)
        buf.write(entry.fingerprint)
        fastavro.schemaless_writer(buf, entry.parsed, record)
        return buf.getvalue()

    def decode(self, data: bytes | None, expect: str | None = None) -> tuple[str, dict[str, Any]]:
        """Return (schema name, record). Anything that is not a known event raises DecodeError."""
        if not data:
            raise DecodeError("empty message value")
        if data[:1] == CONFLUENT_MAGIC and self._confluent:
            name, record = self._confluent.decode(data)
        elif data[:2] == MAGIC and len(data) >= 10:
            entry = self._by_fp.get(bytes(data[2:10]))
            if entry is None:
                raise DecodeError(f"unknown schema fingerprint {bytes(data[2:10]).hex()}")
            try:
                record = fastavro.schemaless_reader(io.BytesIO(data[10:]), entry.parsed, entry.parsed)
            except Exception as exc:  # fastavro raises many types on corrupt bodies
                raise DecodeError(f"corrupt Avro body for {entry.name}: {type(exc).__name__}") from exc
            name = entry.name
        else:
            raise DecodeError(f"not an Avro single-object message (starts with {bytes(data[:4]).hex()})")
        if expect and name != expect:
            raise DecodeError(f"expected a {expect} event, got {name}")
        return name, record

    def _entry(self, name: str) -> _Entry:
        try:
            return self._by_name[name]
        except KeyError:
            raise ValueError(f"no schema named {name!r} in {schema_dir()}") from None


class _ConfluentFormat:
    """Confluent wire format (magic 0, 4-byte schema id) through confluent-kafka's registry client.

    Only used when RADSTREAM_SCHEMA_REGISTRY_URL is set. Subjects follow the
    TopicNameStrategy (`<topic>-value`).
    """

    def __init__(self, conf: dict[str, str], entries: dict[str, _Entry]) -> None:
        from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

        self._client = SchemaRegistryClient(conf)
        self._schema_cls = Schema
        self._entries = entries
        self._ids: dict[tuple[str, str], int] = {}
        self._by_id: dict[int, _Entry] = {}

    def encode(self, name: str, record: dict[str, Any], topic: str) -> bytes:
        entry = self._entries[name]
        key = (name, topic)
        if key not in self._ids:
            text = json.dumps(_raw(name))
            schema_id = self._client.register_schema(f"{topic}-value", self._schema_cls(text, "AVRO"))
            self._ids[key] = schema_id
            self._by_id[schema_id] = entry
        buf = io.BytesIO()
        buf.write(CONFLUENT_MAGIC)
        buf.write(self._ids[key].to_bytes(4, "big"))
        fastavro.schemaless_writer(buf, entry.parsed, record)
        return buf.getvalue()

    def decode(self, data: bytes) -> tuple[str, dict[str, Any]]:
        schema_id = int.from_bytes(data[1:5], "big")
        entry = self._by_id.get(schema_id)
        if entry is None:
            registered = self._client.get_schema(schema_id)
            name = json.loads(registered.schema_str)["name"]
            entry = self._entries.get(name)
            if entry is None:
                raise DecodeError(f"schema id {schema_id} is {name}, not one of ours")
            self._by_id[schema_id] = entry
        record = fastavro.schemaless_reader(io.BytesIO(data[5:]), entry.parsed, entry.parsed)
        return entry.name, record


def _raw(name: str) -> dict:
    with open(schema_dir() / f"{name}.avsc", encoding="utf-8") as f:
        return json.load(f)
