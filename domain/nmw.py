"""Non-maximum weighted fusion (Zhou et al., "CAD: Scale invariant framework for real-time object
detection", ICCV workshops 2017), with provenance.

The 5C shoulder-fracture ensemble (arXiv 2507.13408) found it the best of Soft-NMS, WBF and NMW.
Unlike WBF, a cluster keeps its leader's score and the box is the IoU-and-score weighted mean of
the cluster around the leader, so one confident box is not diluted by members that missed it.
Follows the reference implementation (ensemble_boxes.non_maximum_weighted) step for step, in
pixel coordinates: weights are divided by the largest, a box joins the cluster whose leader
(its first, highest box, never moved) it overlaps most above `iou_thr`.
"""

from __future__ import annotations

from radstream.domain.fusion import DEFAULT_IOU_THR, FusedBox, ModelBoxes


def _iou(a: list[float], b: list[float]) -> float:
    """The reference's IoU: 0 without overlap, else intersection over union."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(0.0, w) * max(0.0, h)
    if inter == 0:
        return 0.0
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def non_maximum_weighted(
    inputs: list[ModelBoxes], iou_thr: float = DEFAULT_IOU_THR, skip_box_thr: float = 0.0
) -> list[FusedBox]:
    """Fuse per label; returns boxes sorted by descending score (the cluster leader's weighted score)."""
    top = max((m.weight for m in inputs), default=1.0) or 1.0
    by_label: dict[str, list[tuple[float, dict]]] = {}
    for m in inputs:
        for box, score, label in zip(m.boxes, m.scores, m.labels):
            if score < skip_box_thr or (box[2] - box[0]) * (box[3] - box[1]) == 0:
                continue  # the reference skips zero-area boxes too
            source = {"model": m.model, "box": list(box), "score": score}
            by_label.setdefault(label, []).append((score * m.weight / top, source))

    fused: list[FusedBox] = []
    for label, members in by_label.items():
        members.sort(key=lambda item: item[0], reverse=True)
        clusters: list[list[tuple[float, dict]]] = []
        for member in members:
            best, best_iou = -1, iou_thr
            for i, cluster in enumerate(clusters):
                value = _iou(cluster[0][1]["box"], member[1]["box"])
                if value > best_iou:
                    best, best_iou = i, value
            if best == -1:
                clusters.append([member])
            else:
                clusters[best].append(member)
        for cluster in clusters:
            leader = cluster[0][1]["box"]
            weights = [score * _iou(source["box"], leader) for score, source in cluster]
            total = sum(weights)
            box = [sum(w * source["box"][k] for w, (_, source) in zip(weights, cluster)) / total for k in range(4)]
            fused.append(FusedBox(label, cluster[0][0], box, [source for _, source in cluster]))
    fused.sort(key=lambda f: f.score, reverse=True)
    return fused
