"""The receiver's core without the network: ack only after the broker did; failures are statuses."""

from __future__ import annotations

import pytest
from tests.fixtures.instances import instance_bytes

from radstream.services.receiver import CANNOT_UNDERSTAND, OUT_OF_RESOURCES, SUCCESS, InstanceSink
from radstream.streams.blobstore import FileBlobStore
from radstream.streams.codec import Codec
from radstream.streams.kafka.topics import schema_of


class FakeProducer:
    def __init__(self, fail_flush: bool = False) -> None:
        self.fail_flush = fail_flush
        self.sent: list[tuple] = []
        self.flushed: list[tuple] = []

    def send(self, topic: str, key: str, value: dict, headers: list | None = None) -> None:
        self.sent.append((topic, key, value))

    def flush(self, timeout_s: float = 30.0) -> None:
        if self.fail_flush:
            raise RuntimeError("broker did not acknowledge 1 message(s)")
        self.flushed.extend(self.sent)


@pytest.fixture
def store(tmp_path) -> FileBlobStore:
    return FileBlobStore(tmp_path / "blobs")


def test_stores_publishes_flushes_then_succeeds(store: FileBlobStore) -> None:
    producer = FakeProducer()
    data = instance_bytes(NumberOfStudyRelatedInstances=4)
    assert InstanceSink(store, lambda: producer, clock=lambda: 12.5).accept(data, "PACS1") == SUCCESS
    (topic, key, event), = producer.flushed
    assert (topic, event["site"], event["expected_instances"]) == ("dicom.arrived", "PACS1", 4)
    Codec().encode(schema_of(topic), event)  # the topic's contract holds
    assert key == event["sop_uid"] and event["arrived_at"] == 12500
    assert store.get(event["blob"]) == data


def test_no_expected_count_without_number_of_study_related_instances(store: FileBlobStore) -> None:
    producer = FakeProducer()
    InstanceSink(store, lambda: producer).accept(instance_bytes(), "PACS1")
    assert producer.flushed[0][2]["expected_instances"] is None


def test_the_callers_expected_count_wins_over_the_header(store: FileBlobStore) -> None:
    """`radstream pull` knows the study's count from QIDO-RS; a header's count may be stale or absent."""
    producer = FakeProducer()
    sink = InstanceSink(store, lambda: producer)
    sink.accept(instance_bytes(NumberOfStudyRelatedInstances=4), "DICOMWEB", expected_instances=2)
    sink.accept(instance_bytes(), "DICOMWEB", expected_instances=3)
    assert [event["expected_instances"] for _, _, event in producer.sent] == [2, 3]


def test_an_unacknowledged_event_is_a_failure_and_the_producer_is_replaced(store: FileBlobStore) -> None:
    producers = [FakeProducer(fail_flush=True), FakeProducer()]
    made = iter(producers)
    sink = InstanceSink(store, lambda: next(made))
    assert sink.accept(instance_bytes(), "PACS1") == OUT_OF_RESOURCES
    assert sink.accept(instance_bytes(), "PACS1") == SUCCESS
    assert len(producers[1].flushed) == 1


def test_garbage_cannot_be_understood(store: FileBlobStore) -> None:
    producer = FakeProducer()
    assert InstanceSink(store, lambda: producer).accept(b"\x00" * 300, "PACS1") == CANNOT_UNDERSTAND
    assert producer.sent == []


def test_a_failing_blob_store_is_out_of_resources(store: FileBlobStore, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store, "put", broken)
    producer = FakeProducer()
    assert InstanceSink(store, lambda: producer).accept(instance_bytes(), "PACS1") == OUT_OF_RESOURCES
    assert producer.sent == []


def _deflated(inflated_pixels: int) -> bytes:
    """A small instance in Deflated Explicit VR Little Endian whose pixel data is `inflated_pixels` zero bytes."""
    from io import BytesIO

    import numpy as np
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    from tests.fixtures.instances import instance_dataset

    ds = instance_dataset()
    side = int((inflated_pixels // 2) ** 0.5)
    ds.Rows = ds.Columns = side
    ds.PixelData = np.zeros((side, side), dtype=np.uint16).tobytes()
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_over_the_cap_as_sent_or_inflated_is_refused_before_anything_is_stored(store: FileBlobStore) -> None:
    from radstream.services.instance_header import MB, HeaderReader
    from radstream.services.receiver import DATASET_TOO_LARGE

    producer = FakeProducer()
    sink = InstanceSink(store, lambda: producer, headers=HeaderReader(max_bytes=4 * MB))
    assert sink.accept(instance_bytes(size=1500), "PACS1") == DATASET_TOO_LARGE  # 4.5 MB as sent
    bomb = _deflated(32 * MB)
    assert len(bomb) < 256 * 1024
    assert sink.accept(bomb, "PACS1") == DATASET_TOO_LARGE  # 40 kB as sent, 32 MB inflated
    assert producer.sent == [] and not [p for p in store.root.rglob("*") if p.is_file()]  # nothing stored
    assert sink.accept(_deflated(1 * MB), "PACS1") == SUCCESS  # a deflated instance within the cap is fine
    assert len(producer.sent) == 1


def test_with_a_key_every_arrival_is_signed_for_the_configured_site(store: FileBlobStore) -> None:
    """The receiver (and pull, through the same sink) signs after the peers file chose the site, so
    decode can require signed arrivals (D-038); the producer here is a stand-in, the signature real."""
    from radstream.domain.signatures import arrival_rejection, new_signing_key, parse_key_sites, parse_trusted_keys

    key = new_signing_key("receiver-1")
    producer = FakeProducer()
    assert InstanceSink(store, lambda: producer, signer=key).accept(instance_bytes(), "SITE_A") == SUCCESS
    ((_, _, event),) = producer.flushed
    Codec().encode("DicomArrived", event)
    line = key.public_line() + " SITE_A"
    assert event["signer"] == "receiver-1"
    assert arrival_rejection(event, parse_trusted_keys(line), parse_key_sites(line)) is None
    other = key.public_line() + " SITE_B"
    assert "may not sign arrivals for site 'SITE_A'" in arrival_rejection(event, parse_trusted_keys(other),
                                                                             parse_key_sites(other))
