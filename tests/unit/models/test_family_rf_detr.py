import io
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch

from radstream.models.families import count_parameters, get_family
from radstream.models.families.rf_detr import DEFAULT_ARCHITECTURE
from radstream.models.training.families import TrainingSet, train_family
from radstream.models.training.families.rf_detr import _targets

# A few-thousand-parameter RF-DETR: same parts, sizes small enough for a unit test.
TINY = {"vit_width": 32, "vit_depth": 2, "vit_heads": 2, "vit_mlp_ratio": 2, "feature_every": 1, "patch_size": 8,
        "num_windows": 2, "projector_scale": "P4", "hidden_dim": 32, "dim_feedforward": 64, "dec_layers": 2,
        "sa_nheads": 2, "ca_nheads": 2, "dec_n_points": 2, "num_queries": 6, "group_detr": 2}
SIZE = 64


@pytest.fixture(scope="module")
def family():
    return get_family("rf-detr")


@pytest.fixture
def one_thread():
    """Many tiny ops: one thread is several times faster than two on a shared, busy CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _build(family, arch=TINY, size=SIZE, seed=0):
    torch.manual_seed(seed)
    return family.build(1, 1, size, arch)


def test_build_is_deterministic_and_default_fits_in_git(family) -> None:
    a, b, c = _build(family), _build(family), _build(family, seed=1)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    default = _build(family, DEFAULT_ARCHITECTURE, 256)
    assert 500_000 < count_parameters(default) < 3_000_000
    buffer = io.BytesIO()
    torch.save(default.state_dict(), buffer)
    assert buffer.tell() < 12_000_000


def test_size_must_fit_the_windows(family) -> None:
    with pytest.raises(ValueError, match="multiple of"):
        family.build(1, 1, 72, TINY)  # patch 8 * 2 windows = 16 does not divide 72


def test_raw_module_shapes_and_the_served_net_is_left_alone(family) -> None:
    net = _build(family).eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    raw = family.raw_module(net)
    with torch.no_grad():
        logits, boxes = raw(torch.randn(2, 1, SIZE, SIZE))
    assert logits.shape == (2, TINY["num_queries"], 1) and boxes.shape == (2, TINY["num_queries"], 4)
    assert float(boxes.min()) >= 0.0 and float(boxes.max()) <= 2 * SIZE  # pixels, not normalised
    assert not net._export  # the export switch happened on a copy
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_decode_top_k_floor_and_pixel_boxes(family) -> None:
    # 1 image, 3 queries, 2 labels; boxes cx, cy, w, h in tensor pixels
    logits = torch.logit(torch.tensor([[[0.9, 0.1], [0.2, 0.7], [0.05, 0.3]]]))
    boxes = torch.tensor([[[50.0, 60.0, 20.0, 10.0], [100.0, 100.0, 40.0, 40.0], [10.0, 10.0, 4.0, 4.0]]])
    [out] = family.decode([logits, boxes], ["a", "b"], score_floor=0.25, top_k=10)
    found = [(d.label, round(d.score, 4), d.box) for d in out.detections]
    assert found == [("a", 0.9, pytest.approx((40.0, 55.0, 60.0, 65.0))),
                     ("b", 0.7, pytest.approx((80.0, 80.0, 120.0, 120.0))),
                     ("b", 0.3, pytest.approx((8.0, 8.0, 12.0, 12.0)))]
    assert out.classifications == pytest.approx({"a": 0.9, "b": 0.7})  # best kept detection per label
    [top2] = family.decode([logits, boxes], ["a", "b"], score_floor=0.0, top_k=2)
    assert [d.score for d in top2.detections] == pytest.approx([0.9, 0.7])
    [none] = family.decode([logits, boxes], ["a", "b"], score_floor=0.95, top_k=10)
    assert none.detections == [] and none.classifications == {"a": 0.0, "b": 0.0}


def test_flipped_targets_mirror_the_boxes() -> None:
    boxes = [np.array([[8.0, 16.0, 24.0, 48.0]], dtype=np.float32)] * 2
    labels = [np.zeros(1, dtype=np.int64)] * 2
    plain, flipped = _targets(boxes, labels, SIZE, torch.tensor([False, True]))
    assert plain["boxes"][0].tolist() == pytest.approx([0.25, 0.5, 0.25, 0.5])
    assert flipped["boxes"][0].tolist() == pytest.approx([0.75, 0.5, 0.25, 0.5])
    assert flipped["labels"].tolist() == [0]


def test_a_few_epochs_lower_the_loss(family, one_thread) -> None:
    """At the family's default rate (4e-4, the one that learns on phantoms; D-019). Slow to
    start from scratch: 12 epochs of 2 steps, where the loss is flat for the first 8 or so."""
    rng = np.random.default_rng(0)
    x = rng.normal(0.0, 0.3, size=(8, 1, SIZE, SIZE)).astype(np.float32)
    boxes = []
    for i in range(8):  # one bright square per image, somewhere different
        x0, y0 = 8 + 5 * i, 40 - 4 * i
        x[i, 0, y0 : y0 + 12, x0 : x0 + 12] += 2.0
        boxes.append(np.array([[x0, y0, x0 + 12, y0 + 12]], dtype=np.float32))
    data = TrainingSet(x=x, targets=np.ones((8, 1), np.float32), boxes=boxes,
                       box_labels=[np.zeros(1, dtype=np.int64)] * 8)
    lines: list[str] = []
    net = _build(family)
    seconds = train_family("rf-detr", net, data, epochs=12, progress=lines.append, seed=0)
    losses = [float(line.split("loss ")[1].split()[0]) for line in lines]
    assert len(losses) == 12 and seconds > 0
    assert losses[-1] < 0.9 * losses[0], losses
    assert not net.training
