"""DLQ replay without a broker: stage -> topic, time windows, the replayed message."""

from __future__ import annotations

import pytest
from radstream.services.dlq import (
    REPLAYED_FROM,
    DeadLetter,
    in_window,
    input_topic,
    replay,
)
from radstream.services.times import iso, parse_time
from radstream.streams.kafka.settings import KafkaSettings
from radstream.streams.kafka.topics import CONSUMED


def test_every_stage_maps_to_its_consumed_topic() -> None:
    topics = [input_topic(s) for s in ("decode", "preprocess", "infer", "fuse", "qc")]
    assert topics == ["dicom.arrived", "image.decoded", "image.preprocessed", "inference.results", "findings.fused"]
    assert set(topics) == set(CONSUMED)
    with pytest.raises(LookupError, match="unknown stage"):
        input_topic("report")


def test_times_are_iso_or_epoch_ms() -> None:
    assert parse_time("1795773600000") == 1795773600000
    assert parse_time("2026-11-27T10:00:00Z") == 1795773600000
    assert parse_time("2026-11-27T10:00:00") == 1795773600000  # no zone: UTC
    assert parse_time("2026-11-27T11:00:00+01:00") == 1795773600000
    assert iso(1795773600000) == "2026-11-27T10:00:00Z"
    with pytest.raises(ValueError, match="not a time"):
        parse_time("yesterday")


def test_window_is_inclusive_and_open_ended() -> None:
    assert in_window(5, None, None) and in_window(5, 5, 5)
    assert not in_window(4, 5, None) and not in_window(6, None, 5)


def _letter(headers: list[dict]) -> DeadLetter:
    record = {"stage": "decode", "source_topic": "p.dicom.arrived", "partition": 1, "offset": 9,
              "key": b"1.2.3", "value": b"\xc3\x01original", "headers": headers, "error_class": "PERMANENT",
              "error_code": "blob_missing", "error_message": "blob not found: file:///x", "attempts": 1,
              "failed_at": 1795773600000}
    return DeadLetter("p.dicom.arrived.dlq", 2, 17, record)


def test_replay_headers_keep_the_original_and_name_the_dlq_record() -> None:
    letter = _letter([{"key": "traceparent", "value": b"00-ab"}, {"key": REPLAYED_FROM, "value": b"old@0:1"}])
    assert letter.replay_headers() == [("traceparent", b"00-ab"), (REPLAYED_FROM, b"p.dicom.arrived.dlq@2:17")]
    assert letter.summary() == ("2026-11-27T10:00:00Z 2:17 blob_missing key=1.2.3 attempts=1 "
                                "blob not found: file:///x")


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple] = []
        self.flushed = 0

    def send_raw(self, topic: str, key: bytes | None, value: bytes | None, headers: list) -> None:
        self.sent.append((topic, key, value, headers))

    def flush(self) -> None:
        self.flushed += 1


def test_replay_sends_original_bytes_to_the_source_topic() -> None:
    letter, producer = _letter([]), FakeProducer()
    done = replay(KafkaSettings.from_env("x:1", {}), [letter], producer)  # type: ignore[arg-type]
    assert done == [(letter, "p.dicom.arrived")]
    assert producer.sent == [("p.dicom.arrived", b"1.2.3", b"\xc3\x01original", [(REPLAYED_FROM, b"p.dicom.arrived.dlq@2:17")])]
    assert producer.flushed == 1


def test_dry_run_sends_nothing() -> None:
    producer = FakeProducer()
    assert len(replay(KafkaSettings.from_env("x:1", {}), [_letter([])], producer, dry_run=True)) == 1  # type: ignore[arg-type]
    assert producer.sent == [] and producer.flushed == 0


def test_the_shared_study_results_dlq_is_read_per_stage_and_replayed_for_that_stage_only() -> None:
    """forward and every export stage consume study.results and share its DLQ: `--stage export-dicom`
    reads the DLQ of study.results, and its replay names export-dicom, so the others skip it."""
    from radstream.services.dlq import REPLAYED_FOR, replayed_for_another

    assert input_topic("export-dicom") == input_topic("forward") == "study.results"
    letter = DeadLetter("p.study.results.dlq", 0, 3, {**_letter([]).record, "stage": "export-dicom"})
    headers = letter.replay_headers()
    assert (REPLAYED_FOR, b"export-dicom") in headers
    assert replayed_for_another(headers, "export-stow") and replayed_for_another(headers, "forward")
    assert not replayed_for_another(headers, "export-dicom") and not replayed_for_another([], "export-stow")
