import numpy as np
import pytest
import torch

from radstream.models.centernet import decode_detections
from radstream.models.training.centernet_loss import encode_targets
from radstream.domain.geometry import box_iou
from radstream.models.training.metrics import count_matches, detection_recall_precision, roc_auc
from radstream.models.nets import TinyClassifier, TinyDetector, count_parameters


def test_encode_then_decode_recovers_the_boxes() -> None:
    boxes = np.array([[30.3, 40.1, 50.7, 58.2], [150.0, 100.0, 190.0, 170.0]], dtype=np.float32)
    heat, box_target, _ = encode_targets(boxes, [0, 0], 1, size=256, stride=4)
    logits = torch.logit(torch.from_numpy(heat).clamp(1e-6, 1 - 1e-6))[None]
    found = decode_detections(logits, torch.from_numpy(box_target)[None], stride=4, top_k=10, score_floor=0.9)[0]
    assert len(found) == 2
    decoded = np.array(sorted(box for _, _, box in found))
    np.testing.assert_allclose(decoded, boxes, atol=1e-3)


def test_nets_are_small_and_shaped_right() -> None:
    classifier, detector = TinyClassifier(n_labels=2), TinyDetector(n_labels=2)
    assert count_parameters(classifier) < 1_000_000 and count_parameters(detector) < 1_000_000
    x = torch.zeros(2, 1, 256, 256)
    assert classifier(x).shape == (2, 2)
    heat, box = detector(x)
    assert heat.shape == (2, 2, 64, 64) and box.shape == (2, 4, 64, 64)


def test_auc_known_values() -> None:
    assert roc_auc(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1])) == 1.0
    assert roc_auc(np.array([0.5, 0.5]), np.array([0, 1])) == 0.5
    assert roc_auc(np.array([0.5, 0.2, 0.8]), np.array([0, 1, 1])) == 0.5
    with pytest.raises(ValueError):
        roc_auc(np.array([0.3]), np.array([1]))


def test_iou_and_greedy_matching() -> None:
    truth = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], dtype=np.float32)
    assert box_iou(truth[:1], np.array([[0, 0, 10, 20]]))[0, 0] == pytest.approx(0.5)
    preds = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [50, 50, 60, 60]], dtype=np.float32)
    assert count_matches(preds, np.array([0.9, 0.8, 0.7]), truth, 0.3) == 1  # a duplicate is a false positive
    recall, precision = detection_recall_precision([(preds, np.array([0.9, 0.8, 0.7]))], [truth], 0.3)
    assert recall == 0.5 and precision == pytest.approx(1 / 3)
