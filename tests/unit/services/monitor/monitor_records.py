"""StudyResult records for the monitor's tests, checked against the contract by the codec, with
image statistics computed by decode's and preprocess's own functions on real phantom pixels."""

from __future__ import annotations

from typing import Any

import numpy as np

from radstream.domain.exposure import exposure_statistics, profile_statistics
from radstream.models.profile import InputProfile, apply_profile
from radstream.services.synthetic.phantoms import make_phantom
from radstream.streams.codec import Codec

CODEC = Codec()
PROFILE = InputProfile(size=64)


def valid(schema: str, record: dict[str, Any]) -> dict[str, Any]:
    """The record as a consumer decodes it: encoding fails on anything the contract refuses."""
    return CODEC.decode(CODEC.encode(schema, record), expect=schema)[1]


def phantom_stats(rng: np.random.Generator, exposure_scale: float = 1.0) -> dict[str, Any]:
    """ImageStatistics of one 96 px phantom, its pixels times `exposure_scale` (a vendor's scale)."""
    pixels = make_phantom(rng, 96).image.astype(np.float32) * exposure_scale
    stats = exposure_statistics(pixels)
    tensor, _ = apply_profile(pixels, PROFILE)
    stats["profiles"] = [profile_statistics(PROFILE.hash(), tensor, PROFILE.mean, PROFILE.std)]
    return stats


def image(sop: str, *, findings: list[dict] | None = None, boxes: list[dict] | None = None,
          outputs: list[dict] | None = None, stats: dict | None = None, manufacturer: str = "Acme",
          model: str = "CR-1", status: str = "ANALYSED") -> dict[str, Any]:
    return {"sop_uid": sop, "series_uid": sop + ".s", "frame": 0, "sop_class_uid": None, "status": status,
            "qc_flags": [] if status == "ANALYSED" else ["pixel QC: overexposed"], "missing_models": [],
            "fused_boxes": boxes or [], "classifier_outputs": outputs or [], "findings": findings or [],
            "modality": "CR", "body_part": "CHEST", "view_position": "PA", "manufacturer": manufacturer,
            "manufacturer_model": model, "image_stats": stats, "display_uri": None, "source": None,
            "stage_ms": {}, "latency_ms": 1.0}


def study(uid: str, site: str, images: list[dict], created_at: int, final: bool = True) -> dict[str, Any]:
    return valid("StudyResult", {
        "idempotency_key": f"{uid}-{final}", "study_uid": uid, "site": site, "final": final,
        "completion": "expected_count_reached" if final else "in_progress", "expected_instances": len(images),
        "images": images, "model_versions": {}, "created_at": created_at, "config_version": 0, "stage_ms": {},
        "trace_id": None})


def box_finding(finding_id: str, box: list[float], score: float = 0.8) -> dict[str, Any]:
    return {"rule_id": "nodule-detected", "rule_version": "1", "label": "nodule", "confidence": score, "box": box,
            "inputs": {"fused_box[0].score": score}, "thresholds": {"rule:nodule-detected/min_score": 0.3},
            "finding_id": finding_id}


def classifier_finding(finding_id: str, probability: float = 0.9) -> dict[str, Any]:
    return {"rule_id": "nodule-suspected", "rule_version": "1", "label": "nodule", "confidence": probability,
            "box": None, "inputs": {"demo-classifier/nodule": probability},
            "thresholds": {"rule:nodule-suspected/min_probability": 0.8}, "finding_id": finding_id}


def override(finding_id: str, study_uid: str, verdict: str, reason: str = "", at: int = 1) -> dict[str, Any]:
    return valid("FindingOverride", {"finding_id": finding_id, "study_uid": study_uid, "verdict": verdict,
                                     "by": "dr-a", "reason": reason, "created_at": at, "signer": "", "signature": ""})
