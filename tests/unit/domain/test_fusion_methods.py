"""NMW and Soft-NMS against hand-computed cases and against the reference implementation
(ensemble-boxes' `non_maximum_weighted`, `soft_nms` and the Soft-NMS loop it calls)."""

from __future__ import annotations

import numpy as np
import pytest
from ensemble_boxes import non_maximum_weighted as reference_nmw
from ensemble_boxes import soft_nms as reference_soft_nms
from ensemble_boxes.ensemble_boxes_nms import cpu_soft_nms_float

from radstream.domain.fusion import ModelBoxes
from radstream.domain.fusion_methods import FusionMethodError, check_method, fuse_by_label
from radstream.domain.nmw import non_maximum_weighted
from radstream.domain.soft_nms import soft_nms
from tests.fusion_cases import random_fusion_case


def _rows(fused) -> list[tuple]:
    return [(f.label, f.score, *f.box) for f in fused]


def _reference_rows(boxes, scores, labels) -> list[tuple]:
    return [(f"l{int(l)}", float(s), *[float(v) for v in b]) for b, s, l in zip(boxes, scores, labels)]


def _assert_same(ours: list[tuple], ref: list[tuple], rel: float) -> None:
    assert len(ours) == len(ref)
    for a, b in zip(ours, ref):
        assert a[0] == b[0]
        assert a[1:] == pytest.approx(b[1:], rel=rel, abs=1e-7)


@pytest.mark.parametrize("seed", range(20))
def test_nmw_matches_reference(seed: int) -> None:
    inputs, (boxes, scores, labels), weights = random_fusion_case(seed)
    ours = non_maximum_weighted(inputs, iou_thr=0.55, skip_box_thr=0.1)
    ref = reference_nmw(boxes, scores, labels, weights=weights, iou_thr=0.55, skip_box_thr=0.1)
    # the reference computes each fused box in float32; same order (descending score)
    _assert_same(_rows(ours), _reference_rows(*ref), rel=2e-6)


@pytest.mark.parametrize("seed", range(20))
def test_soft_nms_original_scores_match_reference(seed: int) -> None:
    inputs, (boxes, scores, labels), weights = random_fusion_case(seed)
    ours = soft_nms(inputs, sigma=0.5, thresh=0.02, score="original")
    ref = reference_soft_nms(boxes, [list(s) for s in scores], labels, weights=weights, sigma=0.5, thresh=0.02)
    _assert_same(_rows(ours), _reference_rows(*ref), rel=1e-9)  # same boxes, same order


@pytest.mark.parametrize("seed", range(20))
def test_soft_nms_decayed_scores_match_reference_loop(seed: int) -> None:
    """The decayed scores are what the reference's own loop leaves in its score array."""
    inputs, (boxes, scores, labels), weights = random_fusion_case(seed)
    ours = soft_nms(inputs, sigma=0.5, thresh=0.02)
    total = sum(weights)
    flat = [(b, s * weights[m] / total, l) for m in range(len(boxes))
            for b, s, l in zip(boxes[m], scores[m], labels[m])]
    expected = []
    for label in sorted({l for _, _, l in flat}):
        dets = np.array([b for b, _, l in flat if l == label], dtype=np.float64)
        decayed = np.array([s for _, s, l in flat if l == label], dtype=np.float64)
        keep = cpu_soft_nms_float(dets.copy(), decayed, Nt=0.5, sigma=0.5, thresh=0.02, method=2)
        kept_scores = decayed[decayed > 0.02]  # in place: positions as selected, as `keep` is
        expected += [(f"l{label}", float(s), *dets[i].tolist()) for i, s in zip(keep, kept_scores)]
    _assert_same(_rows(ours), expected, rel=1e-9)


def test_nmw_hand_computed_keeps_the_leaders_score() -> None:
    a = ModelBoxes("a", [[0, 0, 10, 10]], [0.8], ["nodule"])
    b = ModelBoxes("b", [[2, 0, 12, 10]], [0.4], ["nodule"])
    (f,) = non_maximum_weighted([a, b], iou_thr=0.5)
    iou = 80 / 120
    w_a, w_b = 0.8, 0.4 * iou
    assert f.score == pytest.approx(0.8)  # the leader's, not a mean
    assert f.box == pytest.approx([(w_b * 2) / (w_a + w_b), 0, (w_a * 10 + w_b * 12) / (w_a + w_b), 10])
    assert [s["model"] for s in f.sources] == ["a", "b"]


def test_soft_nms_hand_computed_decays_the_duplicate() -> None:
    a = ModelBoxes("a", [[0, 0, 10, 10]], [0.8], ["nodule"])
    b = ModelBoxes("b", [[2, 0, 12, 10]], [0.6], ["nodule"])
    first, second = soft_nms([a, b])
    iou = 80 / 120
    assert first.score == pytest.approx(0.8 / 2) and first.sources == [{"model": "a", "box": [0, 0, 10, 10],
                                                                         "score": 0.8}]
    assert second.score == pytest.approx(0.6 / 2 * np.exp(-iou * iou / 0.5))
    assert second.sources[0]["model"] == "b"


def test_fuse_by_label_routes_each_label_to_its_method() -> None:
    a = ModelBoxes("a", [[0, 0, 10, 10], [0, 0, 10, 10]], [0.8, 0.8], ["nodule", "mass"])
    b = ModelBoxes("b", [[2, 0, 12, 10], [2, 0, 12, 10]], [0.4, 0.4], ["nodule", "mass"])
    fused = fuse_by_label([a, b], {"nodule": "nmw"}, default="wbf", iou_thr=0.5)
    by_label = {f.label: f for f in fused}
    assert by_label["nodule"].score == pytest.approx(0.8)  # NMW: the leader's score
    assert by_label["mass"].score == pytest.approx(0.6)  # WBF: mean * 2/2
    soft = fuse_by_label([a, b], {}, default="soft-nms", skip_box_thr=0.5)
    assert {f.label for f in soft} == {"nodule", "mass"} and all(f.sources[0]["model"] == "a" for f in soft)


def test_unknown_method_is_a_one_line_error() -> None:
    with pytest.raises(FusionMethodError, match="RADSTREAM_FUSION_METHOD: fusion method 'nms' is not one of"):
        check_method("nms", "RADSTREAM_FUSION_METHOD")
