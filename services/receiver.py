"""The DICOM receiver: a C-STORE SCP that turns each received instance into a DicomArrived event.

A PACS pushes studies here. For every instance the order is the point:
blob stored (claim check), event produced, producer flushed (the broker
acknowledged it), and only then the C-STORE answer 0x0000 Success. Any failure
answers a failure status instead, so the sending PACS keeps the instance and
retries. A kill -9 can therefore repeat an event (at-least-once, deduplicated
downstream by idempotency key) but never lose an acknowledged instance.

Who may send is configured, not assumed (docs/security.md): an association is
admitted only from a peer in the peers table (domain/dicom/peers.py), from inside
its network, calling our own AE title; any other gets A-ASSOCIATE-RJ. The site on
every event is the peer's configured site. Optionally the port speaks DICOM TLS
(PS3.15 Annex B), with client certificates verified against a CA.

Memory is bounded at this edge: a dataset passing the cap on the wire aborts its
association, and the header is read by services/instance_header.py (size cap,
bounded inflate of Deflated datasets, parse in a bounded worker process).

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
import weakref
from collections.abc import Callable
from dataclasses import dataclass

from pydicom.uid import (
    HTJ2K,
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from radstream.domain.dicom.peers import Peer, PeerTable, Refusal
from radstream.domain.errors import TransientError
from radstream.domain.signatures import SigningKey, sign
from radstream.services.instance_header import (
    CANNOT_UNDERSTAND,
    DATASET_TOO_LARGE,
    DEFAULT_MAX_DATASET_MB,
    MB,
    HeaderReader,
    HeaderRefusal,
)
from radstream.services.publish import arrival_event
from radstream.services.tls import TlsFiles, server_tls_context
from radstream.streams import metrics, telemetry
from radstream.streams.blobstore import BlobStore
from radstream.streams.config import Config
from radstream.streams.kafka.producer import EventPublisher
from radstream.streams.kafka.topics import DICOM_ARRIVED, lane_of
from radstream.streams.watched_file import WatchedFile

log = logging.getLogger("radstream.receiver")

SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700  # blob store or broker unavailable: the sender retries later
MEDIA_TYPE = "application/dicom"
P_DATA_TF = 0x04  # PDU type of the PDUs that carry commands and datasets

__all__ = ["CANNOT_UNDERSTAND", "DATASET_TOO_LARGE", "OUT_OF_RESOURCES", "SUCCESS", "InstanceSink", "Receiver"]

# Accepted for every storage SOP class: native, deflated (measured by a bounded inflate before any parse),
# and the common lossless and lossy codecs.
TRANSFER_SYNTAXES: tuple[str, ...] = (
    ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian,
    JPEG2000Lossless, JPEG2000, JPEGLosslessSV1, JPEGLossless, JPEGLSLossless, JPEGLSNearLossless,
    JPEGBaseline8Bit, JPEGExtended12Bit, RLELossless, HTJ2KLossless, HTJ2KLosslessRPCL, HTJ2K,
)


class LivePeerTable:
    """The peers file, re-read when it changes (streams/watched_file.py): a peer added or removed
    is admitted or refused from the next association on, without a restart."""

    any_peer = False

    def __init__(self, watched: WatchedFile[PeerTable]) -> None:
        self.watched = watched

    @property
    def peers(self) -> tuple:
        return self.watched.current().peers

    def admit(self, calling_ae: str, called_ae: str, our_ae: str, address: str):
        return self.watched.current().admit(calling_ae, called_ae, our_ae, address)


@dataclass(frozen=True)
class ReceiverSettings:
    host: str = "127.0.0.1"
    max_associations: int = 10
    ack_timeout_s: float = 30.0
    drain_s: float = 30.0
    max_dataset_bytes: int = DEFAULT_MAX_DATASET_MB * MB


def receiver_settings(config: Config) -> ReceiverSettings:
    """The receiver's settings, as the one config reader read them (see docs/ingest.md)."""
    return ReceiverSettings(host=config.receiver_host, max_associations=config.receiver_max_associations,
                            ack_timeout_s=config.receiver_ack_timeout_s, drain_s=config.receiver_drain_s,
                            max_dataset_bytes=int(config.receiver_max_mb * MB))


class InstanceSink:
    """Header, claim check, event, broker ack -> a C-STORE status. Thread-safe; no networking of its own."""

    def __init__(self, store: BlobStore, producer_factory: Callable[[], EventPublisher],
                 ack_timeout_s: float = 30.0, clock: Callable[[], float] = time.time,
                 headers: HeaderReader | None = None, signer: SigningKey | None = None,
                 urgent_sites: frozenset[str] = frozenset()) -> None:
        """`signer`: sign every arrival (D-038; required where decode requires signed arrivals).
        `urgent_sites`: the sites whose studies take the STAT lane (RADSTREAM_STAT_SITES, D-044)."""
        self.store = store
        self.signer = signer
        self.urgent_sites = urgent_sites
        self._producer_factory = producer_factory
        self._producer = producer_factory()
        self._ack_timeout_s = ack_timeout_s
        self._clock = clock
        self.headers = headers or HeaderReader()  # in-process unless given a pool of bounded workers
        # One instance at a time through send+flush: a failed flush then concerns this
        # instance only, and the producer (whose delivery errors are sticky) is replaced.
        self._lock = threading.Lock()
        self.last_stored: float | None = None

    def accept(self, encoded: bytes, site: str, expected_instances: int | None = None) -> int:
        """Store, publish, await the ack; the status to answer. `site` is the sender's configured site (a peer's,
        a token's), never read from the data. `expected_instances` is the study's count when the caller knows it
        better than the header (a pull counts the study with QIDO-RS)."""
        header = self.headers.read(encoded)
        if isinstance(header, HeaderRefusal):
            log.warning("refused an instance from site %s: %s", site, header.reason)
            code = "too_large" if header.status == DATASET_TOO_LARGE else "cannot_understand"
            metrics.failed.labels("receiver", "permanent", code).inc()
            return header.status
        instance, expected = header.instance, header.expected
        try:
            blob = self.store.put(encoded, MEDIA_TYPE)
        except (OSError, TransientError) as exc:  # a full disk, an object store that does not answer
            log.error("blob store failed for %s: %s", instance.sop_uid, exc)
            metrics.failed.labels("receiver", "transient", "blob_store").inc()
            return OUT_OF_RESOURCES
        if expected_instances is not None:
            expected = expected_instances
        event = arrival_event(instance, blob, site, expected, int(self._clock() * 1000), self.urgent_sites)
        if self.signer is not None:
            event = sign("DicomArrived", event, self.signer)
        lane = lane_of(DICOM_ARRIVED, event)
        with self._lock:
            try:
                headers = telemetry.producer_headers("receiver", lane, telemetry.study_context(instance.study_uid))
                self._producer.send(lane, instance.sop_uid, event, headers)
                self._producer.flush(self._ack_timeout_s)
            except Exception as exc:  # BufferError, KafkaException, or flush's RuntimeError: all mean "not acked"
                log.error("broker did not acknowledge %s: %s", instance.sop_uid, exc)
                self._producer = self._producer_factory()
                metrics.failed.labels("receiver", "transient", "broker_ack").inc()
                return OUT_OF_RESOURCES
        log.debug("stored %s (study %s) from site %s", instance.sop_uid, instance.study_uid, site)
        metrics.processed.labels("receiver").inc()
        self.last_stored = time.time()
        metrics.last_progress.labels("receiver").set(self.last_stored)
        return SUCCESS

    def close(self) -> None:
        with self._lock:
            self._producer.flush(self._ack_timeout_s)
        self.headers.close()


def build_ae(ae_title: str, max_associations: int):
    """An AE that accepts every storage SOP class in TRANSFER_SYNTAXES, and Verification (C-ECHO)."""
    from pynetdicom import AE, AllStoragePresentationContexts
    from pynetdicom.sop_class import Verification

    ae = AE(ae_title=ae_title)
    ae.maximum_associations = max_associations
    ae.require_called_aet = True  # also checked with the peers table: belt and braces
    for context in AllStoragePresentationContexts:
        ae.add_supported_context(context.abstract_syntax, list(TRANSFER_SYNTAXES))
    ae.add_supported_context(Verification)
    return ae


class Receiver:
    """The SCP around an InstanceSink and a PeerTable: start, then stop(drain) on SIGTERM."""

    def __init__(self, ae_title: str, port: int, sink: InstanceSink, settings: ReceiverSettings,
                 peers: PeerTable | LivePeerTable, tls: TlsFiles | None = None) -> None:
        self.ae_title, self.port, self.sink, self.settings = ae_title, port, sink, settings
        self.peers, self.tls = peers, tls
        self.ae = build_ae(ae_title, settings.max_associations)
        self._server = None
        self._wire_bytes: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # association -> bytes of this message

    def start(self) -> Receiver:
        from pynetdicom import evt

        telemetry.setup_tracing("receiver")
        context = server_tls_context(self.tls) if self.tls else None
        handlers = [(evt.EVT_REQUESTED, self._on_requested), (evt.EVT_C_STORE, self._on_store),
                    (evt.EVT_C_ECHO, self._on_echo),
                    (evt.EVT_DATA_RECV, self._on_data), (evt.EVT_ACCEPTED, _log_association, ["accepted"]),
                    (evt.EVT_ABORTED, _log_association, ["aborted"])]
        self._server = self.ae.start_server((self.settings.host, self.port), block=False, evt_handlers=handlers,
                                            ssl_context=context)
        self.port = self._server.server_address[1]
        return self

    def admit(self, assoc) -> Peer | Refusal:
        request = assoc.requestor.primitive
        return self.peers.admit(_ae(request.calling_ae_title), _ae(request.called_ae_title), self.ae_title,
                                assoc.requestor.address)

    def _on_requested(self, event) -> None:
        """A-ASSOCIATE-RQ: admit a configured peer, or answer A-ASSOCIATE-RJ before any negotiation."""
        verdict = self.admit(event.assoc)
        if isinstance(verdict, Refusal):
            log.warning("association refused: %s", verdict.message)
            metrics.failed.labels("receiver", "permanent", "association_rejected").inc()
            event.assoc.acse.send_reject(verdict.result, verdict.source, verdict.reason)
            event.assoc.kill()  # as pynetdicom's own rejections do: the RJ is sent, then the DUL stops

    def _on_data(self, event) -> None:
        """Raw PDUs in: abort the association once one message's P-DATA passes the dataset cap."""
        if not event.data or event.data[0] != P_DATA_TF:
            return
        total = self._wire_bytes.get(event.assoc, 0) + len(event.data)
        self._wire_bytes[event.assoc] = total
        if total > self.settings.max_dataset_bytes and not event.assoc.is_aborted:
            log.warning("aborting the association with %s: a dataset passed the cap of %d MiB on the wire",
                        _ae(event.assoc.requestor.primitive.calling_ae_title), self.settings.max_dataset_bytes >> 20)
            metrics.failed.labels("receiver", "permanent", "too_large").inc()
            self._wire_bytes[event.assoc] = 0
            event.assoc.abort()

    def _on_echo(self, event) -> int:
        self._wire_bytes[event.assoc] = 0  # a message done: the cap counts one message's P-DATA
        return SUCCESS

    def _on_store(self, event) -> int:
        self._wire_bytes[event.assoc] = 0
        verdict = self.admit(event.assoc)  # the same answer as at A-ASSOCIATE-RQ: the table does not change
        if isinstance(verdict, Refusal):
            return CANNOT_UNDERSTAND
        return self.sink.accept(event.encoded_dataset(include_meta=True), verdict.site)

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


def _ae(title: str | bytes) -> str:
    return (title.decode("ascii", "replace") if isinstance(title, bytes) else str(title)).strip()


def _log_association(event, what: str) -> None:
    log.info("association %s: %s", what, event.assoc.requestor.ae_title.strip())
