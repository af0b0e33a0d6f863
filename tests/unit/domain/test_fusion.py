"""Weighted boxes fusion against hand-computed cases and against the reference implementation."""

from __future__ import annotations

import pytest
from ensemble_boxes import weighted_boxes_fusion as reference_wbf

from radstream.domain.fusion import ModelBoxes, weighted_boxes_fusion
from tests.fusion_cases import random_fusion_case


def test_two_models_agree_hand_computed() -> None:
    a = ModelBoxes("a", [[0, 0, 10, 10]], [0.8], ["nodule"])
    b = ModelBoxes("b", [[2, 0, 12, 10]], [0.4], ["nodule"])
    fused = weighted_boxes_fusion([a, b], iou_thr=0.5)
    assert len(fused) == 1
    f = fused[0]
    # coordinates: score-weighted mean; x1 = (0.8*0 + 0.4*2) / 1.2
    assert f.box == pytest.approx([0.8 / 1.2 * 0 + 0.4 / 1.2 * 2, 0, (0.8 * 10 + 0.4 * 12) / 1.2, 10])
    # score: mean score * min(2 models, 2 boxes) / sum of weights (2)
    assert f.score == pytest.approx(0.6)
    assert {s["model"] for s in f.sources} == {"a", "b"}


def test_single_model_box_is_down_weighted_and_says_so() -> None:
    a = ModelBoxes("a", [[0, 0, 10, 10]], [0.9], ["nodule"])
    b = ModelBoxes("b", [[50, 50, 60, 60]], [0.6], ["nodule"])
    fused = weighted_boxes_fusion([a, b], iou_thr=0.5)
    assert [f.score for f in fused] == pytest.approx([0.45, 0.3])
    assert all(len(f.sources) == 1 for f in fused)


def test_labels_never_mix_and_skip_threshold_drops() -> None:
    a = ModelBoxes("a", [[0, 0, 10, 10], [0, 0, 10, 10]], [0.9, 0.05], ["nodule", "mass"])
    fused = weighted_boxes_fusion([a], iou_thr=0.5, skip_box_thr=0.1)
    assert [f.label for f in fused] == ["nodule"]


@pytest.mark.parametrize("seed", range(20))
def test_matches_reference_implementation(seed: int) -> None:
    inputs, (ref_boxes, ref_scores, ref_labels), weights = random_fusion_case(seed)
    ours = weighted_boxes_fusion(inputs, iou_thr=0.55, skip_box_thr=0.1)
    boxes, scores, labels = reference_wbf(ref_boxes, ref_scores, ref_labels, weights=weights,
                                          iou_thr=0.55, skip_box_thr=0.1, conf_type="avg")
    ours_sorted = sorted((f.label, round(f.score, 6), *[round(v, 6) for v in f.box]) for f in ours)
    ref_sorted = sorted((f"l{int(l)}", round(float(s), 6), *[round(float(v), 6) for v in b])
                        for b, s, l in zip(boxes, scores, labels))
    assert ours_sorted == ref_sorted


def test_fuse_cli_on_json_lines() -> None:
    import json
    import subprocess
    import sys

    lines = "\n".join(json.dumps(r) for r in [
        {"image": "i1", "model": "a", "boxes": [[0, 0, 10, 10]], "scores": [0.8], "labels": ["nodule"]},
        {"image": "i1", "model": "b", "boxes": [[2, 0, 12, 10]], "scores": [0.4], "labels": ["nodule"]},
        {"image": "i2", "model": "a", "boxes": [], "scores": [], "labels": []},
    ])
    res = subprocess.run([sys.executable, "-m", "radstream.services.cli", "fuse", "--iou", "0.5", "--weights", "a=1,b=1"],
                         input=lines, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    out = [json.loads(line) for line in res.stdout.splitlines()]
    assert [o["image"] for o in out] == ["i1", "i2"]
    assert out[0]["scores"] == pytest.approx([0.6]) and len(out[0]["sources"][0]) == 2
    assert out[1]["boxes"] == []
    nmw = subprocess.run([sys.executable, "-m", "radstream.services.cli", "fuse", "--iou", "0.5", "--method", "nmw"],
                         input=lines, capture_output=True, text=True, timeout=60)
    assert nmw.returncode == 0, nmw.stderr
    assert json.loads(nmw.stdout.splitlines()[0])["scores"] == pytest.approx([0.8])  # the leader's score
    bad = subprocess.run([sys.executable, "-m", "radstream.services.cli", "fuse"], input='{"image": 1}\n',
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "stdin line 1" in bad.stderr and "Traceback" not in bad.stderr
