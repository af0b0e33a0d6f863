"""qc: header checks and pixel QC per image, then study assembly into one StudyResult.

Pixel QC is an OR over every "qc"-task model's outputs (acquisition defects such as
under- or overexposure): one probability at or above its threshold
(`model:<name>/<label>`, default from the manifest) makes the image not analysable.

State (the StateStore it is given: its changelog under the runtime) per study: the
image results so far. A study is final when the expected instance count (from the
sender) is reached, or when no image has arrived for the quiet period. An image
arriving after the final result produces an amended final result (completion
"late_amendment").
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from radstream.domain.keys import frame_key, sop_uid_of
from radstream.domain.thresholds import ThresholdBook, ThresholdKey, ThresholdSet
from radstream.streams.kafka.topics import FINDINGS_FUSED, STUDY_RESULTS
from radstream.streams.stage import Inbound, Output, Stage, idempotency_key, trace_parent, traceparent_of
from radstream.streams.state import MemoryStore, StateStore

# Defaults when a QcStage is built without the manifests' applicability (streams/stages/registry.py derives it).
SUPPORTED_MODALITIES = ("CR", "DX")
# Body parts that come in pairs: an image of one is unreadable without its side.
PAIRED_BODY_PARTS = ("EXTREMITY", "HAND", "WRIST", "FOREARM", "ELBOW", "ARM", "HUMERUS", "SHOULDER", "CLAVICLE",
                     "HIP", "FEMUR", "LEG", "KNEE", "TIBIA", "FIBULA", "ANKLE", "FOOT", "BREAST")
SIDES = ("L", "R")


@dataclass(frozen=True)
class Applicability:
    """What the models in force may read; an empty tuple accepts anything."""

    modalities: tuple[str, ...]
    body_parts: tuple[str, ...]
    views: tuple[str, ...]


def applicability_union(declared: Iterable[Mapping[str, Sequence[str]]]) -> Applicability:
    """The union of the models' manifest `applicability` ({"modalities", "body_parts", "views"}).

    An image is analysable when some model may read it, so values are OR-ed; a model that
    leaves a dimension empty accepts anything there, and so does the union.
    """
    union: dict[str, set[str] | None] = {"modalities": set(), "body_parts": set(), "views": set()}
    seen = False
    for applicability in declared:
        seen = True
        for dimension, values in union.items():
            wanted = [v.strip().upper() for v in applicability.get(dimension) or () if v.strip()]
            if values is not None:
                union[dimension] = values | set(wanted) if wanted else None
    if not seen:
        return Applicability((), (), ())
    return Applicability(*(tuple(sorted(union[d] or ())) for d in ("modalities", "body_parts", "views")))


def header_flags(fused: dict, applicable_body_parts: tuple[str, ...],
                 applicable_views: tuple[str, ...] = (),
                 applicable_modalities: tuple[str, ...] = SUPPORTED_MODALITIES) -> list[str]:
    """Header checks that make an image not analysable by the models in force: modality,
    body part and view position against the models' applicability (an empty tuple accepts
    anything), and laterality present (for paired body parts) and consistent between image
    and series."""
    meta = fused["metadata"]
    flags = []
    modality = (meta.get("modality") or "").upper()
    if applicable_modalities and modality not in applicable_modalities:
        flags.append(f"modality {modality or 'missing'} is outside the models' applicability "
                     f"({', '.join(applicable_modalities)})")
    body = (meta.get("body_part") or "").upper()
    if applicable_body_parts and body and body not in applicable_body_parts:
        flags.append(f"body part {body} is outside the models' applicability ({', '.join(applicable_body_parts)})")
    view = (meta.get("view_position") or "").upper()
    if applicable_views and view and view not in applicable_views:
        flags.append(f"view position {view} is outside the models' applicability ({', '.join(applicable_views)})")
    image_side, series_side = (meta.get("laterality") or "").upper(), (meta.get("series_laterality") or "").upper()
    if body in PAIRED_BODY_PARTS and image_side not in SIDES:
        flags.append(f"laterality missing for a paired body part ({body})")
    if image_side in SIDES and series_side in SIDES and image_side != series_side:
        flags.append(f"laterality inconsistent: image {image_side}, series {series_side}")
    if fused["missing_models"] and set(fused["missing_models"]) == set(fused["expected_models"]):
        flags.append("no model produced an output before the deadline")
    return flags


def pixel_flags(fused: dict, qc_models: dict[str, dict[str, float]], thresholds: ThresholdSet) -> list[str]:
    """One flag per qc-model label at or above its threshold; `qc_models` maps name -> {label: default}."""
    flags = []
    for out in fused["classifier_outputs"]:
        model, label, p = out["model"], out["label"], out["probability"]
        defaults = qc_models.get(model, {})
        if label not in defaults:
            continue
        threshold = thresholds.get(ThresholdKey.model_label(model, label), defaults[label])
        if p >= threshold:
            version = fused["model_versions"].get(model, "?")
            flags.append(f"pixel QC: {label} {p:.2f} >= {threshold:.2f} ({model} v{version})")
    return flags


def image_result(fused: dict, applicable_body_parts: tuple[str, ...], now_ms: int,
                 qc_models: dict[str, dict[str, float]] | None = None,
                 thresholds: ThresholdSet | None = None, applicable_views: tuple[str, ...] = (),
                 applicable_modalities: tuple[str, ...] = SUPPORTED_MODALITIES) -> dict:
    qc_models = qc_models or {}
    flags = (header_flags(fused, applicable_body_parts, applicable_views, applicable_modalities)
             + pixel_flags(fused, qc_models, thresholds or ThresholdSet()))
    analysable = not flags
    meta = fused["metadata"]
    # A gated image keeps its QC models' outputs, so a reader sees the values behind the flags.
    shown = [o for o in fused["classifier_outputs"] if analysable or o["model"] in qc_models]
    return {
        "sop_uid": fused["sop_uid"],
        "series_uid": fused["series_uid"],
        "frame": fused["frame"],
        "sop_class_uid": meta.get("sop_class_uid"),
        "status": "ANALYSED" if analysable else "NOT_ANALYSABLE",
        "qc_flags": flags,
        "missing_models": fused["missing_models"],
        "fused_boxes": fused["fused_boxes"] if analysable else [],
        "classifier_outputs": shown,
        "findings": fused["findings"] if analysable else [],
        "modality": meta.get("modality"),
        "body_part": meta.get("body_part"),
        "view_position": meta.get("view_position"),
        "display_uri": (fused.get("display") or {}).get("uri"),
        "stage_ms": fused["stage_ms"],
        "latency_ms": float(max(0, now_ms - fused["arrived_at"])),
    }


class QcStage(Stage):
    name = "qc"
    input_topic = FINDINGS_FUSED
    stateful = True

    def __init__(self, quiet_period_s: float = 10.0, applicable_body_parts: tuple[str, ...] = ("CHEST",),
                 qc_models: dict[str, dict[str, float]] | None = None,
                 applicable_views: tuple[str, ...] = ("PA", "AP"),
                 applicable_modalities: tuple[str, ...] = SUPPORTED_MODALITIES, *,
                 config: ThresholdBook | None = None, state: StateStore | None = None) -> None:
        self.views = tuple(v.upper() for v in applicable_views)
        self.modalities = tuple(m.upper() for m in applicable_modalities)
        self.qc_models = dict(qc_models or {})  # name -> {label: default threshold}, task "qc" only
        self.quiet_ms = int(quiet_period_s * 1000)
        self.retention_ms = max(self.quiet_ms * 6, 600_000)
        self.applicable = tuple(b.upper() for b in applicable_body_parts)
        self.config = config
        self.state: StateStore = state if state is not None else MemoryStore()

    def process(self, event: Inbound) -> list[Output]:
        fused = event.value
        now = _now_ms()
        study = self.state.get(fused["study_uid"]) or {
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
            if not study["final_keys"] and idle >= self.quiet_ms:
                final = self._study_result(study_uid, study, "quiet_period_elapsed", now_ms)
                final.trace_parent = trace_parent(study.get("traceparent"))
                outputs.append(final)
                self.state.put(study_uid, study)
            elif study["final_keys"] and idle >= self.retention_ms:
                self.state.delete(study_uid)
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
        return {"open_studies": len(self.state) if self.state else 0, "qc_models": sorted(self.qc_models)}


def _now_ms() -> int:
    return int(time.time() * 1000)
