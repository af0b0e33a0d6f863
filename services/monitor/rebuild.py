"""The monitor's state rebuilt in memory from the topics: what `monitor report` shows (the stage
keeps the same state in its changelog; the gateway feeds the same state as records arrive)."""

from __future__ import annotations

from typing import Any

from radstream.streams.monitoring import MonitorSettings, MonitorState
from radstream.services.overrides import untrusted_override
from radstream.streams.kafka.reader import read_events
from radstream.streams.kafka.settings import KafkaSettings
from radstream.streams.kafka.topics import FINDINGS_OVERRIDES, STUDY_RESULTS
from radstream.streams.state import MemoryStore


def state_from_topics(kafka: KafkaSettings, settings: MonitorSettings, trusted: dict[str, Any],
                      since_ms: int = 0) -> tuple[MonitorState, dict[str, int]]:
    """Every result from `since_ms` on and every signed verdict given from then; the counts of what
    was read and ignored. Results go in by their `created_at`, not partition by partition as the
    topic is read: a group's reference window is its *first* studies."""
    state = MonitorState(MemoryStore(), settings)
    counts = {"results": 0, "overrides": 0, "untrusted_overrides": 0}
    results = [r for _, r in read_events(kafka, STUDY_RESULTS, skip_undecodable=True) if r["created_at"] >= since_ms]
    for result in sorted(results, key=lambda r: r["created_at"]):
        state.add_result(result)
        counts["results"] += 1
    for _, override in read_events(kafka, FINDINGS_OVERRIDES, skip_undecodable=True):
        if override["created_at"] < since_ms:
            continue
        if untrusted_override(override, trusted) is not None:
            counts["untrusted_overrides"] += 1
            continue
        state.add_override(override)
        counts["overrides"] += 1
    return state, counts
