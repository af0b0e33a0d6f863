"""Agreement between two versions of one model (pure): correlation, flips at the live threshold,
box F1 with the live version as reference; a version against itself agrees perfectly."""

from __future__ import annotations

import pytest

from radstream.domain.model_agreement import compare_versions, match_boxes, pearson


def _result(version: str, p: float | None = None, boxes: list[tuple[float, list[float]]] = ()) -> dict:
    return {"model": {"name": "m", "version": version, "task": "detector" if p is None else "classifier"},
            "classifications": {} if p is None else {"nodule": p},
            "detections": [{"label": "nodule", "score": s, "box": b} for s, b in boxes]}


def test_pearson_matches_the_textbook_value_and_is_undefined_without_variance() -> None:
    assert pearson([1, 2, 3, 4], [2, 4, 6, 8]) == pytest.approx(1.0)
    assert pearson([1, 2, 3, 4], [8, 6, 4, 2]) == pytest.approx(-1.0)
    # numpy.corrcoef([1, 2, 3, 4, 5], [2, 1, 4, 3, 5])[0, 1] = 0.8
    assert pearson([1, 2, 3, 4, 5], [2, 1, 4, 3, 5]) == pytest.approx(0.8)
    assert pearson([0.3, 0.3], [0.1, 0.9]) is None and pearson([1.0], [1.0]) is None


def test_box_matching_is_greedy_by_score_per_label_at_the_iou() -> None:
    live = [{"label": "nodule", "score": 0.9, "box": [0, 0, 10, 10]},
            {"label": "nodule", "score": 0.8, "box": [50, 50, 60, 60]}]
    shadow = [{"label": "nodule", "score": 0.95, "box": [1, 1, 11, 11]},  # IoU 81/119 = 0.68 with the first
              {"label": "mass", "score": 0.9, "box": [50, 50, 60, 60]},  # another label: no match
              {"label": "nodule", "score": 0.5, "box": [100, 100, 110, 110]}]
    assert match_boxes(live, shadow, 0.5) == (1, 2, 1)
    assert match_boxes(live, shadow, 0.7) == (0, 3, 2)


def test_a_version_against_itself_agrees_perfectly() -> None:
    images = {f"1.{i}": _result("2", boxes=[(0.2 + 0.1 * i, [i, i, i + 10, i + 10])]) for i in range(6)}
    a = compare_versions("m", images, images, ["nodule"], {"nodule": 0.5}, detector=True)
    assert (a.matched, a.only_live, a.only_shadow) == (6, 0, 0)
    [row] = a.labels
    assert row.pearson == pytest.approx(1.0)
    assert (row.live_positive_shadow_negative, row.live_negative_shadow_positive) == (0, 0)
    assert a.boxes is not None and a.boxes.f1 == 1.0 and a.boxes.true_positives == 3  # 0.5, 0.6, 0.7 kept


def test_flips_count_each_direction_at_the_live_threshold() -> None:
    live = {"a": _result("1", 0.9), "b": _result("1", 0.7), "c": _result("1", 0.2), "d": _result("1", 0.1),
            "only-live": _result("1", 0.5)}
    shadow = {"a": _result("2", 0.8), "b": _result("2", 0.3), "c": _result("2", 0.6), "d": _result("2", 0.7),
              "only-shadow": _result("2", 0.5)}
    a = compare_versions("m", live, shadow, ["nodule"], {"nodule": 0.5}, detector=False)
    [row] = a.labels
    assert (a.matched, a.only_live, a.only_shadow) == (4, 1, 1)
    assert (row.live_positive_shadow_negative, row.live_negative_shadow_positive) == (1, 2)
    assert a.boxes is None and a.live_versions == ["1"] and a.shadow_versions == ["2"]
    assert a.to_dict()["labels"][0]["images"] == 4
