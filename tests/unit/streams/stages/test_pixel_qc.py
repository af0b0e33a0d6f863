"""Pixel QC in the qc stage: an OR over every qc-task model's outputs, thresholds read live."""

from __future__ import annotations

from radstream.domain.thresholds import ThresholdBook
from radstream.streams.stage import Inbound
from radstream.streams.stages.qc import QcStage
from radstream.streams.state import MemoryStore
from tests.factories import metadata

QC_MODELS = {"demo-qc": {"underexposed": 0.5, "overexposed": 0.5, "rotated": 0.5},
             "other-qc": {"cropped": 0.7}}
CLEAN = {"underexposed": 0.02, "overexposed": 0.01, "rotated": 0.03}


def _fused(sop: str = "1.1", qc: dict[str, float] | None = None, other: dict[str, float] | None = None,
           **meta) -> dict:
    """A FindingsFused event with one finding from the nodule classifier and the QC models' outputs."""
    outputs = [{"model": "demo-classifier", "label": "nodule", "probability": 0.9}]
    outputs += [{"model": "demo-qc", "label": k, "probability": v} for k, v in sorted((qc or CLEAN).items())]
    outputs += [{"model": "other-qc", "label": k, "probability": v} for k, v in sorted((other or {}).items())]
    versions = {"demo-classifier": "1", "demo-qc": "1"} | ({"other-qc": "3"} if other else {})
    return {
        "schema_version": 1, "idempotency_key": f"k-{sop}", "study_uid": "7.7", "series_uid": "7.7.1",
        "sop_uid": sop, "frame": 0, "site": "TEST", "expected_instances": 1, "arrived_at": 1,
        "display": None, "source": None, "metadata": metadata(**meta), "trace_id": "t1",
        "expected_models": sorted(versions), "missing_models": [], "model_versions": versions,
        "fused_boxes": [], "classifier_outputs": outputs,
        "findings": [{"rule_id": "nodule-suspected", "rule_version": "1", "label": "nodule", "confidence": 0.9,
                      "box": None, "inputs": {"demo-classifier/nodule": 0.9},
                      "thresholds": {"rule:nodule-suspected/min_probability": 0.5}}],
        "config_version": 0, "stage_ms": {},
    }


def _stage(*records: dict) -> QcStage:
    book = ThresholdBook()
    for record in records:
        assert book.apply(record)
    return QcStage(quiet_period_s=10.0, qc_models=QC_MODELS, config=book, state=MemoryStore())


def _image(stage: QcStage, fused: dict) -> tuple[dict, dict]:
    out = stage.process(Inbound(fused))
    assert len(out) == 1  # one expected instance: final at once
    return out[0].value["images"][0], out[0].value


def test_clean_image_passes_and_keeps_every_output() -> None:
    image, _ = _image(_stage(), _fused())
    assert image["status"] == "ANALYSED" and image["qc_flags"] == []
    assert image["findings"] and len(image["classifier_outputs"]) == 4


def test_one_label_of_one_model_is_enough() -> None:
    image, _ = _image(_stage(), _fused(qc={**CLEAN, "overexposed": 0.93}))
    assert image["status"] == "NOT_ANALYSABLE"
    assert image["qc_flags"] == ["pixel QC: overexposed 0.93 >= 0.50 (demo-qc v1)"]
    assert image["findings"] == [] and image["fused_boxes"] == []
    # The QC outputs stay visible; the finding model's do not.
    assert {o["model"] for o in image["classifier_outputs"]} == {"demo-qc"}
    assert next(o for o in image["classifier_outputs"] if o["label"] == "overexposed")["probability"] == 0.93


def test_or_over_models_and_labels_at_or_above_threshold() -> None:
    image, _ = _image(_stage(), _fused(qc={**CLEAN, "rotated": 0.5}, other={"cropped": 0.71}))
    assert image["qc_flags"] == ["pixel QC: rotated 0.50 >= 0.50 (demo-qc v1)",
                                 "pixel QC: cropped 0.71 >= 0.70 (other-qc v3)"]
    image, _ = _image(_stage(), _fused(qc={**CLEAN, "rotated": 0.49}, other={"cropped": 0.69}))
    assert image["status"] == "ANALYSED"


def test_a_pushed_threshold_changes_the_decision_and_stamps_its_version() -> None:
    fused = _fused(qc={**CLEAN, "underexposed": 0.6})
    image, _ = _image(_stage(), fused)
    assert image["status"] == "NOT_ANALYSABLE"

    lenient = {"version": 4, "scope": "model:demo-qc", "author": "t", "reason": "r", "created_at": 0,
               "values": {"model:demo-qc/underexposed": 0.8}}
    image, result = _image(_stage(lenient), fused)
    assert image["status"] == "ANALYSED" and image["qc_flags"] == []
    assert result["config_version"] == 4

    strict = {**lenient, "values": {"model:demo-qc/rotated": 0.02}}
    image, _ = _image(_stage(strict), _fused())
    assert image["qc_flags"] == ["pixel QC: rotated 0.03 >= 0.02 (demo-qc v1)"]


def test_header_and_pixel_flags_combine() -> None:
    image, _ = _image(_stage(), _fused(qc={**CLEAN, "underexposed": 0.97}, body_part="HAND", laterality="L"))
    assert image["status"] == "NOT_ANALYSABLE" and len(image["qc_flags"]) == 2
    assert image["qc_flags"][0].startswith("body part HAND")
    assert image["qc_flags"][1] == "pixel QC: underexposed 0.97 >= 0.50 (demo-qc v1)"


def test_without_qc_models_outputs_never_gate() -> None:
    stage = QcStage(quiet_period_s=10.0, state=MemoryStore())
    image, _ = _image(stage, _fused(qc={**CLEAN, "underexposed": 0.99}))
    assert image["status"] == "ANALYSED"
