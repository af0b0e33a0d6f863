"""Reading `dicom.arrived` back in ingest tests (with the plain, contract-only reader)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from tests.plain_reader import PlainReader


def blob_bytes(event: dict) -> bytes:
    """The bytes behind an event's claim check (file:// blob store)."""
    return Path(unquote(urlparse(event["blob"]["uri"]).path)).read_bytes()


def read_arrivals(pipeline_config, sop_uids: set[str], timeout_s: float) -> dict[str, dict]:
    """Every DicomArrived event on the test's topic, by SOP Instance UID, once `sop_uids` are all there
    (or the timeout passed: the caller asserts on what is missing)."""
    topic = pipeline_config.kafka.topic("dicom.arrived")
    reader = PlainReader(pipeline_config.kafka.bootstrap, [topic])
    try:
        reader.poll_until(lambda r: sop_uids <= {e["sop_uid"] for e in r[topic]}, timeout_s)
    finally:
        reader.close()
    return {e["sop_uid"]: e for e in reader.records[topic]}


def arrivals_on_topic(pipeline_config, settle_s: float = 3.0) -> list[dict]:
    """Every event on the topic after `settle_s` of reading (to check that nothing else arrived)."""
    topic = pipeline_config.kafka.topic("dicom.arrived")
    reader = PlainReader(pipeline_config.kafka.bootstrap, [topic])
    try:
        reader.poll_until(lambda r: False, settle_s)
    finally:
        reader.close()
    return reader.records[topic]
