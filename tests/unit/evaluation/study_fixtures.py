"""StudyResult builders and fixture files for the evaluation tests (imported by name: no package here)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest


def image_result(sop: str, *, probability: float | None = None, threshold: float = 0.5, label: str = "nodule",
                 boxes: list[tuple[float, list[float]]] = (), view: str | None = "PA") -> dict:
    """One ANALYSED image: a classifier output, its finding when at/above threshold, and fused boxes."""
    outputs = [] if probability is None else [{"model": "cls", "label": label, "probability": probability}]
    findings = [{"rule_id": f"{label}-suspected", "rule_version": "1", "label": label, "confidence": probability,
                 "box": None, "inputs": {f"cls/{label}": probability},
                 "thresholds": {f"rule:{label}-suspected/min_probability": threshold}}
                for _ in [0] if probability is not None and probability >= threshold]
    return {"sop_uid": sop, "series_uid": sop + ".s", "frame": 0, "status": "ANALYSED", "qc_flags": [],
            "missing_models": [], "fused_boxes": [{"label": label, "score": s, "box": b, "sources": []} for s, b in boxes],
            "classifier_outputs": outputs, "findings": findings, "modality": "CR", "body_part": "CHEST",
            "view_position": view, "display_uri": None, "stage_ms": {}, "latency_ms": 1.0}


def study_result(study: str, images: list[dict], site: str = "SITE-A") -> dict:
    return {"schema_version": 1, "idempotency_key": f"{study}-k", "study_uid": study, "site": site, "final": True,
            "completion": "expected_count_reached", "expected_instances": len(images), "images": images,
            "model_versions": {"cls": "1"}, "created_at": 0, "config_version": 0, "stage_ms": {}, "trace_id": None}


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture
def fixture_files(tmp_path: Path) -> dict[str, Path]:
    """60 studies, 2 sites, PA/AP, tiers; classifier scores separate the classes imperfectly; one lesion box each."""
    rng = np.random.default_rng(7)
    results, labels, boxes = [], [], []
    for i in range(60):
        positive = i % 3 == 0
        p = float(np.clip(rng.normal(0.7 if positive else 0.3, 0.2), 0, 1))
        pred_boxes = [(0.9, [11.0, 10.0, 49.0, 52.0])] if positive and i % 2 == 0 else []
        pred_boxes += [(0.2, [100.0, 100.0, 120.0, 130.0])] if i % 5 == 0 else []
        uid = f"1.2.{i}"
        results.append(study_result(uid, [image_result(f"{uid}.1", probability=p, boxes=pred_boxes,
                                                       view="PA" if i % 2 else "AP")],
                                    site="SITE-A" if i < 30 else "SITE-B"))
        labels.append([uid, "nodule", int(positive), ("acute" if i % 2 else "chronic") if positive else ""])
        if positive:
            boxes.append([uid, f"{uid}.1", "nodule", 10, 10, 50, 50])
    res = tmp_path / "results.jsonl"
    res.write_text("".join(json.dumps(r) + "\n" for r in results))
    return {
        "results": res,
        "labels": write_csv(tmp_path / "labels.csv", ["study_uid", "label", "value", "tier"], labels),
        "boxes": write_csv(tmp_path / "boxes.csv", ["study_uid", "sop_uid", "label", "x1", "y1", "x2", "y2"], boxes),
        "scores": write_csv(tmp_path / "scores.csv", ["study_uid", "label", "score"],
                            [[r["study_uid"], "nodule", r["images"][0]["classifier_outputs"][0]["probability"]]
                             for r in results]),
    }
