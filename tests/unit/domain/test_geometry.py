"""IoU: hand-computed values, the zero-area and empty cases, and the scalar form equal to the matrix."""

from __future__ import annotations

import numpy as np
import pytest

from radstream.domain.geometry import box_iou, iou


def test_iou() -> None:
    assert iou([0, 0, 10, 10], [0, 0, 10, 10]) == 1.0
    assert iou([0, 0, 10, 10], [10, 10, 20, 20]) == 0.0
    assert iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(50 / 150)
    assert iou([0, 0, 10, 10], [0, 0, 10, 20]) == 0.5
    assert type(iou([0, 0, 1, 1], [0, 0, 1, 1])) is float


def test_symmetric_bit_for_bit() -> None:
    rng = np.random.default_rng(0)
    a = np.concatenate([xy := rng.uniform(0, 100, (50, 2)), xy + rng.uniform(0, 30, (50, 2))], axis=1)
    b = a + rng.uniform(-5, 5, a.shape)
    assert np.array_equal(box_iou(a, b), box_iou(b, a).T)


def test_no_positive_union_is_zero() -> None:
    point, line = [3, 3, 3, 3], [0, 0, 0, 5]
    assert iou(point, point) == 0.0
    assert iou(line, line) == 0.0
    assert iou(point, [0, 0, 10, 10]) == 0.0  # zero area inside a box: no intersection
    assert iou([5, 5, 0, 0], [0, 0, 5, 5]) == 0.0  # inverted: no intersection
    # The ratio does not depend on scale, however small the boxes are.
    assert iou([0, 0, 1e-5, 1e-5], [0, 0, 1e-5, 1e-5]) == 1.0


def test_matrix_shape_and_empty_sides() -> None:
    a = [[0, 0, 10, 10], [20, 20, 30, 30]]
    b = [[0, 0, 10, 20], [25, 20, 35, 30], [100, 100, 110, 110]]
    m = box_iou(a, b)
    assert m.shape == (2, 3) and m.dtype == np.float64
    assert m.tolist() == [[0.5, 0.0, 0.0], [0.0, 50 / 150, 0.0]]
    assert box_iou(a, []).shape == (2, 0)
    assert box_iou([], b).shape == (0, 3)
    assert box_iou(np.array(a[0], dtype=np.float32), b).shape == (1, 3)  # one box, any float type


def test_scalar_matches_the_plain_formula() -> None:
    """Every value equals the float64 formula written out by hand, not just approximately."""

    def by_hand(a: list[float], b: list[float]) -> float:
        ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = ix * iy
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / union if union > 0 else 0.0

    rng = np.random.default_rng(1)
    for _ in range(2000):
        a = rng.uniform(0, 50, 2).tolist()
        a += [a[0] + rng.choice([0.0, rng.uniform(-2, 20)]), a[1] + rng.uniform(0, 20)]
        b = [v + rng.uniform(-4, 4) for v in a]
        assert iou(a, b) == by_hand(a, b)
        assert box_iou([a], [b, a])[0].tolist() == [by_hand(a, b), by_hand(a, a)]
