"""`radstream fuse`: the fuse stage's fusion (WBF, NMW or Soft-NMS) on JSON lines, for offline re-fusion.

Input, one object per line: {"image", "model", "boxes": [[x1,y1,x2,y2],...], "scores", "labels"}.
Output, one object per image: {"image", "boxes", "scores", "labels", "sources"}.
"""

from __future__ import annotations

import argparse
import json
import sys

from radstream.domain.fusion import DEFAULT_IOU_THR
from radstream.domain.fusion_methods import DEFAULT_FUSION_METHOD, FUSION_METHODS
from radstream.services.commands.errors import EXIT_USAGE, CliError


def _weights(text: str | None) -> dict[str, float]:

    out: dict[str, float] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, _, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise CliError(f"bad --weights entry {item!r}: expected model=weight", EXIT_USAGE) from None
    return out


def _fuse(args: argparse.Namespace) -> int:
    from radstream.domain.fusion import ModelBoxes
    from radstream.domain.fusion_methods import fuse_with

    weights = _weights(args.weights)
    images: dict[str, list[ModelBoxes]] = {}
    for n, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            boxes = [[float(v) for v in b] for b in row["boxes"]]
            scores = [float(s) for s in row["scores"]]
            labels = [str(label) for label in row["labels"]]
            if not len(boxes) == len(scores) == len(labels) or any(len(b) != 4 for b in boxes):
                raise ValueError("boxes, scores and labels must have equal lengths and 4 coordinates per box")
            entry = ModelBoxes(str(row["model"]), boxes, scores, labels, weights.get(str(row["model"]), 1.0))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise CliError(f"stdin line {n}: {type(exc).__name__}: {exc}") from None
        images.setdefault(str(row["image"]), []).append(entry)
    for image, inputs in images.items():
        fused = fuse_with(args.method, inputs, iou_thr=args.iou, skip_box_thr=args.skip)
        print(json.dumps({"image": image, "boxes": [f.box for f in fused], "scores": [f.score for f in fused],
                          "labels": [f.label for f in fused], "sources": [f.sources for f in fused]}))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("fuse", help="fuse detections.jsonl on stdin (WBF, NMW or Soft-NMS; offline re-fusion)")
    sp.add_argument("--method", choices=FUSION_METHODS, default=DEFAULT_FUSION_METHOD,
                    help=f"fusion method (default {DEFAULT_FUSION_METHOD}, as the fuse stage by default)")
    sp.add_argument("--iou", type=float, default=DEFAULT_IOU_THR,
                    help=f"WBF, NMW: IoU above which boxes join a cluster (default {DEFAULT_IOU_THR}, as the fuse stage)")
    sp.add_argument("--skip", type=float, default=0.0, help="drop boxes scoring under this first (default 0)")
    sp.add_argument("--weights", help="model weights, e.g. det_a=2,det_b=1 (default 1 each)")
    sp.set_defaults(func=_fuse)
