"""Train the shipped demo models on synthetic phantoms and register them.

Run `python -m radstream.models.train_demo` to rebuild models/artifacts/ and
models/registry/ (the nodule classifier and detector here, then the pixel-QC model
of models/train_qc.py). Deterministic for a given seed on CPU. NOT FOR CLINICAL USE.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .backends.torch_backend import TorchBackend
from .calibration import calibrate_model
from .demo_data import generate_phantoms, render_sets
from .evaluation import evaluate_classifier, evaluate_detector
from .manifest import ArtifactRef, ModelManifest, sha256_file
from .nets import build_net, count_parameters
from .phantoms import NODULE
from .profile import ClaheSettings, InputProfile
from .registry import default_registry_dir
from .training import train_classifier, train_detector

VERSION = "1"
N_TRAIN = 800
N_HELD_OUT = 200
CLASSIFIER_EPOCHS = 12
DETECTOR_EPOCHS = 8
ARCHITECTURE = {"width": 16}

# The classifier sees CLAHE-enhanced images (local contrast helps a global
# decision); the detector sees plain robust-scaled images, so box edges are not
# distorted by tile-wise equalisation. Each model's profile travels in its manifest.
CLASSIFIER_PROFILE = InputProfile(size=256, clahe=ClaheSettings(enabled=True, clip_limit=2.0, tile_grid=8))
DETECTOR_PROFILE = InputProfile(size=256, clahe=ClaheSettings(enabled=False))


def save_model(
    net: nn.Module, manifest_fields: dict, registry_dir: Path, artifacts_dir: Path
) -> ModelManifest:
    """Write the weights and the manifest (version VERSION, the demo architecture); read it back."""
    name = manifest_fields["name"]
    artifact = artifacts_dir / f"{name}-{VERSION}.pt"
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().clone() for k, v in net.state_dict().items()}, artifact)
    manifest = ModelManifest(
        version=VERSION,
        architecture=dict(ARCHITECTURE),
        artifact=ArtifactRef(path=os.path.relpath(artifact, registry_dir), sha256=sha256_file(artifact)),
        **manifest_fields,
    )
    path = registry_dir / f"{name}.json"
    manifest.write(path)
    return ModelManifest.read(path)


def build_demo(
    registry_dir: Path,
    seed: int = 0,
    progress: Callable[[str], None] = print,
    *,
    n_train: int = N_TRAIN,
    n_held_out: int = N_HELD_OUT,
    epochs: tuple[int, int] = (CLASSIFIER_EPOCHS, DETECTOR_EPOCHS),
) -> list[ModelManifest]:
    """Train, evaluate on a held-out phantom set, and write artifacts plus manifests.

    Artifacts go to `<registry_dir>/../artifacts/`, referenced relative to the manifests.
    The keyword-only sizes exist so tests can run the whole path in seconds.
    """
    registry_dir = Path(registry_dir).resolve()
    artifacts_dir = registry_dir.parent / "artifacts"
    torch.set_num_threads(2)
    profiles = [CLASSIFIER_PROFILE, DETECTOR_PROFILE]

    started = time.perf_counter()
    train_rng = np.random.default_rng([seed, 1])
    cls_set, det_set = render_sets(train_rng, n_train, profiles)
    held_out = generate_phantoms(np.random.default_rng([seed, 2]), n_held_out)
    progress(f"generated {n_train} training + {n_held_out} held-out phantoms in {time.perf_counter() - started:.1f}s")

    cls_profile = CLASSIFIER_PROFILE.with_stats(*cls_set.mean_std())
    torch.manual_seed(seed)
    classifier = build_net("tiny-cnn", 1, cls_profile.channels, ARCHITECTURE)
    progress(f"training demo-classifier ({count_parameters(classifier)} parameters)")
    cls_seconds = train_classifier(
        classifier, cls_set.normalised(cls_profile), cls_set.tensor_boxes, epochs[0], progress, seed=seed
    )
    del cls_set

    det_profile = DETECTOR_PROFILE.with_stats(*det_set.mean_std())
    torch.manual_seed(seed)
    detector = build_net("tiny-centernet", 1, det_profile.channels, ARCHITECTURE)
    progress(f"training demo-detector ({count_parameters(detector)} parameters)")
    det_seconds = train_detector(
        detector, det_set.normalised(det_profile), det_set.tensor_boxes, epochs[1], progress, seed=seed
    )

    common = {"not_for_clinical_use": True, "fusion_weight": 1.0}
    manifests = [
        save_model(classifier, {"name": "demo-classifier", "task": "classifier", "family": "tiny-cnn",
                                "labels": [NODULE], "input_profile": cls_profile,
                                "default_thresholds": {NODULE: 0.5}, **common},
                   registry_dir, artifacts_dir),
        save_model(detector, {"name": "demo-detector", "task": "detector", "family": "tiny-centernet",
                              "labels": [NODULE], "input_profile": det_profile,
                              "default_thresholds": {NODULE: 0.3}, **common},
                   registry_dir, artifacts_dir),
    ]
    evaluators = [evaluate_classifier, evaluate_detector]
    for i, (manifest, evaluate, seconds) in enumerate(zip(manifests, evaluators, [cls_seconds, det_seconds])):
        # Fit the temperature on separate phantoms; the operating point moves to the calibrated scale.
        path = registry_dir / f"{manifest.name}.json"
        calibrate_model(path, images=max(50, n_held_out), progress=progress)
        manifest = manifests[i] = ModelManifest.read(path)
        metrics = evaluate(TorchBackend(manifest), held_out)
        manifest.validation = {
            "data": f"synthetic phantoms, numpy SeedSequence([{seed}, 2]), never used in training",
            "n_train": n_train,
            "train_seconds": round(seconds, 1),
            **metrics,
        }
        manifest.write(registry_dir / f"{manifest.name}.json")
        progress(f"{manifest.name}: {metrics}")
    return manifests


if __name__ == "__main__":
    from .train_qc import build_qc_demo  # imports this module: the QC model reuses save_model

    build_demo(default_registry_dir())
    build_qc_demo(default_registry_dir())
