"""Weighted boxes fusion (Solovyev, Wang and Gabruseva, 2019), conf_type "avg", with provenance.

Follows the reference implementation (ensemble_boxes.weighted_boxes_fusion) step
for step, in pixel coordinates, and additionally records which model contributed
which original box to every fused box.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The reference's default is 0.55. Nodules are 4-20 px, where a few pixels of disagreement
# between detectors drop the IoU below 0.55 and split one finding into several boxes; 0.4,
# chosen on the demo's validation phantoms, lifts the ensemble's AP (docs/benchmarks.md).
# RADSTREAM_FUSION_IOU sets it per deployment.
DEFAULT_IOU_THR = 0.4


@dataclass
class ModelBoxes:
    model: str
    boxes: list[list[float]]
    scores: list[float]
    labels: list[str]
    weight: float = 1.0


@dataclass
class FusedBox:
    label: str
    score: float
    box: list[float]
    sources: list[dict] = field(default_factory=list)  # {"model", "box", "score"}


@dataclass
class _Member:
    weighted_score: float  # score * model weight
    weight: float
    model: str
    score: float
    box: list[float]


def _weighted_box(members: list[_Member]) -> tuple[list[float], float]:
    total = sum(m.weighted_score for m in members)
    box = [sum(m.weighted_score * m.box[k] for m in members) / total for k in range(4)]
    return box, total / len(members)


def weighted_boxes_fusion(
    inputs: list[ModelBoxes], iou_thr: float = DEFAULT_IOU_THR, skip_box_thr: float = 0.0
) -> list[FusedBox]:
    """Fuse per label; returns boxes sorted by descending fused score."""
    # Here, not at the top: `radstream fuse` imports this module for DEFAULT_IOU_THR while it
    # builds the CLI's parser, and numpy would double every command's start-up time.
    from radstream.domain.geometry import box_iou

    weight_sum = sum(m.weight for m in inputs)
    by_label: dict[str, list[_Member]] = {}
    for m in inputs:
        for box, score, label in zip(m.boxes, m.scores, m.labels):
            if score < skip_box_thr:
                continue
            by_label.setdefault(label, []).append(_Member(score * m.weight, m.weight, m.model, score, list(box)))

    fused: list[FusedBox] = []
    for label, members in by_label.items():
        members.sort(key=lambda b: b.weighted_score, reverse=True)  # stable, like argsort[::-1] on ties? see tests
        clusters: list[list[_Member]] = []
        cluster_boxes: list[list[float]] = []
        for member in members:
            best, best_iou = -1, iou_thr
            overlaps = box_iou([member.box], cluster_boxes)[0].tolist() if cluster_boxes else []
            for i, value in enumerate(overlaps):
                if value > best_iou:
                    best, best_iou = i, value
            if best == -1:
                clusters.append([member])
                cluster_boxes.append(list(member.box))
            else:
                clusters[best].append(member)
                cluster_boxes[best], _ = _weighted_box(clusters[best])
        for cluster, cbox in zip(clusters, cluster_boxes):
            _, mean_score = _weighted_box(cluster)
            score = mean_score * min(len(inputs), len(cluster)) / weight_sum
            sources = [{"model": m.model, "box": m.box, "score": m.score} for m in cluster]
            fused.append(FusedBox(label, score, cbox, sources))
    fused.sort(key=lambda f: f.score, reverse=True)
    return fused
