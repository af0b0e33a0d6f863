"""`radstream publish`: store DICOM files as blobs and publish their arrival events.

This is the scripted path a PACS integration would take: claim check first (the
blob is stored and hashed), then the small event on `dicom.arrived`.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from radstream.domain.signatures import SigningKey, sign
from radstream.streams.blobstore import FileBlobStore
from radstream.streams import telemetry
from radstream.streams.kafka.producer import EventPublisher
from radstream.streams.kafka.topics import DICOM_ARRIVED
from radstream.domain.keys import idempotency_key


@dataclass(frozen=True)
class Instance:
    path: Path
    study_uid: str
    series_uid: str
    sop_uid: str


class PublishError(ValueError):
    pass


def read_instance(path: Path) -> Instance:
    """Read the three UIDs from the header; the pixels are not touched here."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True,
                             specific_tags=["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"])
        return Instance(path, str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID))
    except (InvalidDicomError, AttributeError, EOFError, OSError, ValueError) as exc:
        raise PublishError(f"{path}: not a readable DICOM file with UIDs ({type(exc).__name__})") from None


def find_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file() and not f.name.endswith(".json"))
        elif p.is_file():
            files.append(p)
        else:
            raise PublishError(f"{p}: no such file or folder")
    return files


def arrival_event(inst: Instance, blob: dict, site: str, expected: int | None, now_ms: int) -> dict:
    return {
        "idempotency_key": idempotency_key(inst.sop_uid, blob["sha256"]),
        "study_uid": inst.study_uid,
        "series_uid": inst.series_uid,
        "sop_uid": inst.sop_uid,
        "frame": 0,
        "site": site,
        "expected_instances": expected,
        "arrived_at": now_ms,
        "blob": blob,
        "config_version": 0,
        "stage_ms": {},
        "trace_id": telemetry.trace_id_hex(telemetry.study_context(inst.study_uid)),
    }


def publish(producer: EventPublisher, store: FileBlobStore, paths: list[Path], site: str = "",
            log=print, signer: SigningKey | None = None) -> tuple[list[str], list[str]]:
    """Publish every readable DICOM file; returns (study UIDs, error lines). With `signer`, each
    arrival is signed, so decode can check that the key may vouch for `site` (D-038)."""
    errors: list[str] = []
    instances: list[Instance] = []
    for f in find_files(paths):
        try:
            instances.append(read_instance(f))
        except PublishError as exc:
            errors.append(str(exc))
    per_study = Counter(i.study_uid for i in instances)
    telemetry.setup_tracing("publish")
    topic = producer.settings.topic(DICOM_ARRIVED)
    for inst in instances:
        blob = store.put(inst.path.read_bytes(), "application/dicom")
        event = arrival_event(inst, blob, site, per_study[inst.study_uid], int(time.time() * 1000))
        if signer is not None:
            event = sign("DicomArrived", event, signer)
        headers = telemetry.producer_headers("publish", topic, telemetry.study_context(inst.study_uid))
        producer.send(DICOM_ARRIVED, inst.sop_uid, event, headers)
    producer.flush()
    studies = list(dict.fromkeys(i.study_uid for i in instances))
    log(f"published {len(instances)} instance(s) of {len(studies)} study(ies)")
    return studies, errors


