"""A radiologist's verdict on one finding: `radstream override` writes it to the compacted
`findings.overrides` topic (key = finding_id); readers of results attach it to that finding
only. The study result itself is never rewritten, so other findings stay as they were.
"""

from __future__ import annotations

import time

from radstream.services.results import study_results
from radstream.streams.kafka.producer import EventPublisher
from radstream.streams.kafka.reader import read_events
from radstream.streams.kafka.settings import KafkaSettings
from radstream.streams.kafka.topics import FINDINGS_OVERRIDES

VERDICTS = ("confirmed", "rejected")


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


def record_override(settings: KafkaSettings, study_uid: str, finding_id: str, verdict: str, by: str,
                    reason: str = "") -> dict:
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}")
    if not by:
        raise ValueError("an override needs --by (who decided)")
    find_finding(settings, study_uid, finding_id)
    record = {"finding_id": finding_id, "study_uid": study_uid, "verdict": verdict.upper(), "by": by,
              "reason": reason, "created_at": int(time.time() * 1000)}
    producer = EventPublisher(settings)
    producer.send(FINDINGS_OVERRIDES, finding_id, record)
    producer.flush()
    return record


def current_overrides(settings: KafkaSettings) -> dict[str, dict]:
    """The latest verdict per finding id."""
    latest: dict[str, dict] = {}
    for _, record in read_events(settings, FINDINGS_OVERRIDES):
        latest[record["finding_id"]] = record
    return latest


def override_view(record: dict) -> dict:
    """A FindingOverride as readers show it beside its finding."""
    return {"verdict": record["verdict"].lower(), "by": record["by"], "reason": record["reason"],
            "at": record["created_at"]}


def apply_overrides(result: dict, overrides: dict[str, dict]) -> dict:
    """The result with each overridden finding carrying its `override` (a reader's view)."""
    for img in result["images"]:
        for f in img["findings"]:
            if f["finding_id"] in overrides:
                f["override"] = override_view(overrides[f["finding_id"]])
    return result
