"""Padded fixed-size detection tensors and their one decoder, shared by the detectors whose
raw outputs are per-image box lists (Faster R-CNN, EfficientDet). Their training batches are
models/training/families/box_batches.py.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from radstream.models.outputs import Detection, ModelOutput


def pad_detections(per_image: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], k: int
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(boxes (K,4), scores (K,), labels (K,)) per image -> fixed (N,k,4), (N,k), (N,k) tensors,
    padded with score 0 so that a decoder can treat every backend's output alike."""
    # Concatenate the padding and cut at k, rather than copy min(k, len) rows: under the ONNX
    # tracer a Python length would be frozen at the traced image's box count.
    boxes = [torch.cat([b.float(), b.new_zeros(k, 4, dtype=torch.float32)])[:k] for b, _, _ in per_image]
    scores = [torch.cat([s.float(), s.new_zeros(k, dtype=torch.float32)])[:k] for _, s, _ in per_image]
    labels = [torch.cat([lab.float(), lab.new_zeros(k, dtype=torch.float32)])[:k] for _, _, lab in per_image]
    if not per_image:
        return torch.zeros(0, k, 4), torch.zeros(0, k), torch.zeros(0, k)
    return torch.stack(boxes), torch.stack(scores), torch.stack(labels)


def decode_padded(raw: Sequence[torch.Tensor], labels: Sequence[str], score_floor: float,
                  top_k: int) -> list[ModelOutput]:
    """raw = (boxes (N,K,4) tensor pixels, scores (N,K), 0-based label ids (N,K)).

    Image-level score per label = its best box (0.0 with none), as for every detector family.
    """
    boxes, scores, label_ids = (t.detach().float().cpu() for t in raw[:3])
    outputs = []
    for b, s, l in zip(boxes, scores, label_ids):
        order = torch.argsort(s, descending=True)[:top_k]
        found = [Detection(labels[int(l[j])], float(s[j]), tuple(float(v) for v in b[j]))
                 for j in order.tolist() if s[j] >= score_floor and s[j] > 0]
        best = {label: 0.0 for label in labels}
        for d in found:
            best[d.label] = max(best[d.label], d.score)
        outputs.append(ModelOutput(found, best))
    return outputs
