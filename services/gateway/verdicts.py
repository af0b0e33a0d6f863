"""Overrides from the viewer: the request a radiologist sends, checked, and the signed record written.

`POST /studies/{uid}/findings/{finding_id}/override` takes
`{"verdict": "confirmed"|"rejected", "reason": REASON, "note": TEXT}`: a rejection needs a
reason from REJECTION_REASONS (`other` needs a note too); the note is optional free text. The
actor is never in the body: it is the identity the request authenticated, and the record is
signed by the gateway's delegate key for that identity (D-042). The gateway's own consumer then
reads the record back from `findings.overrides`, so every open viewer sees it over SSE.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

from radstream.domain.signatures import SigningKey
from radstream.services.overrides import NOTE_MAX, REJECTION_REASONS, VERDICTS, delegated_override
from radstream.streams.kafka.producer import EventPublisher
from radstream.streams.kafka.settings import KafkaSettings
from radstream.streams.kafka.topics import FINDINGS_OVERRIDES

MAX_BODY_BYTES = 4096  # a verdict and a note: anything longer is not one
_FIELDS = frozenset({"verdict", "reason", "note"})


class VerdictError(ValueError):
    """Why a verdict request is refused (a one-line 400)."""


@dataclass(frozen=True)
class VerdictRequest:
    verdict: str  # confirmed | rejected
    reason: str  # the record's reason: "" , a listed reason, or "REASON: note"


def parse_verdict(body: bytes) -> VerdictRequest:
    """A verdict request from the raw body; VerdictError (one line, no echo of the input) otherwise."""
    try:
        data: Any = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise VerdictError("the body must be a JSON object") from None
    if not isinstance(data, dict):
        raise VerdictError("the body must be a JSON object")
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise VerdictError(f"unknown field(s): {', '.join(unknown)[:80]} (allowed: note, reason, verdict)")
    verdict, reason, note = data.get("verdict"), data.get("reason", ""), data.get("note", "")
    if verdict not in VERDICTS:
        raise VerdictError(f"verdict must be one of {', '.join(VERDICTS)}")
    if not isinstance(reason, str) or not isinstance(note, str):
        raise VerdictError("reason and note must be strings")
    note = note.strip()
    if len(note) > NOTE_MAX or not note.isprintable():
        raise VerdictError(f"note: at most {NOTE_MAX} characters on one line")
    if verdict == "confirmed":
        if reason:
            raise VerdictError("a confirmation takes no reason (a note is allowed)")
        return VerdictRequest(verdict, note)
    if reason not in REJECTION_REASONS:
        raise VerdictError(f"a rejection needs a reason, one of: {', '.join(REJECTION_REASONS)}")
    if reason == "other" and not note:
        raise VerdictError("reason `other` needs a note")
    return VerdictRequest(verdict, f"{reason}: {note}" if note else reason)


class OverrideWriter:
    """Signs verdicts with the gateway's delegate key and produces them to `findings.overrides`.

    Blocking (it waits for the broker's acknowledgement): the handler runs it in an executor.
    One producer, made on first use, serialised by a lock (verdicts come at a human pace)."""

    def __init__(self, settings: KafkaSettings, key: SigningKey, flush_timeout_s: float = 10.0) -> None:
        self.settings = settings
        self.key = key
        self.flush_timeout_s = flush_timeout_s
        self.written = 0
        self._publisher: EventPublisher | None = None
        self._lock = threading.Lock()

    def write(self, study_uid: str, finding_id: str, request: VerdictRequest, actor: str) -> dict:
        """The signed record, once the broker acknowledged it; RuntimeError (one line) otherwise."""
        record = delegated_override(study_uid, finding_id, request.verdict, request.reason, self.key, actor)
        with self._lock:
            if self._publisher is None:
                self._publisher = EventPublisher(self.settings)
            self._publisher.send(FINDINGS_OVERRIDES, finding_id, record)
            self._publisher.flush(self.flush_timeout_s)  # DeliveryFailed is a RuntimeError
            self.written += 1
        return record
