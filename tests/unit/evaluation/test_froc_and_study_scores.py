"""FROC matching on constructed boxes, and the study-level decision and score rule."""

from __future__ import annotations

import pytest

from study_fixtures import image_result, study_result
from radstream.evaluation.froc import froc, match_image
from radstream.evaluation.inputs import TruthBox
from radstream.evaluation.study_scores import study_call, study_view


def test_greedy_iou_matching_counts_a_second_hit_as_false_positive() -> None:
    truth = [(0.0, 0.0, 10.0, 10.0)]
    preds = [(0.9, [0, 0, 10, 10]), (0.8, [1, 1, 10, 10]), (0.7, [50, 50, 60, 60])]
    assert match_image(preds, truth, 0.5) == [(0.9, True), (0.8, False), (0.7, False)]
    assert match_image([(0.9, [0, 0, 10, 30])], truth, 0.5) == [(0.9, False)]  # IoU 1/3


def test_froc_sensitivity_at_fixed_false_positives_per_image() -> None:
    # 4 images, 4 lesions. Hits at 0.9 and 0.6; false positives at 0.8 and 0.5; two lesions never found.
    results = [study_result("s", [
        image_result("i1", boxes=[(0.9, [0, 0, 10, 10]), (0.8, [40, 40, 50, 50])]),
        image_result("i2", boxes=[(0.6, [0, 0, 10, 10])]),
        image_result("i3", boxes=[(0.5, [40, 40, 50, 50])]),
        image_result("i4")])]
    truth = [TruthBox("s", sop, "nodule", (0, 0, 10, 10)) for sop in ("i1", "i2", "i3", "i4")]
    f = froc(results, truth, "nodule")
    assert (f["lesions"], f["images"]) == (4, 4)
    # thresholds 0.9: (1 TP, 0 FP); 0.8: (1, 1); 0.6: (2, 1); 0.5: (2, 2)
    assert f["curve"]["sensitivity"] == [0.0, 0.25, 0.25, 0.5, 0.5]
    assert f["curve"]["fp_per_image"] == [0.0, 0.0, 0.25, 0.25, 0.5]
    at = f["sensitivity_at_fp_per_image"]
    assert at["0.125"] == 0.25 and at["0.25"] == 0.5 and at["8"] == 0.5
    assert f["mean_sensitivity"] == pytest.approx((0.25 + 0.5 * 6) / 7)


def test_study_call_prefers_findings_then_classifier_then_boxes() -> None:
    r = study_result("s", [image_result("a", probability=0.3), image_result("b", probability=0.7)])
    call = study_call(r, "nodule")
    assert call.positive and call.score == 0.7 and call.source == "finding"
    r = study_result("s", [image_result("a", probability=0.3), image_result("b", probability=0.4)])
    assert (study_call(r, "nodule").positive, study_call(r, "nodule").score) == (False, 0.4)
    r = study_result("s", [image_result("a", boxes=[(0.35, [0, 0, 1, 1])])])
    assert study_call(r, "nodule").score == 0.35 and study_call(r, "nodule").source == "fused_box"
    assert study_call(r, "effusion").score == 0.0 and not study_call(r, "effusion").positive


def test_study_view_joins_distinct_views() -> None:
    r = study_result("s", [image_result("a", view="PA"), image_result("b", view="LATERAL"), image_result("c", view=None)])
    assert study_view(r) == "LATERAL+PA"
    assert study_view(study_result("s", [image_result("a", view=None)])) == "unknown"
