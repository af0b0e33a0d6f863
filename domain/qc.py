"""QC decisions on one image (pure): is it analysable by the models in force, and why not.

Header checks compare modality, body part and view against the union of the models'
declared applicability and check laterality; pixel QC ORs every qc-model label at or above
its threshold. The qc stage (streams/stages/qc.py) applies these per image and assembles
studies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from radstream.domain.thresholds import ThresholdKey, ThresholdSet


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
        "manufacturer": meta.get("manufacturer"),  # drift is watched per manufacturer and model
        "manufacturer_model": meta.get("manufacturer_model"),
        "image_stats": fused.get("image_stats"),
        "display_uri": (fused.get("display") or {}).get("uri"),
        "source": fused.get("source"),  # the original instance: where export edges read the patient from
        "stage_ms": fused["stage_ms"],
        "latency_ms": float(max(0, now_ms - fused["arrived_at"])),
    }
