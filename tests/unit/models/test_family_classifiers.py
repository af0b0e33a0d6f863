"""The DenseNet and EfficientNet classifier families: build, trace, decode and learn.

Tiny architectures at 64 px keep the whole file to seconds; the defaults are checked only
for their size (the weights are committed to git).
"""

import io

import numpy as np
import pytest
import torch

from radstream.models.families import count_parameters, get_family
from radstream.models.training.families import TrainingSet, train_family
from radstream.models.families.classifiers import DEFAULT_ARCHITECTURES

SIZE = 64
SMALL = {
    "densenet": {"growth_rate": 4, "block_config": [2, 2], "num_init_features": 8, "bn_size": 2},
    "efficientnet": {"channel_multiplier": 0.25, "depth_multiplier": 0.25, "num_features": 32},
}
FAMILIES = sorted(SMALL)


def _build(name: str, n_labels: int = 2, seed: int = 0, architecture: dict | None = None) -> torch.nn.Module:
    torch.manual_seed(seed)
    return get_family(name).build(n_labels, 1, SIZE, architecture or SMALL[name])


def _squares(n: int, seed: int = 0) -> TrainingSet:
    """Label 0: a bright square somewhere; label 1: a dark one. Boxes mark the bright squares."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 0.3, size=(n, 1, SIZE, SIZE)).astype(np.float32)
    targets = rng.random((n, 2)) < 0.5
    boxes = []
    for i in range(n):
        found = []
        for label, value in ((0, 2.0), (1, -2.0)):
            if targets[i, label]:
                x0, y0 = (int(v) for v in rng.integers(4, SIZE - 16, size=2))
                x[i, 0, y0 : y0 + 10, x0 : x0 + 10] = value
                if label == 0:
                    found.append([x0, y0, x0 + 10, y0 + 10])
        boxes.append(np.array(found, dtype=np.float32).reshape(-1, 4))
    return TrainingSet(x, targets.astype(np.float32), boxes=boxes)


@pytest.mark.parametrize("name", FAMILIES)
def test_family_declares_classifier_tasks_and_exportable_backends(name: str) -> None:
    family = get_family(name)
    assert family.name == name
    assert set(family.tasks) == {"classifier", "qc"}
    assert family.backends == ("torch", "onnx", "tensorrt")


@pytest.mark.parametrize("name", FAMILIES)
def test_build_is_deterministic_for_a_seed(name: str) -> None:
    a, b, c = _build(name, seed=3), _build(name, seed=3), _build(name, seed=4)
    assert a.state_dict().keys() == b.state_dict().keys()
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    assert not all(torch.equal(v, c.state_dict()[k]) for k, v in a.state_dict().items())


@pytest.mark.parametrize("name", FAMILIES)
def test_default_architecture_fits_the_committed_artifact_budget(name: str) -> None:
    net = _build(name, n_labels=5, architecture=DEFAULT_ARCHITECTURES[name])
    assert 10_000 < count_parameters(net) <= 1_500_000  # <= 6 MB of fp32 weights
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    assert buffer.tell() <= 6 * 1024 * 1024


@pytest.mark.parametrize("name", FAMILIES)
def test_raw_module_maps_one_channel_batches_to_probabilities(name: str) -> None:
    family = get_family(name)
    raw = family.raw_module(_build(name, n_labels=3))
    with torch.inference_mode():
        (probabilities,) = raw(torch.randn(5, 1, SIZE, SIZE))
    assert probabilities.shape == (5, 3)
    assert bool(((probabilities >= 0) & (probabilities <= 1)).all())


@pytest.mark.parametrize("name", FAMILIES)
def test_decode_names_each_column_by_its_label(name: str) -> None:
    raw = [torch.tensor([[0.1, 0.9], [0.7, 0.2]])]
    outputs = get_family(name).decode(raw, ["rotated", "cropped"], score_floor=0.05, top_k=10)
    assert [o.classifications for o in outputs] == [
        pytest.approx({"rotated": 0.1, "cropped": 0.9}), pytest.approx({"rotated": 0.7, "cropped": 0.2})]
    assert all(not o.detections for o in outputs)


@pytest.mark.parametrize("name", FAMILIES)
def test_raw_module_exports_to_onnx_with_a_dynamic_batch(name: str, tmp_path) -> None:
    ort = pytest.importorskip("onnxruntime")
    raw = get_family(name).raw_module(_build(name))
    path = tmp_path / f"{name}.onnx"
    torch.onnx.export(raw, torch.randn(2, 1, SIZE, SIZE), str(path), dynamo=False, opset_version=17,
                      input_names=["input"], output_names=["probabilities"],
                      dynamic_axes={"input": {0: "batch"}, "probabilities": {0: "batch"}})
    x = torch.randn(3, 1, SIZE, SIZE)
    with torch.inference_mode():
        (expected,) = raw(x)
    (got,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-5)


@pytest.mark.parametrize("name", FAMILIES)
def test_a_few_epochs_reduce_the_training_loss(name: str) -> None:
    torch.set_num_threads(2)
    data = _squares(32)
    data.boxes = []  # image-level BCE on both labels
    losses: list[float] = []
    net = _build(name)
    seconds = train_family(name, net, data, 6, lambda line: losses.append(float(line.split("loss ")[1].split()[0])))
    assert len(losses) == 6 and seconds > 0
    assert losses[-1] < 0.9 * losses[0], losses
    assert not net.training  # left in eval mode, ready to predict


def test_densenet_uses_boxes_for_dense_supervision_of_one_label() -> None:
    data = _squares(32)
    data.targets = data.targets[:, :1]
    lines: list[str] = []
    net = _build("densenet", n_labels=1)
    train_family("densenet", net, data, 4, lines.append)
    assert lines[0].startswith("classifier epoch 1/4")  # the tiny family's dense loop, not plain BCE
    losses = [float(line.split("loss ")[1].split()[0]) for line in lines]
    assert losses[-1] < losses[0], losses
    assert net.logit_map(torch.zeros(1, 1, SIZE, SIZE)).shape[-1] == SIZE // net.stride
