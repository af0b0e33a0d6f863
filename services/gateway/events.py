"""What the gateway streams: one `GatewayEvent` per pipeline event, and the filters on them.

Pure: no Kafka, no HTTP. The hub numbers events; the source turns Kafka messages
into `(kind, record, position)` and nothing else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from radstream.streams.kafka.topics import (
    FINDINGS_FUSED,
    FINDINGS_OVERRIDES,
    IMAGE_DECODED,
    INFERENCE_RESULTS,
    STAT_LANED,
    STUDY_RESULTS,
    schema_of,
    stat_twin,
)

# The topics the gateway follows. The SSE event type is the topic's logical name.
KINDS: tuple[str, ...] = (
    IMAGE_DECODED,
    INFERENCE_RESULTS,
    FINDINGS_FUSED,
    STUDY_RESULTS,
    FINDINGS_OVERRIDES,  # a radiologist's verdict, shown beside its finding
)
# Each followed topic by the schema it carries (topics.SCHEMAS): a decoded record's schema names its kind.
KIND_BY_SCHEMA: dict[str, str] = {schema_of(kind): kind for kind in KINDS}
# The topics read for them: each kind's topic and, on the STAT lane, its .stat twin, where an
# urgent image's events are (D-044, D-057); a twin's events are of its topic's kind.
FOLLOWED: tuple[str, ...] = tuple(t for kind in KINDS for t in (kind, stat_twin(kind)) if t == kind or kind in STAT_LANED)


def dedupe_key(kind: str, record: dict[str, Any]) -> str:
    """What makes a redelivery recognisable: the idempotency key, or for an override (which has
    none) the finding and the time of the verdict; empty when neither is known."""
    if kind == FINDINGS_OVERRIDES:
        return f"{record['finding_id']}@{record['created_at']}"
    return record.get("idempotency_key", "")


@dataclass(frozen=True)
class Position:
    """Where an event came from on the bus (logical topic, partition, offset)."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class Facets:
    """What the study is known to contain once this event is applied; filters match on these."""

    modalities: frozenset[str] = frozenset()
    qc_flags: frozenset[str] = frozenset()
    labels: frozenset[str] = frozenset()


@dataclass(frozen=True)
class GatewayEvent:
    """One pipeline event as the gateway streams it. `seq` is gateway-wide and strictly increasing."""

    seq: int
    kind: str
    study_uid: str
    site: str
    record: dict[str, Any]
    position: Position
    facets: Facets
    summary: dict[str, Any] = field(default_factory=dict)

    def payload(self, event_id: str) -> dict[str, Any]:
        return {
            "id": event_id,
            "type": self.kind,
            "study_uid": self.study_uid,
            "site": self.site,
            "position": {"topic": self.position.topic, "partition": self.position.partition,
                         "offset": self.position.offset},
            "study": self.summary,
            "record": public_record(self.record),
        }

    def data(self, event_id: str) -> str:
        return json.dumps(self.payload(event_id), separators=(",", ":"), sort_keys=True)


def public_record(record: dict[str, Any]) -> dict[str, Any]:
    """The record without blob URIs (server paths); images are served by `/studies/{uid}/images/`.
    The original instance (`source`, which holds PHI) is never described to a browser at all."""
    out = {k: v for k, v in record.items() if k != "source"}
    for name in ("pixels", "display"):
        if isinstance(out.get(name), dict):
            ref = out[name]
            out[name] = {"sha256": ref["sha256"], "media_type": ref["media_type"], "shape": ref.get("shape", [])}
    if "images" in out:
        out["images"] = [{k: v for k, v in img.items() if k not in ("display_uri", "source")} for img in out["images"]]
    return out


def _split(value: str | None) -> frozenset[str]:
    return frozenset(v.strip().lower() for v in (value or "").split(",") if v.strip())


@dataclass(frozen=True)
class EventFilter:
    """Query-string filters of `GET /events`. Each given filter must match; values are comma lists (any-of).

    `qc_flag=any` matches a study with any QC flag; another value matches a flag containing it.
    A study matches once what is known about it matches, so an early event (image.decoded)
    may be skipped and later ones of the same study delivered.
    """

    modalities: frozenset[str] = frozenset()
    sites: frozenset[str] = frozenset()
    qc_flags: frozenset[str] = frozenset()
    labels: frozenset[str] = frozenset()

    @classmethod
    def from_query(cls, query: Any) -> EventFilter:
        return cls(_split(query.get("modality")), _split(query.get("site")), _split(query.get("qc_flag")),
                   _split(query.get("label")))

    def matches(self, event: GatewayEvent) -> bool:
        f = event.facets
        if self.sites and event.site.lower() not in self.sites:
            return False
        if self.modalities and not self.modalities & {m.lower() for m in f.modalities}:
            return False
        if self.labels and not self.labels & {label.lower() for label in f.labels}:
            return False
        if self.qc_flags:
            flags = [q.lower() for q in f.qc_flags]
            if not flags:
                return False
            if "any" not in self.qc_flags and not any(want in flag for want in self.qc_flags for flag in flags):
                return False
        return True
