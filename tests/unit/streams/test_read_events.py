"""read_events: a topic's records decoded with the table's schema, raising or skipping the rest."""

from __future__ import annotations

import pytest

from radstream.streams.codec import Codec, DecodeError
from radstream.streams.kafka import reader
from radstream.streams.kafka.reader import read_events
from radstream.streams.kafka.settings import KafkaSettings
from tests.factories import arrival_event


class FakeMessage:
    def __init__(self, value: bytes | None, offset: int) -> None:
        self._value, self._offset = value, offset

    def value(self) -> bytes | None:
        return self._value

    def offset(self) -> int:
        return self._offset


@pytest.fixture
def topic_holding(monkeypatch):
    """Make read_topic yield the given values as messages (and record which logical topic was read)."""
    read = []

    def install(*values: bytes | None):
        def fake_read_topic(settings, topic, follow=False, idle_timeout_s=None, timeout_s=30.0, since_ms=None):
            read.append(topic)
            yield from (FakeMessage(v, i) for i, v in enumerate(values))
        monkeypatch.setattr(reader, "read_topic", fake_read_topic)
        return read
    return install


def test_records_are_decoded_with_the_topics_schema(topic_holding) -> None:
    codec = Codec()
    read = topic_holding(codec.encode("DicomArrived", arrival_event(sop_uid="1")),
                         codec.encode("DicomArrived", arrival_event(sop_uid="2")))
    got = list(read_events(KafkaSettings(), "dicom.arrived", codec=codec))
    assert read == ["dicom.arrived"]
    assert [(m.offset(), r["sop_uid"]) for m, r in got] == [(0, "1"), (1, "2")]


def test_a_record_of_another_schema_or_not_avro_raises_one_line(topic_holding) -> None:
    topic_holding(Codec().encode("DicomArrived", arrival_event()))
    with pytest.raises(DecodeError, match="expected a StudyResult event, got DicomArrived"):
        list(read_events(KafkaSettings(), "study.results"))
    topic_holding(b"not avro")
    with pytest.raises(DecodeError, match="not an Avro single-object message"):
        list(read_events(KafkaSettings(), "dicom.arrived.dlq"))


def test_skip_undecodable_passes_over_foreign_records(topic_holding) -> None:
    codec = Codec()
    topic_holding(b"not avro", None, codec.encode("DicomArrived", arrival_event(sop_uid="ok")))
    got = list(read_events(KafkaSettings(), "dicom.arrived", skip_undecodable=True))
    assert [r["sop_uid"] for _, r in got] == ["ok"]


def test_a_topic_outside_the_table_needs_a_schema(topic_holding) -> None:
    topic_holding(Codec().encode("DicomArrived", arrival_event(sop_uid="r")))
    with pytest.raises(LookupError, match="no schema for topic 'recorded'"):
        list(read_events(KafkaSettings(), "recorded"))
    assert [r["sop_uid"] for _, r in read_events(KafkaSettings(), "recorded", schema="DicomArrived")] == ["r"]
