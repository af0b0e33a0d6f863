"""The DICOM receiver: a C-STORE SCP that turns each received instance into a DicomArrived event.

A PACS pushes studies here. For every instance the order is the point:
blob stored (claim check), event produced, producer flushed (the broker
acknowledged it), and only then the C-STORE answer 0x0000 Success. Any failure
answers a failure status instead, so the sending PACS keeps the instance and
retries. A kill -9 can therefore repeat an event (at-least-once, deduplicated
downstream by idempotency key) but never lose an acknowledged instance.

The instance is stored byte for byte as received (`encoded_dataset`: the
association's transfer syntax in the File Meta, no re-encoding), so its sha256
is that of what the modality sent.

Study completion: `expected_instances` is NumberOfStudyRelatedInstances when
the sender includes it (or the caller's count: `radstream pull` passes QIDO-RS's), else None; the qc stage then finalises the study after
RADSTREAM_STUDY_QUIET_PERIOD_S without new images.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    HTJ2K,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    ImplicitVRLittleEndian,
    JPEG2000,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLossless,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

from radstream.services.publish import Instance, arrival_event
from radstream.streams import metrics, telemetry
from radstream.streams.config import Config
from radstream.streams.blobstore import FileBlobStore
from radstream.streams.kafka.producer import EventPublisher
from radstream.streams.kafka.topics import DICOM_ARRIVED

log = logging.getLogger("radstream.receiver")

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700  # blob store or broker unavailable: the sender retries later
CANNOT_UNDERSTAND = 0xC000  # not a parsable instance with the three UIDs
MEDIA_TYPE = "application/dicom"

# Accepted for every storage SOP class: native, deflated, and the common lossless and lossy codecs.
TRANSFER_SYNTAXES: tuple[str, ...] = (
    ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian,
    JPEG2000Lossless, JPEG2000, JPEGLosslessSV1, JPEGLossless, JPEGLSLossless, JPEGLSNearLossless,
    JPEGBaseline8Bit, JPEGExtended12Bit, RLELossless, HTJ2KLossless, HTJ2KLosslessRPCL, HTJ2K,
)


@dataclass(frozen=True)
class ReceiverSettings:
    host: str = "127.0.0.1"
    max_associations: int = 10
    ack_timeout_s: float = 30.0
    drain_s: float = 30.0


def receiver_settings(config: Config) -> ReceiverSettings:
    """The receiver's settings, as the one config reader read them (see docs/ingest.md)."""
    return ReceiverSettings(host=config.receiver_host, max_associations=config.receiver_max_associations,
                            ack_timeout_s=config.receiver_ack_timeout_s, drain_s=config.receiver_drain_s)


class InstanceSink:
    """Claim check, event, broker ack -> a C-STORE status. Thread-safe; no networking of its own."""

    def __init__(self, store: FileBlobStore, producer_factory: Callable[[], EventPublisher],
                 ack_timeout_s: float = 30.0, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self._producer_factory = producer_factory
        self._producer = producer_factory()
        self._ack_timeout_s = ack_timeout_s
        self._clock = clock
        # One instance at a time through send+flush: a failed flush then concerns this
        # instance only, and the producer (whose delivery errors are sticky) is replaced.
        self._lock = threading.Lock()
        self.last_stored: float | None = None

    def accept(self, encoded: bytes, calling_ae: str, expected_instances: int | None = None) -> int:
        """Store, publish, await the ack; the status to answer. `expected_instances` is the study's count
        when the caller knows it better than the header (a pull counts the study with QIDO-RS)."""
        try:
            instance, expected = parse_instance(encoded)
        except ValueError as exc:
            log.warning("refused an instance from %s: %s", calling_ae, exc)
            metrics.failed.labels("receiver", "permanent", "cannot_understand").inc()
            return CANNOT_UNDERSTAND
        try:
            blob = self.store.put(encoded, MEDIA_TYPE)
        except OSError as exc:
            log.error("blob store failed for %s: %s", instance.sop_uid, exc)
            metrics.failed.labels("receiver", "transient", "blob_store").inc()
            return OUT_OF_RESOURCES
        if expected_instances is not None:
            expected = expected_instances
        event = arrival_event(instance, blob, calling_ae, expected, int(self._clock() * 1000))
        with self._lock:
            try:
                headers = telemetry.producer_headers("receiver", DICOM_ARRIVED, telemetry.study_context(instance.study_uid))
                self._producer.send(DICOM_ARRIVED, instance.sop_uid, event, headers)
                self._producer.flush(self._ack_timeout_s)
            except Exception as exc:  # BufferError, KafkaException, or flush's RuntimeError: all mean "not acked"
                log.error("broker did not acknowledge %s: %s", instance.sop_uid, exc)
                self._producer = self._producer_factory()
                metrics.failed.labels("receiver", "transient", "broker_ack").inc()
                return OUT_OF_RESOURCES
        log.debug("stored %s (study %s) from %s", instance.sop_uid, instance.study_uid, calling_ae)
        metrics.processed.labels("receiver").inc()
        self.last_stored = time.time()
        metrics.last_progress.labels("receiver").set(self.last_stored)
        return SUCCESS

    def close(self) -> None:
        with self._lock:
            self._producer.flush(self._ack_timeout_s)


def parse_instance(encoded: bytes) -> tuple[Instance, int | None]:
    """The three UIDs and NumberOfStudyRelatedInstances (the expected count, when the sender knows it)."""
    try:
        ds = pydicom.dcmread(BytesIO(encoded), stop_before_pixels=True, specific_tags=[
            "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "NumberOfStudyRelatedInstances"])
        study, series, sop = str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)
    except (InvalidDicomError, AttributeError, EOFError, OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"not a DICOM instance with Study/Series/SOP Instance UIDs ({type(exc).__name__})") from None
    if not (study and series and sop):
        raise ValueError("empty Study/Series/SOP Instance UID")
    count = ds.get("NumberOfStudyRelatedInstances")
    try:
        expected = int(count) if count not in (None, "") and int(count) > 0 else None
    except (TypeError, ValueError):
        expected = None
    return Instance(Path(sop), study, series, sop), expected


def build_ae(ae_title: str, max_associations: int):
    """An AE that accepts every storage SOP class in TRANSFER_SYNTAXES, and Verification (C-ECHO)."""
    from pynetdicom import AE, AllStoragePresentationContexts
    from pynetdicom.sop_class import Verification

    ae = AE(ae_title=ae_title)
    ae.maximum_associations = max_associations
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(context.abstract_syntax, list(TRANSFER_SYNTAXES))
    ae.add_supported_context(Verification)
    return ae


class Receiver:
    """The SCP around an InstanceSink: start, then stop(drain) on SIGTERM."""

    def __init__(self, ae_title: str, port: int, sink: InstanceSink, settings: ReceiverSettings) -> None:
        self.ae_title, self.port, self.sink, self.settings = ae_title, port, sink, settings
        self.ae = build_ae(ae_title, settings.max_associations)
        self._server = None

    def start(self) -> "Receiver":
        from pynetdicom import evt

        telemetry.setup_tracing("receiver")

        handlers = [(evt.EVT_C_STORE, self._on_store), (evt.EVT_ACCEPTED, _log_association, ["accepted"]),
                    (evt.EVT_ABORTED, _log_association, ["aborted"])]
        self._server = self.ae.start_server((self.settings.host, self.port), block=False, evt_handlers=handlers)
        self.port = self._server.server_address[1]
        return self

    def _on_store(self, event) -> int:
        return self.sink.accept(event.encoded_dataset(include_meta=True), event.assoc.requestor.ae_title.strip())

    def stop(self) -> None:
        """Refuse new associations, let open ones finish for up to drain_s, abort the rest, flush."""
        if self._server is not None:
            self._server.shutdown()
        deadline = time.monotonic() + self.settings.drain_s
        while self.ae.active_associations and time.monotonic() < deadline:
            time.sleep(0.1)
        for assoc in self.ae.active_associations:
            log.warning("aborting association with %s after the drain period", assoc.requestor.ae_title)
            assoc.abort()
        self.ae.shutdown()
        self.sink.close()


def _log_association(event, what: str) -> None:
    log.info("association %s: %s", what, event.assoc.requestor.ae_title.strip())
