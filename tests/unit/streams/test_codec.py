"""The Avro codec: single-object encoding that plain fastavro can read, and clear errors."""

from __future__ import annotations

import io
import json

import fastavro
import pytest

from radstream.streams.codec import MAGIC, Codec, DecodeError, schema_dir
from tests.factories import arrival_event


def test_round_trip_and_wire_format_is_plain_single_object_encoding() -> None:
    codec = Codec()
    event = arrival_event()
    data = codec.encode("DicomArrived", event)
    assert data[:2] == MAGIC
    name, decoded = codec.decode(data, expect="DicomArrived")
    assert name == "DicomArrived" and decoded == event
    # Any Avro library can read it: strip the 10-byte header and read with the .avsc alone.
    schema = fastavro.parse_schema(json.loads((schema_dir() / "DicomArrived.avsc").read_text()))
    fp = bytes.fromhex(fastavro.schema.fingerprint(fastavro.schema.to_parsing_canonical_form(schema), "CRC-64-AVRO"))
    assert data[2:10] == fp
    assert fastavro.schemaless_reader(io.BytesIO(data[10:]), schema) == event


@pytest.mark.parametrize("data,reason", [
    (b"", "empty"),
    (b"\x00\x01garbage", "not an Avro single-object"),
    (MAGIC + b"\x00" * 8 + b"x", "unknown schema fingerprint"),
    (b'{"json": true}', "not an Avro single-object"),
])
def test_garbage_is_a_permanent_decode_error(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason) as info:
        Codec().decode(data)
    assert info.value.code == "not_avro" and not info.value.transient


def test_truncated_body_and_wrong_type_are_rejected() -> None:
    codec = Codec()
    data = codec.encode("DicomArrived", arrival_event())
    with pytest.raises(DecodeError, match="corrupt Avro body"):
        codec.decode(data[:20])
    with pytest.raises(DecodeError, match="expected a StudyResult"):
        codec.decode(data, expect="StudyResult")


def test_encode_validates_against_the_contract() -> None:
    event = arrival_event()
    del event["sop_uid"]
    with pytest.raises(Exception, match="sop_uid"):
        Codec().encode("DicomArrived", event)
