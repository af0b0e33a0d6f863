"""qc: header checks and pixel QC per image (domain/qc.py), then study assembly into one StudyResult.

Pixel QC is an OR over every "qc"-task model's outputs (acquisition defects such as
under- or overexposure): one probability at or above its threshold
(`model:<name>/<label>`, default from the manifest) makes the image not analysable.

State (the StateStore it is given: its changelog under the runtime) per study: the
image results so far. A study is final when the expected instance count (from the
sender) is reached, or when no image has arrived for the quiet period. An image
arriving after the final result produces an amended final result (completion
"late_amendment").

A study belongs to its first site (docs/security.md). An image of a study UID that
is held for another site is dead-lettered with code `site_conflict`, never merged:
the study's state, results and thresholds stay the first site's. Once a final
study's state is dropped (its retention), a small owner record (site and time) is
kept for `owner_retention_s` (RADSTREAM_STUDY_OWNER_RETENTION_DAYS), so a late
image from another site is still refused.
"""

from __future__ import annotations

import time
from typing import Any

from radstream.domain.errors import Rejected
from radstream.domain.keys import frame_key, idempotency_key, sop_uid_of
from radstream.domain.qc import SUPPORTED_MODALITIES, image_result
from radstream.domain.thresholds import ThresholdBook
from radstream.streams.kafka.topics import FINDINGS_FUSED, STUDY_RESULTS
from radstream.streams.stage import Inbound, Output, Stage, trace_parent, traceparent_of
from radstream.streams.state import MemoryStore, StateStore


class QcStage(Stage):
    name = "qc"
    input_topic = FINDINGS_FUSED
    output_topics = (STUDY_RESULTS,)
    stateful = True

    def __init__(self, quiet_period_s: float = 10.0, applicable_body_parts: tuple[str, ...] = ("CHEST",),
                 qc_models: dict[str, dict[str, float]] | None = None,
                 applicable_views: tuple[str, ...] = ("PA", "AP"),
                 applicable_modalities: tuple[str, ...] = SUPPORTED_MODALITIES, *,
                 config: ThresholdBook | None = None, state: StateStore | None = None,
                 owner_retention_s: float = 30 * 86400) -> None:
        self.views = tuple(v.upper() for v in applicable_views)
        self.modalities = tuple(m.upper() for m in applicable_modalities)
        self.qc_models = dict(qc_models or {})  # name -> {label: default threshold}, task "qc" only
        self.quiet_ms = int(quiet_period_s * 1000)
        self.retention_ms = max(self.quiet_ms * 6, 600_000)
        self.owner_retention_ms = int(owner_retention_s * 1000)
        self.applicable = tuple(b.upper() for b in applicable_body_parts)
        self.config = config
        self.state: StateStore = state if state is not None else MemoryStore()

    def process(self, event: Inbound) -> list[Output]:
        fused = event.value
        now = _now_ms()
        study = self.state.get(fused["study_uid"])
        if study is not None and study["site"] != fused["site"]:
            raise Rejected(f"the study belongs to site {study['site']!r}; an instance from site "
                           f"{fused['site']!r} is not merged", code="site_conflict")
        if study is not None and study.get("owner_only"):
            study = None  # the same site again, after its study was dropped: a new study
        study = study or {
            "images": {}, "expected": fused["expected_instances"], "site": fused["site"],
            "trace_id": fused["trace_id"], "final_keys": [], "traceparent": traceparent_of(event),
        }
        thresholds = self.thresholds(fused["site"])
        image = image_result(fused, self.applicable, now, self.qc_models, thresholds, self.views, self.modalities)
        image_id = frame_key(fused["sop_uid"], fused["frame"])
        # The version in force is fuse's (rules) or this stage's (pixel QC), whichever is newer.
        config_version = max(fused["config_version"], thresholds.version) if self.qc_models else fused["config_version"]
        study["images"][image_id] = {"result": image, "versions": fused["model_versions"],
                                      "config_version": config_version}
        study["last_ms"] = now
        if fused["expected_instances"]:
            study["expected"] = fused["expected_instances"]
        outputs = []
        sops = {sop_uid_of(k) for k in study["images"]}
        if study["final_keys"]:
            outputs.append(self._study_result(fused["study_uid"], study, "late_amendment", now))
        elif study["expected"] and len(sops) >= study["expected"]:
            outputs.append(self._study_result(fused["study_uid"], study, "expected_count_reached", now))
        else:  # an incremental update: the study so far, not final
            outputs.append(self._study_result(fused["study_uid"], study, "in_progress", now, final=False))
        self.state.put(fused["study_uid"], study)
        return outputs

    def on_tick(self, now_ms: int) -> list[Output]:
        outputs = []
        for study_uid, study in self.state.items():
            idle = now_ms - study["last_ms"]
            if study.get("owner_only"):
                if idle >= self.owner_retention_ms:
                    self.state.delete(study_uid)
                continue
            if not study["final_keys"] and idle >= self.quiet_ms:
                final = self._study_result(study_uid, study, "quiet_period_elapsed", now_ms)
                final.trace_parent = trace_parent(study.get("traceparent"))
                outputs.append(final)
                self.state.put(study_uid, study)
            elif study["final_keys"] and idle >= self.retention_ms:
                self.state.put(study_uid, {"owner_only": True, "site": study["site"], "last_ms": study["last_ms"]})
        return outputs

    def _study_result(self, study_uid: str, study: dict, completion: str, now_ms: int, final: bool = True) -> Output:
        """The study result so far; `final=False` makes it an incremental update."""
        images = [study["images"][k]["result"] for k in sorted(study["images"])]
        versions: dict[str, str] = {}
        for entry in study["images"].values():
            versions.update(entry["versions"])
        config_version = max(e["config_version"] for e in study["images"].values())
        key = idempotency_key(study_uid, sorted(study["images"]), sorted(versions.items()), config_version,
                              "final" if final else "update")
        if final:
            study["final_keys"].append(key)
        value = {
            "idempotency_key": key,
            "study_uid": study_uid,
            "site": study["site"],
            "final": final,
            "completion": completion,
            "expected_instances": study["expected"],
            "images": images,
            "model_versions": versions,
            "created_at": now_ms,
            "config_version": config_version,
            "stage_ms": {},
            "trace_id": study["trace_id"],
        }
        return Output(STUDY_RESULTS, study_uid, value)

    def health(self) -> dict[str, Any]:
        # open studies and the owner records of dropped ones (not told apart: this runs on the health thread)
        return {"open_studies": len(self.state) if self.state else 0, "qc_models": sorted(self.qc_models)}


def _now_ms() -> int:
    return int(time.time() * 1000)
