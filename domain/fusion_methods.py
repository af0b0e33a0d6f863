"""Which fusion a label's boxes go through: weighted boxes fusion (the default), non-maximum
weighted, or Soft-NMS, chosen per label (the rules file's `fusion:` map) or for every label
(RADSTREAM_FUSION_METHOD). Each method keeps its provenance per box."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from radstream.domain.fusion import DEFAULT_IOU_THR, FusedBox, ModelBoxes, weighted_boxes_fusion
from radstream.domain.nmw import non_maximum_weighted
from radstream.domain.soft_nms import soft_nms

WBF, NMW, SOFT_NMS = "wbf", "nmw", "soft-nms"
FUSION_METHODS = (WBF, NMW, SOFT_NMS)
DEFAULT_FUSION_METHOD = WBF


class FusionMethodError(ValueError):
    """A fusion method name that is not one of FUSION_METHODS."""


def check_method(name: str, where: str) -> str:
    """`name` if it is a known method, else a one-line error naming `where` it came from."""
    if name not in FUSION_METHODS:
        raise FusionMethodError(f"{where}: fusion method {name!r} is not one of {', '.join(FUSION_METHODS)}")
    return name


def _only(m: ModelBoxes, keep: Callable[[float, str], bool]) -> ModelBoxes:
    """`m` with only the boxes `keep(score, label)` accepts (the model and its weight kept)."""
    rows = [(b, s, label) for b, s, label in zip(m.boxes, m.scores, m.labels) if keep(s, label)]
    return ModelBoxes(m.model, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], m.weight)


def fuse_with(method: str, inputs: list[ModelBoxes], iou_thr: float = DEFAULT_IOU_THR,
              skip_box_thr: float = 0.0) -> list[FusedBox]:
    """One method over `inputs` (every label). Soft-NMS has no IoU threshold (its Gaussian decay
    weighs every overlap) and drops boxes under `skip_box_thr` before it runs."""
    if method == WBF:
        return weighted_boxes_fusion(inputs, iou_thr, skip_box_thr)
    if method == NMW:
        return non_maximum_weighted(inputs, iou_thr, skip_box_thr)
    if method == SOFT_NMS:
        return soft_nms([_only(m, lambda score, label: score >= skip_box_thr) for m in inputs])
    raise FusionMethodError(f"fusion method {method!r} is not one of {', '.join(FUSION_METHODS)}")


def fuse_by_label(inputs: list[ModelBoxes], methods: Mapping[str, str], default: str = DEFAULT_FUSION_METHOD,
                  iou_thr: float = DEFAULT_IOU_THR, skip_box_thr: float = 0.0) -> list[FusedBox]:
    """Each label's boxes through its method (`methods[label]`, else `default`); sorted by score."""
    groups: dict[str, list[str]] = {}
    for label in sorted({label for m in inputs for label in m.labels}):
        groups.setdefault(methods.get(label, default), []).append(label)
    fused: list[FusedBox] = []
    for method, labels in groups.items():
        wanted = set(labels)
        subset = [_only(m, lambda score, label: label in wanted) for m in inputs]
        fused += fuse_with(method, subset, iou_thr, skip_box_thr)
    fused.sort(key=lambda f: f.score, reverse=True)
    return fused
