"""What a model backend returns, independent of the framework that produced it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Detection:
    """One finding; `box` is x1, y1, x2, y2 in TENSOR pixels (map back with Letterbox)."""

    label: str
    score: float
    box: Box


@dataclass
class ModelOutput:
    """One image's results: detections and/or image-level label probabilities."""

    detections: list[Detection] = field(default_factory=list)
    classifications: dict[str, float] = field(default_factory=dict)

    def thresholded(self, thresholds: Mapping[str, float]) -> ModelOutput:
        """Keep only detections at or above their label's threshold (labels without one are kept)."""
        kept = [d for d in self.detections if d.score >= thresholds.get(d.label, 0.0)]
        return ModelOutput(detections=kept, classifications=dict(self.classifications))
