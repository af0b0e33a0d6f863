"""Faster R-CNN (torchvision): region proposals, RoIAlign and a box head, over a small backbone.

torchvision's detection heads are used as they are; only the backbone is ours, a small
convolutional network sized for a CPU demo (the production variant would put a
ResNet/MobileNet FPN here). Nodules are 4-20 px in a 256 px tensor, so the anchors are
small, on a stride-4 map, and the RPN's positive IoU is lowered to 0.5. Proposals, NMS and
RoIAlign depend on the data, so its graph is traced one image at a time: ONNX at a fixed batch of
1 (torchvision's detection models export from opset 11; ONNX Runtime runs a batch image by image),
no TensorRT and no CUDA graphs (D-032).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.ops import MultiScaleRoIAlign

from radstream.models.nets import _conv_block
from radstream.models.outputs import ModelOutput
from radstream.models.families.box_lists import decode_padded, pad_detections

DEFAULT_ARCHITECTURE: dict[str, Any] = {"width": 32, "stride": 4, "representation": 128, "anchor_sizes": [6, 12, 24]}
MAX_DETECTIONS = 50


class SmallBackbone(nn.Module):
    """One stride-`stride` feature map with `out_channels` channels, as torchvision's FasterRCNN
    expects: a stride-8 context path upsampled onto a stride-4 detail path (stride 4), or the
    context path alone (stride 8)."""

    def __init__(self, in_channels: int, width: int, stride: int = 4) -> None:
        super().__init__()
        self.stem = nn.Sequential(_conv_block(in_channels, width // 2, stride=2),
                                  _conv_block(width // 2, width, stride=2))  # stride 4
        self.context = nn.Sequential(_conv_block(width, 2 * width, stride=2),
                                     _conv_block(2 * width, 2 * width, dilation=2),
                                     _conv_block(2 * width, 2 * width, dilation=4))  # stride 8
        self.stride = stride
        self.detail = _conv_block(width, 2 * width) if stride == 4 else None
        self.out_channels = 2 * width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shallow = self.stem(x)
        deep = self.context(shallow)
        if self.detail is None:
            return deep
        return self.detail(shallow) + nn.functional.interpolate(deep, size=shallow.shape[-2:], mode="nearest")


class _PaddedDetections(nn.Module):
    """Eval-mode Faster R-CNN with its per-image dicts padded to fixed tensors."""

    def __init__(self, net: FasterRCNN) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        found = self.net(list(x))
        per_image = [(d["boxes"], d["scores"], d["labels"] - 1) for d in found]  # torchvision's 0 is background
        return pad_detections(per_image, MAX_DETECTIONS)


class FasterRcnn:
    name = "faster-rcnn"
    tasks = ("detector",)
    backends = ("torch", "onnx")
    onnx_fixed_batch = 1
    default_architecture = DEFAULT_ARCHITECTURE

    def build(self, n_labels: int, in_channels: int, size: int, architecture: dict[str, Any]) -> nn.Module:
        arch = {**DEFAULT_ARCHITECTURE, **architecture}
        anchors = AnchorGenerator(sizes=(tuple(arch["anchor_sizes"]),), aspect_ratios=((0.5, 1.0, 2.0),))
        backbone = SmallBackbone(in_channels, arch["width"], arch["stride"])
        return FasterRCNN(
            backbone,
            box_head=TwoMLPHead(backbone.out_channels * 7 * 7, arch["representation"]),
            box_predictor=FastRCNNPredictor(arch["representation"], n_labels + 1),
            # tensors arrive normalised by the input profile at their final size: no resize, no re-normalise
            min_size=size, max_size=size, image_mean=[0.0] * in_channels, image_std=[1.0] * in_channels,
            rpn_anchor_generator=anchors,
            box_roi_pool=MultiScaleRoIAlign(featmap_names=["0"], output_size=7, sampling_ratio=2),
            rpn_pre_nms_top_n_train=600, rpn_post_nms_top_n_train=200,
            rpn_pre_nms_top_n_test=300, rpn_post_nms_top_n_test=100,
            rpn_fg_iou_thresh=0.5, rpn_batch_size_per_image=128, box_batch_size_per_image=128,
            box_score_thresh=0.01, box_detections_per_img=MAX_DETECTIONS,
        )

    def raw_module(self, net: nn.Module) -> nn.Module:
        return _PaddedDetections(net).eval()

    def decode(self, raw: Sequence[torch.Tensor], labels: Sequence[str], score_floor: float,
               top_k: int) -> list[ModelOutput]:
        return decode_padded(raw, labels, score_floor, top_k)


FAMILIES = {"faster-rcnn": FasterRcnn()}
