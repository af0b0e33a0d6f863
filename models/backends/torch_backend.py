"""Runs a manifest's PyTorch weights on preprocessed batches, on the CPU or on CUDA.

On CUDA: autocast to FP16 (default) or BF16, or FP32; channels_last; and, when asked and
the family's graph has static shapes, CUDA graphs. A graph is captured per batch bucket (the
next power of two), so the dynamic batcher's 1..max_batch sizes need at most log2(max_batch)+1
captures; the batch is padded to its bucket and the padding dropped before decoding. The
graph code has NOT run on a GPU yet (none was lent to these sessions), so it is opt-in
(`RADSTREAM_CUDA_GRAPHS=1`) and any failure to capture falls back to eager execution.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence

import numpy as np
import torch

from radstream.models.families import family_of, onnx_fixed_batch
from radstream.models.manifest import ModelLoadError, ModelManifest, read_weights
from radstream.models.outputs import ModelOutput

PRECISIONS = ("fp16", "bf16", "fp32")
log = logging.getLogger(__name__)


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"torch precision {precision!r}: expected one of {', '.join(PRECISIONS)}")


def autocast_dtype(precision: str, bf16_supported: bool) -> torch.dtype | None:
    """The CUDA autocast dtype for a precision setting; None runs in FP32.

    BF16 needs compute capability 8.0 (Ampere) or newer; on older GPUs it falls back to FP16,
    which every CUDA GPU this code targets runs, with a warning rather than a refusal."""
    check_precision(precision)
    if precision == "bf16" and not bf16_supported:
        log.warning("BF16 is not supported on this GPU; running FP16 instead")
        return torch.float16
    return {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": None}[precision]


def batch_bucket(n: int) -> int:
    """The captured batch size that serves a batch of n: the next power of two."""
    if n < 1:
        raise ValueError(f"batch size must be >= 1, got {n}")
    return 1 << (n - 1).bit_length()


class _CudaGraph:
    """One captured forward pass at a fixed batch size, with its static input and outputs."""

    def __init__(self, raw: torch.nn.Module, shape: tuple[int, ...], device: torch.device,
                 dtype: torch.dtype | None) -> None:
        self.input = torch.zeros(shape, device=device).contiguous(memory_format=torch.channels_last)
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side), torch.inference_mode():  # warm-up: cuDNN picks its kernels
            for _ in range(3):
                self._forward(raw, dtype)
        torch.cuda.current_stream(device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(self.graph):
            self.outputs = self._forward(raw, dtype)

    def _forward(self, raw: torch.nn.Module, dtype: torch.dtype | None) -> Sequence[torch.Tensor]:
        if dtype is None:
            return raw(self.input)
        with torch.autocast("cuda", dtype=dtype, cache_enabled=False):  # graphs need the cache off
            return raw(self.input)

    def run(self, x: torch.Tensor) -> list[torch.Tensor]:
        n = x.shape[0]
        self.input[:n].copy_(x)
        self.input[n:].zero_()
        self.graph.replay()
        return [t[:n].float().cpu() for t in self.outputs]


class TorchBackend:
    """One loaded model. `predict` takes tensors made by `apply_profile` with the manifest's profile.

    Detector output keeps every box at or above `score_floor` (not the manifest's
    default thresholds) so that fusion and the threshold stage decide what counts.
    On CUDA the graph runs under `precision` autocast with channels_last, and through CUDA
    graphs when `cuda_graphs` is set and the family's graph has static shapes (see above).
    """

    def __init__(
        self,
        manifest: ModelManifest,
        device: str = "cpu",
        num_threads: int | None = None,
        score_floor: float = 0.05,
        top_k: int = 50,
        net: torch.nn.Module | None = None,
        precision: str = "fp16",
        cuda_graphs: bool = False,
    ) -> None:
        """`net`: a trained network already in memory (the ablation harness, build-demo's
        held-out check); the manifest's artifact is then not read."""
        check_precision(precision)  # on the CPU too: a typo must not wait for a GPU to surface
        if num_threads is not None:
            torch.set_num_threads(num_threads)
        self.manifest = manifest
        self.device = torch.device(device)
        self.score_floor = score_floor
        self.top_k = top_k
        self.family = family_of(manifest)
        if net is None:
            net = self._load(manifest)
        self.net = net.eval()
        self.raw = self.family.raw_module(net).to(self.device).eval()
        self.autocast = None
        # families with a dynamic-batch ONNX graph have static shapes (onnx_fixed_batch); Faster R-CNN does not
        self.cuda_graphs = (cuda_graphs and self.device.type == "cuda" and "onnx" in self.family.backends
                            and onnx_fixed_batch(self.family) is None)
        self._graphs: dict[int, _CudaGraph] = {}
        if self.device.type == "cuda":
            self.raw = self.raw.to(memory_format=torch.channels_last)
            self.autocast = autocast_dtype(precision, torch.cuda.is_bf16_supported())

    def _load(self, manifest: ModelManifest) -> torch.nn.Module:
        weights = read_weights(manifest)  # sha256-verified, decrypted in memory: no plaintext on disk
        profile = manifest.input_profile
        path = manifest.artifact_path()
        try:
            net = self.family.build(len(manifest.labels), profile.channels, profile.size, manifest.architecture)
            state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
            net.load_state_dict(state)
        except (ValueError, RuntimeError, TypeError, OSError, KeyError) as exc:
            raise ModelLoadError(f"{manifest.key}: cannot load weights from {path}: {exc}") from None
        log.debug(
            "loaded %s v%s (family %s) from %s (sha256 %s, %s) on torch-%s", manifest.name, manifest.version,
            manifest.family, path, manifest.artifact.sha256,
            "encrypted" if manifest.artifact.encrypted else "plaintext", self.device.type)
        return net

    @property
    def name(self) -> str:
        return f"torch-{self.device.type}"

    @property
    def detail(self) -> str:
        """How it runs, for the startup log: precision and whether CUDA graphs are in use."""
        if self.device.type != "cuda":
            return "fp32"
        dtype = {torch.float16: "fp16", torch.bfloat16: "bf16", None: "fp32"}[self.autocast]
        return f"{dtype}, channels_last{', CUDA graphs' if self.cuda_graphs else ''}"

    def _run_cuda(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = x.to(memory_format=torch.channels_last)
        if self.cuda_graphs:
            bucket = batch_bucket(x.shape[0])
            try:
                if bucket not in self._graphs:
                    self._graphs[bucket] = _CudaGraph(self.raw, (bucket, *x.shape[1:]), self.device, self.autocast)
                return self._graphs[bucket].run(x)
            except RuntimeError as exc:  # capture failed (an op that cannot be captured, memory): run eager
                log.warning("model %s: CUDA graph for batch %d failed (%s); running eagerly from now on",
                            self.manifest.name, bucket, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                self.cuda_graphs = False
                self._graphs.clear()
        if self.autocast is None:
            return [t.float().cpu() for t in self.raw(x)]
        with torch.autocast("cuda", dtype=self.autocast):
            return [t.float().cpu() for t in self.raw(x)]

    def predict(self, batch: np.ndarray) -> list[ModelOutput]:
        """One ModelOutput per image of an (N, C, S, S) float32 batch."""
        self.manifest.check_batch(batch.shape)
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
        with torch.inference_mode():
            raw = self._run_cuda(x) if self.device.type == "cuda" else [t.float().cpu() for t in self.raw(x)]
        return self.family.decode(raw, self.manifest.labels, self.score_floor, self.top_k)
