"""`radstream export hl7`: each final result as an ORU^R01 over MLLP, committed only on an AA.

The message is the pure mapping's (hl7_oru.py); this shell sends it (mllp.py) and reads
the acknowledgment: AA (or CA, enhanced mode) commits; AE/AR (CE/CR) are refusals, so the
result goes to the DLQ with the ACK's MSA and ERR text; no ACK at all, or an ACK for
another message, is no answer, retried until the peer answers.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.exceptions import HL7apyException
from hl7apy.parser import parse_message
from radstream.domain.dicom.patient import PatientContext
from radstream.domain.errors import PermanentError, TransientError
from radstream.services.export.hl7_oru import Hl7Parties, message_control_id, oru_r01
from radstream.services.export.mllp import MllpNoAnswer, exchange
from radstream.services.export.stage import ExportStage
from radstream.streams.blobstore import BlobStore

ACCEPTED = {"AA", "CA"}
REFUSED = {"AE": "application error", "AR": "application reject", "CE": "commit error", "CR": "commit reject"}
_ESCAPES = (("\\F\\", "|"), ("\\S\\", "^"), ("\\T\\", "&"), ("\\R\\", "~"), ("\\E\\", "\\"))


@dataclass(frozen=True)
class Ack:
    """What an acknowledgment says: MSA-1, MSA-2, and the human text of MSA-3 and its ERR segments."""

    code: str
    control_id: str
    text: str


def parse_ack(er7: str) -> Ack:
    """Read an ACK (any 2.x version hl7apy knows); ValueError when it is not one."""
    try:
        message = parse_message(er7.replace("\n", "\r"), validation_level=VALIDATION_LEVEL.TOLERANT)
    except (HL7apyException, KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"an unparseable acknowledgment ({type(exc).__name__}: {exc})") from None
    msa = next((s for s in message.children if s.name == "MSA"), None)
    if msa is None:
        raise ValueError(f"a {message.msh.msh_9.to_er7() or 'message'} without an MSA segment")
    texts = [_field(msa, 3)]
    for err in (s for s in message.children if s.name == "ERR"):
        # 2.5+: ERR-3 code^text, ERR-7 diagnostics, ERR-8 user message; before 2.5: ERR-1
        texts += [_field(err, 1), _field(err, 3).replace("^", " "), _field(err, 7), _field(err, 8)]
    text = "; ".join(t.strip() for t in texts if t and t.strip())
    return Ack(_field(msa, 1).upper(), _field(msa, 2), _unescape(text))


class Hl7Export(ExportStage):
    """study.results -> a RIS or reporting system over HL7 v2.5.1 MLLP."""

    name = "export-hl7"
    target = "hl7"

    def __init__(self, store: BlobStore, host: str, port: int, parties: Hl7Parties | None = None,
                 timeout_s: float = 30.0, not_for_clinical_use: Any = None, unhealthy_after_s: float = 300.0,
                 tls: ssl.SSLContext | None = None) -> None:
        super().__init__(store, unhealthy_after_s)
        self.host, self.port = host, port
        self.tls = tls
        self.parties = parties or Hl7Parties()
        self.timeout_s = timeout_s
        # model_versions -> bool (services/structured_report.made_by_demo_models over the registry)
        self.not_for_clinical_use = not_for_clinical_use or (lambda versions: False)

    def send(self, result: dict[str, Any], context: PatientContext) -> None:
        message = oru_r01(result, context, self.parties, self.not_for_clinical_use(result["model_versions"]))
        control_id = message_control_id(result)
        what = f"ORU^R01 {control_id} of study {result['study_uid']}"
        peer = f"{self.host}:{self.port}"
        try:
            ack = parse_ack(exchange(self.host, self.port, message, self.timeout_s, self.tls))
        except MllpNoAnswer as exc:
            raise TransientError(f"{what}: {exc.reason}", code="hl7_no_answer") from None
        except ValueError as exc:
            raise TransientError(f"{what}: {peer} answered {exc}", code="hl7_no_answer") from None
        if ack.control_id != control_id:
            raise TransientError(f"{what}: {peer} acknowledged another message ({ack.control_id or 'no MSA-2'})",
                                 code="hl7_no_answer")
        if ack.code in ACCEPTED:
            return
        if ack.code in REFUSED:
            raise PermanentError(f"{peer} answered {ack.code} ({REFUSED[ack.code]}) to {what}: "
                                 f"{ack.text or 'no text'}", code="hl7_rejected")
        raise TransientError(f"{what}: {peer} answered an unknown acknowledgment code {ack.code!r}",
                             code="hl7_no_answer")

    def health(self) -> dict[str, Any]:
        return {**super().health(), "peer": f"{self.host}:{self.port}", "tls": self.tls is not None}


def _field(segment: Any, n: int) -> str:
    try:
        return getattr(segment, f"{segment.name.lower()}_{n}").to_er7()
    except (HL7apyException, AttributeError, IndexError):
        return ""


def _unescape(text: str) -> str:
    for escaped, plain in _ESCAPES:
        text = text.replace(escaped, plain)
    return text
