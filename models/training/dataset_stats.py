"""A data set's own mean and std under a model's input profile (everything but the final
normalisation), so that the manifest normalises with the statistics of the data the model
sees rather than ImageNet's. Sums run on the GPU when there is one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from radstream.models.profile import InputProfile, prepare_unit_image


def dataset_stats(images: list[np.ndarray], profile: InputProfile, device: str = "auto") -> tuple[float, float, int]:
    """(mean, std, pixels) over every image after the profile's scaling, CLAHE and resize."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    total = torch.zeros((), dtype=torch.float64, device=device)
    squares = torch.zeros((), dtype=torch.float64, device=device)
    count = 0
    for image in images:
        unit, _ = prepare_unit_image(image, profile)
        t = torch.from_numpy(np.ascontiguousarray(unit, dtype=np.float64)).to(device)
        total += t.sum()
        squares += (t * t).sum()
        count += t.numel()
    if count == 0:
        raise ValueError("no images to compute statistics on")
    mean = float(total / count)
    return mean, float(np.sqrt(max(float(squares / count) - mean * mean, 0.0))), count


def dicom_images(folder: Path, progress: Callable[[str], None] = print) -> list[np.ndarray]:
    """Every decodable frame of every DICOM file below `folder` (the decode stage's own code)."""
    from radstream.domain.dicom.decode import decode_instance
    from radstream.domain.errors import StageError

    images = []
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file() and not p.name.endswith(".json")):
        try:
            images += decode_instance(path.read_bytes()).frames
        except StageError as exc:
            progress(f"skipped {path.name}: {exc.reason}")
    return images
