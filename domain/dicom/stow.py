"""The STOW-RS Store Instances Response (PS3.18 10.5.3), pure: outcomes in, DICOM JSON and HTTP status out.

Each part of a STOW-RS request ends as one `PartOutcome`: stored (it goes into the
ReferencedSOPSequence) or failed with a FailureReason code (FailedSOPSequence). The
codes are the standard's (PS3.18 Table 10.5.3-1, the C-STORE statuses of PS3.4
Annex B); the human reason travels beside them, in the HTTP Warning header.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# FailureReason (0008,1197) codes.
OUT_OF_RESOURCES = 0xA700  # Refused: Out of Resources (blob store or broker unavailable, a part too large)
CANNOT_UNDERSTAND = 0xC000  # Error: Cannot Understand (not a DICOM instance with the three UIDs)
STUDY_UID_MISMATCH = 0xC409  # Cannot Understand class: not of the study in the target URI (dcm4chee's code)
TRANSFER_SYNTAX_NOT_SUPPORTED = 0xC122  # Referenced Transfer Syntax not supported
PROCESSING_FAILURE = 0x0110  # Processing failure

# The tags, by the standard's keywords (DICOM JSON keys are the tags in hex).
RETRIEVE_URL = "00081190"
FAILED_SOP_SEQUENCE = "00081198"
REFERENCED_SOP_SEQUENCE = "00081199"
REFERENCED_SOP_CLASS_UID = "00081150"
REFERENCED_SOP_INSTANCE_UID = "00081155"
FAILURE_REASON = "00081197"


@dataclass(frozen=True)
class PartOutcome:
    """What became of one part: `failure_reason is None` means stored (blob and broker ack)."""

    sop_class_uid: str = ""
    sop_instance_uid: str = ""
    failure_reason: int | None = None
    reason: str = ""  # for a human: the Warning header and the log
    retrieve_url: str | None = None

    @property
    def stored(self) -> bool:
        return self.failure_reason is None


def _uid(value: str) -> dict:
    return {"vr": "UI", "Value": [value]} if value else {"vr": "UI"}


def _referenced(outcome: PartOutcome) -> dict:
    item = {REFERENCED_SOP_CLASS_UID: _uid(outcome.sop_class_uid),
            REFERENCED_SOP_INSTANCE_UID: _uid(outcome.sop_instance_uid)}
    if outcome.retrieve_url:
        item[RETRIEVE_URL] = {"vr": "UR", "Value": [outcome.retrieve_url]}
    return item


def _failed(outcome: PartOutcome) -> dict:
    item = {REFERENCED_SOP_CLASS_UID: _uid(outcome.sop_class_uid),
            REFERENCED_SOP_INSTANCE_UID: _uid(outcome.sop_instance_uid)}
    item[FAILURE_REASON] = {"vr": "US", "Value": [outcome.failure_reason]}
    return item


def store_instances_response(outcomes: Iterable[PartOutcome], study_retrieve_url: str | None = None) -> dict:
    """The response data set as DICOM JSON (PS3.18 F.2). Retrieve URL (Type 2) is empty when the
    instances cannot be retrieved from this origin server (radstream serves no WADO-RS)."""
    outcomes = list(outcomes)
    response: dict = {RETRIEVE_URL: {"vr": "UR", "Value": [study_retrieve_url]} if study_retrieve_url else {"vr": "UR"}}
    failed = [_failed(o) for o in outcomes if not o.stored]
    stored = [_referenced(o) for o in outcomes if o.stored]
    if failed:
        response[FAILED_SOP_SEQUENCE] = {"vr": "SQ", "Value": failed}
    if stored:
        response[REFERENCED_SOP_SEQUENCE] = {"vr": "SQ", "Value": stored}
    return response


def store_instances_status(outcomes: Iterable[PartOutcome]) -> int:
    """200 when every part was stored, 202 when some failed, 409 when all failed (or there were none)."""
    outcomes = list(outcomes)
    stored = sum(o.stored for o in outcomes)
    if outcomes and stored == len(outcomes):
        return 200
    return 202 if stored else 409


WARNING_REASON = "00081196"


@dataclass(frozen=True)
class StoredPart:
    """One item of a Store Instances Response as a STOW-RS client reads it back."""

    sop_instance_uid: str
    code: int | None  # FailureReason of a failed part, WarningReason of a stored one (None: plain success)


def _items(response: dict, tag: str) -> list[dict]:
    element = response.get(tag) or {}
    return [item for item in element.get("Value") or [] if isinstance(item, dict)]


def _first(item: dict, tag: str) -> object | None:
    values = (item.get(tag) or {}).get("Value") or []
    return values[0] if values else None


def _parts(response: dict, sequence: str, reason: str) -> list[StoredPart]:
    parts = []
    for item in _items(response, sequence):
        code = _first(item, reason)
        parts.append(StoredPart(str(_first(item, REFERENCED_SOP_INSTANCE_UID) or ""),
                                int(code) if isinstance(code, (int, float)) else None))
    return parts


def failed_parts(response: dict) -> list[StoredPart]:
    """The FailedSOPSequence of a Store Instances Response (DICOM JSON), each with its FailureReason."""
    return _parts(response, FAILED_SOP_SEQUENCE, FAILURE_REASON)


def referenced_parts(response: dict) -> list[StoredPart]:
    """The ReferencedSOPSequence (the stored parts), each with its WarningReason if any."""
    return _parts(response, REFERENCED_SOP_SEQUENCE, WARNING_REASON)
