"""The C-STORE SCU of `radstream export dicom`: one association per result, every object stored on it.

The answer is classified here and nowhere else (the meanings are domain/dicom/store_status.py):
- every instance answered success or a warning: stored;
- the peer answered no (a refusal status for an instance, the association rejected
  permanently, no accepted presentation context for a SOP class): `PermanentError`, code
  `dimse_refused` / `association_rejected` / `sop_class_not_accepted`, with the status in hex
  and its meaning, so the result lands in the DLQ with the PACS's reason;
- nothing answered (connection refused, timeout, abort, a transient rejection such as too
  many associations): `TransientError`, code `pacs_unreachable`; the runtime holds the
  partition and retries until the PACS answers (streams/holds.py).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Sequence
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE
from radstream.domain.dicom.store_status import StoreStatus
from radstream.domain.errors import PermanentError, TransientError

log = logging.getLogger(__name__)

DEFAULT_CALLING_AE = "RADSTREAM"
# A-ASSOCIATE-RJ Result (PS3.8 9.3.4): 1 rejected-permanent, 2 rejected-transient.
REJECTED_TRANSIENT = 0x02


class DimseRefused(PermanentError):
    """The PACS answered a store with a refusal status."""

    def __init__(self, reason: str, code: str = "dimse_refused") -> None:
        super().__init__(reason, code=code)


class PacsUnreachable(TransientError):
    """No answer from the PACS: retried until it answers."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, code="pacs_unreachable")


@dataclass(frozen=True)
class Peer:
    """A DICOM application entity: `AET@HOST:PORT`."""

    ae_title: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Peer:
        """`AET@HOST:PORT`; ValueError with a one-line reason otherwise."""
        aet, at, address = text.partition("@")
        host, colon, port = address.rpartition(":")
        if not at or not colon or not aet or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"--to must be AET@HOST:PORT (e.g. ORTHANC@pacs.example:4242), got {text!r}")
        check_ae_title(aet, "--to")
        return cls(aet, host.strip("[]"), int(port))

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


def check_ae_title(aet: str, flag: str) -> str:
    """An AE title is 1 to 16 characters of the default repertoire, no backslash (PS3.5 Table 6.2-1)."""
    if not 0 < len(aet) <= 16 or "\\" in aet or not aet.isascii() or not aet.isprintable() or not aet.strip():
        raise ValueError(f"{flag}: {aet!r} is not an AE title (1 to 16 printable ASCII characters, no backslash)")
    return aet


def _transfer_syntax(ds: Dataset) -> str:
    """The dataset's transfer syntax; one built in memory without file meta gets Explicit VR Little Endian."""
    ds.ensure_file_meta()
    if "TransferSyntaxUID" not in ds.file_meta:
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return str(ds.file_meta.TransferSyntaxUID)


class CStoreSender:
    """Stores datasets on one peer, each on one association, and classifies the answers."""

    def __init__(self, peer: Peer, calling_ae: str = DEFAULT_CALLING_AE, timeout_s: float = 30.0,
                 tls: ssl.SSLContext | None = None) -> None:
        """`tls`: DICOM TLS (PS3.15 Annex B) with this client context (commands/tls_flags.py)."""
        self.peer = peer
        self.tls = tls
        self.calling_ae = calling_ae
        self.timeout_s = timeout_s

    def store(self, datasets: Sequence[Dataset]) -> list[StoreStatus]:
        """C-STORE each dataset in order; the statuses (all stored) or PermanentError / TransientError."""
        ae = AE(ae_title=self.calling_ae)
        ae.connection_timeout = ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.timeout_s
        wanted: dict[str, list[str]] = {}
        for ds in datasets:
            syntaxes = wanted.setdefault(str(ds.SOPClassUID), [])
            for ts in (_transfer_syntax(ds), ExplicitVRLittleEndian, ImplicitVRLittleEndian):
                if ts not in syntaxes:
                    syntaxes.append(ts)
        for sop_class, syntaxes in wanted.items():
            ae.add_requested_context(sop_class, syntaxes)
        tls_args = (self.tls, self.peer.host) if self.tls else None
        assoc = ae.associate(self.peer.host, self.peer.port, ae_title=self.peer.ae_title, tls_args=tls_args)
        if not assoc.is_established:
            raise self._not_associated(assoc)
        statuses: list[StoreStatus] = []
        try:
            for ds in datasets:
                statuses.append(self._store_one(assoc, ds))
        finally:
            if assoc.is_established:
                assoc.release()
        return statuses

    def _store_one(self, assoc, ds: Dataset) -> StoreStatus:
        sop_class = ds.SOPClassUID
        what = f"{getattr(sop_class, 'name', sop_class)} {ds.SOPInstanceUID}"
        if not any(c.abstract_syntax == sop_class for c in assoc.accepted_contexts):
            raise DimseRefused(f"{self.peer} accepted no presentation context for {what}",
                               code="sop_class_not_accepted")
        try:
            answer = assoc.send_c_store(ds)
        except ValueError as exc:  # no context for its transfer syntax, or it does not encode
            raise DimseRefused(f"cannot send {what} to {self.peer}: {exc}", code="not_sendable") from None
        except (RuntimeError, OSError) as exc:  # the association went away under us
            raise PacsUnreachable(f"{self.peer}: association lost while storing {what}: {exc}") from None
        if "Status" not in answer:  # pynetdicom: timeout, abort or an invalid response
            raise PacsUnreachable(f"{self.peer} did not answer the C-STORE of {what} "
                                  f"(timeout {self.timeout_s:g} s, abort or invalid response)")
        status = StoreStatus(int(answer.Status))
        if not status.stored:
            comment = f" ({answer.ErrorComment})" if answer.get("ErrorComment") else ""
            raise DimseRefused(f"{self.peer} refused {what}: status {status}{comment}")
        if status.code:
            log.warning("%s stored %s with %s", self.peer, what, status)
        return status

    def _not_associated(self, assoc) -> Exception:
        if assoc.is_rejected:
            primitive = assoc.acceptor.primitive
            detail = f"{primitive.result_str}, source {primitive.source_str}, reason {primitive.reason_str}"
            if primitive.result == REJECTED_TRANSIENT:
                return PacsUnreachable(f"{self.peer} rejected the association for now ({detail})")
            return DimseRefused(f"{self.peer} rejected the association from {self.calling_ae} ({detail})",
                                code="association_rejected")
        if assoc.is_aborted:
            return PacsUnreachable(f"{self.peer} is unreachable: the association request was aborted "
                                   "(connection refused or reset)")
        return PacsUnreachable(f"{self.peer} is unreachable (no association within {self.timeout_s:g} s)")
