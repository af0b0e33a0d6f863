"""Which SR a PACS export stage stored last for each study: the predecessor of the next version.

A newer result version (a late image, an override) makes new objects, and its SR names the
SR stored before it in the PredecessorDocumentsSequence. A redelivery of a version already
stored must build the very same objects, so it must get the same predecessor it got the
first time, not the SR it itself produced. The stage keeps, per study, the last few
versions it stored: idempotency key -> (its SR, the predecessor it was built with). The
store is the stage's StateStore, a changelog under the runtime (streams/state.py), so a
restart does not forget (D-023).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from radstream.services.export.dicom_objects import Predecessor
from radstream.streams.state import StateStore

KEPT_VERSIONS = 8  # per study: enough for redeliveries and replays of recent versions


class SrHistory:
    """Per study, the versions stored, newest last: `{"versions": [{"key", "sr", "predecessor"}]}`."""

    def __init__(self, state: StateStore) -> None:
        self.state = state

    def predecessor_for(self, study_uid: str, key: str) -> Predecessor | None:
        """The predecessor to build version `key` with: the one it was first built with if it was
        stored before, else the SR of the newest version stored (None for a study's first result)."""
        versions = self._versions(study_uid)
        for version in versions:
            if version["key"] == key:
                return _predecessor(version["predecessor"])
        return _predecessor(versions[-1]["sr"]) if versions else None

    def remember(self, study_uid: str, key: str, sr: Predecessor, predecessor: Predecessor | None) -> None:
        """Version `key` of the study is stored, with this SR, built with this predecessor."""
        versions = self._versions(study_uid)
        if any(v["key"] == key for v in versions):
            return  # a redelivery: it stays where it was, so the newest stays newest
        versions.append({"key": key, "sr": asdict(sr), "predecessor": asdict(predecessor) if predecessor else None})
        self.state.put(study_uid, {"versions": versions[-KEPT_VERSIONS:]})

    def _versions(self, study_uid: str) -> list[dict[str, Any]]:
        entry = self.state.get(study_uid)
        return list(entry["versions"]) if entry else []


def _predecessor(value: dict[str, str] | None) -> Predecessor | None:
    return Predecessor(**value) if value else None
