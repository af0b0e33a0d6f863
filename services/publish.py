"""`radstream publish`: store DICOM files as blobs and publish their arrival events.

This is the scripted path a PACS integration would take: claim check first (the
blob is stored and hashed), then the small event on `dicom.arrived`.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from radstream.domain.signatures import SigningKey, sign
from radstream.streams.blobstore import BlobStore
from radstream.streams import telemetry
from radstream.streams.kafka.producer import EventPublisher
from radstream.streams.kafka.topics import DICOM_ARRIVED, lane_of
from radstream.domain.keys import idempotency_key
from radstream.domain.priority import priority_of, requested_procedure_priority


@dataclass(frozen=True)
class Instance:
    path: Path
    study_uid: str
    series_uid: str
    sop_uid: str
    # The header's Requested Procedure Priority, validated (domain/priority.py); never published.
    requested_priority: str | None = None


# What read_instance and the receiver read from a header (never the pixels).
HEADER_TAGS = ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "RequestedProcedurePriority",
               "RequestAttributesSequence"]


class PublishError(ValueError):
    pass


def read_instance(path: Path) -> Instance:
    """Read the three UIDs from the header; the pixels are not touched here."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=HEADER_TAGS)
        return Instance(path, str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID),
                        requested_procedure_priority(ds))
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


def arrival_event(inst: Instance, blob: dict, site: str, expected: int | None, now_ms: int,
                  urgent_sites: Iterable[str] = (), priority: str | None = None) -> dict:
    """The DicomArrived event; its priority by domain/priority.priority_of (header, site rule, sender)."""
    return {
        "idempotency_key": idempotency_key(inst.sop_uid, blob["sha256"]),
        "study_uid": inst.study_uid,
        "series_uid": inst.series_uid,
        "sop_uid": inst.sop_uid,
        "frame": 0,
        "site": site,
        "priority": priority_of(inst.requested_priority, site, urgent_sites, priority),
        "expected_instances": expected,
        "arrived_at": now_ms,
        "blob": blob,
        "config_version": 0,
        "stage_ms": {},
        "trace_id": telemetry.trace_id_hex(telemetry.study_context(inst.study_uid)),
    }


def publish(producer: EventPublisher, store: BlobStore, paths: list[Path], site: str = "",
            log=print, signer: SigningKey | None = None, priority: str | None = None,
            urgent_sites: Iterable[str] = ()) -> tuple[list[str], list[str]]:
    """Publish every readable DICOM file; returns (study UIDs, error lines). With `signer`, each
    arrival is signed, so decode can check that the key may vouch for `site` (D-038). `priority`
    "stat" makes every study urgent; otherwise each instance's header and the site rule decide (D-044)."""
    errors: list[str] = []
    instances: list[Instance] = []
    for f in find_files(paths):
        try:
            instances.append(read_instance(f))
        except PublishError as exc:
            errors.append(str(exc))
    per_study = Counter(i.study_uid for i in instances)
    telemetry.setup_tracing("publish")
    for inst in instances:
        blob = store.put(inst.path.read_bytes(), "application/dicom")
        event = arrival_event(inst, blob, site, per_study[inst.study_uid], int(time.time() * 1000),
                              urgent_sites, priority)
        if signer is not None:
            event = sign("DicomArrived", event, signer)
        lane = lane_of(DICOM_ARRIVED, event)
        headers = telemetry.producer_headers("publish", producer.settings.topic(lane),
                                             telemetry.study_context(inst.study_uid))
        producer.send(lane, inst.sop_uid, event, headers)
    producer.flush()
    studies = list(dict.fromkeys(i.study_uid for i in instances))
    log(f"published {len(instances)} instance(s) of {len(studies)} study(ies)")
    return studies, errors


