"""A radiologist's verdict on one finding: `radstream override` writes it to the compacted
`findings.overrides` topic (key = finding_id); readers of results attach it to that finding
only. The study result itself is never rewritten, so other findings stay as they were.

A verdict is signed by the radiologist's key and `by` is that key's name, or, from the viewer,
by the gateway's delegate key with `by` the identity the gateway authenticated (D-042); a reader
ignores (and logs at ERROR) any verdict a trusted key did not sign (domain/signatures.py).

A rejection from the viewer gives one of REJECTION_REASONS, optionally followed by `: ` and free
text, so the reasons can be counted.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from radstream.domain.signatures import SigningKey, rejection, sign, sign_for
from radstream.services.results import study_results
from radstream.streams.kafka.producer import EventPublisher
from radstream.streams.kafka.reader import read_events
from radstream.streams.kafka.settings import KafkaSettings
from radstream.streams.kafka.topics import FINDINGS_OVERRIDES

log = logging.getLogger(__name__)

VERDICTS = ("confirmed", "rejected")
# Why a finding was rejected: the viewer's short list (the record's reason starts with one of them).
REJECTION_REASONS = ("artefact", "normal anatomy", "known or old finding", "wrong location", "wrong label", "other")
NOTE_MAX = 500  # characters of free text after the reason


def find_finding(settings: KafkaSettings, study_uid: str, finding_id: str) -> dict:
    """The finding in the study's latest result; LookupError with the known ids if absent."""
    latest = None
    for result in study_results(settings, study=study_uid):
        latest = result
    if latest is None:
        raise LookupError(f"no result for study {study_uid}")
    ids = [f["finding_id"] for img in latest["images"] for f in img["findings"]]
    for img in latest["images"]:
        for f in img["findings"]:
            if f["finding_id"] == finding_id:
                return f
    raise LookupError(f"study {study_uid} has no finding {finding_id} (its findings: {', '.join(ids) or 'none'})")


def record_override(settings: KafkaSettings, study_uid: str, finding_id: str, verdict: str, key: SigningKey,
                    reason: str = "") -> dict:
    """Produce the verdict signed by `key`: the radiologist who decided is the key's name."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}")
    find_finding(settings, study_uid, finding_id)
    record = sign("FindingOverride", {"finding_id": finding_id, "study_uid": study_uid, "verdict": verdict.upper(),
                                      "reason": reason, "created_at": int(time.time() * 1000)}, key)
    producer = EventPublisher(settings)
    producer.send(FINDINGS_OVERRIDES, finding_id, record)
    producer.flush()
    return record


def delegated_override(study_uid: str, finding_id: str, verdict: str, reason: str, key: SigningKey,
                       actor: str, created_at: int | None = None) -> dict:
    """A verdict the gateway signs with its delegate `key` for `actor`, the identity it authenticated."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}")
    return sign_for("FindingOverride", {
        "finding_id": finding_id, "study_uid": study_uid, "verdict": verdict.upper(), "reason": reason,
        "created_at": int(time.time() * 1000) if created_at is None else created_at}, key, actor)


def untrusted_override(record: dict, trusted: dict[str, Any]) -> str | None:
    """Why a verdict must be ignored (logged at ERROR), or None when a trusted key signed it."""
    why = rejection("FindingOverride", record, trusted)
    if why is not None:
        log.error("ignored override of finding %s: %s", record.get("finding_id"), why)
    return why


def current_overrides(settings: KafkaSettings, trusted: dict[str, Any]) -> dict[str, dict]:
    """The latest verdict per finding id, among those a trusted key signed."""
    latest: dict[str, dict] = {}
    for _, record in read_events(settings, FINDINGS_OVERRIDES):
        if untrusted_override(record, trusted) is None:
            latest[record["finding_id"]] = record
    return latest


def override_view(record: dict) -> dict:
    """A FindingOverride as readers show it beside its finding; `via` names the delegate key
    (the gateway) when someone else's key signed it for `by`."""
    view = {"verdict": record["verdict"].lower(), "by": record["by"], "reason": record["reason"],
            "at": record["created_at"]}
    if record.get("signer") and record["signer"] != record["by"]:
        view["via"] = record["signer"]
    return view


def apply_overrides(result: dict, overrides: dict[str, dict]) -> dict:
    """The result with each overridden finding carrying its `override` (a reader's view)."""
    for img in result["images"]:
        for f in img["findings"]:
            if f["finding_id"] in overrides:
                f["override"] = override_view(overrides[f["finding_id"]])
    return result


def rejected_overrides(settings: KafkaSettings) -> list[dict]:
    """The verdicts readers ignored, from findings.overrides.audit, one per verdict (finding, by,
    created_at) with every reader that wrote a copy in `rejected_by`, in the order first seen."""
    from radstream.streams.kafka.topics import OVERRIDES_AUDIT

    folded: dict[tuple, dict] = {}
    for _, record in read_events(settings, OVERRIDES_AUDIT):
        key = (record["finding_id"], record["by"], record["created_at"], record.get("signature", ""))
        entry = folded.setdefault(key, {**record, "rejected_by": []})
        if record.get("rejected_by") and record["rejected_by"] not in entry["rejected_by"]:
            entry["rejected_by"].append(record["rejected_by"])
    return list(folded.values())
