"""ONNX Runtime: the exported raw graph run by the CPU or CUDA execution provider, decoded like torch's.

The session is built from bytes in memory: the graph is exported from the weights
`read_weights` decrypted in memory (models/backends/export.py), and optimized by ONNX Runtime
into a memory file (memfd), never a path on disk. That optimized graph is cached, sealed like
the artifact (models/backends/graph_cache.py), so the next start skips both torch's export and
ONNX Runtime's graph optimization. Decoding is the family's own (`family.decode`), exactly as
under torch and TensorRT.

Threads: `threads` (RADSTREAM_COMPUTE_THREADS; 0 is ONNX Runtime's default, one per physical
core) for the intra-op pool, no inter-op pool, and no spinning: several infer processes share
the cores, and a pool that spins between batches takes them from its neighbours.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from radstream.models.backends.export import DEFAULT_OPSET, export_graph, output_index, run_graph
from radstream.models.backends.graph_cache import graph_key, read_graph, write_graph
from radstream.models.families import family_of
from radstream.models.manifest import ModelLoadError, ModelManifest
from radstream.models.outputs import ModelOutput

log = logging.getLogger(__name__)

CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"


def ort_providers(device: str) -> list[Any]:
    """The provider list for a torch-style device string: CUDA (with the CPU provider behind it
    for the few nodes CUDA has no kernel for) or the CPU alone."""
    if device == "cpu":
        return [CPU_PROVIDER]
    index = int(device.partition(":")[2] or 0)
    return [(CUDA_PROVIDER, {"device_id": index}), CPU_PROVIDER]


def session_options(threads: int, level: str = "all") -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: a warning per unused initializer is not news
    options.intra_op_num_threads = max(0, threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.graph_optimization_level = {"extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                                        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[level]
    return options


def optimize_in_memory(graph: bytes, providers: list[Any]) -> bytes:
    """ONNX Runtime's offline optimization of `graph` (fusions, constant folding: the
    provider-independent "extended" level; layout changes are left to each load), written to an
    anonymous memory file, never to a path on disk."""
    import onnxruntime as ort

    if not hasattr(os, "memfd_create") or not os.path.isdir("/proc/self/fd"):  # not Linux: no memory file
        return graph  # unoptimized; each load optimizes it anyway, only slower
    fd = os.memfd_create("radstream-graph", 0)
    try:
        options = session_options(1, "extended")
        options.optimized_model_filepath = f"/proc/self/fd/{fd}"
        ort.InferenceSession(graph, options, providers=providers)
        os.lseek(fd, 0, os.SEEK_SET)
        return b"".join(iter(lambda: os.read(fd, 1 << 20), b""))
    finally:
        os.close(fd)


class OnnxRuntimeBackend:
    """One ONNX Runtime session for one model; `predict` as TorchBackend's.

    `graph`: an exported graph already in memory (tests, `models compile`); else it comes from
    the cache in `cache_dir` or is exported from the manifest's weights and cached there.
    """

    def __init__(self, manifest: ModelManifest, device: str = "cpu", threads: int = 0,
                 cache_dir: Path | None = None, score_floor: float = 0.05, top_k: int = 50,
                 graph: bytes | None = None, opset: int = DEFAULT_OPSET) -> None:
        import onnxruntime as ort

        self.manifest = manifest
        self.device = torch.device(device)
        self.threads = threads
        self.score_floor = score_floor
        self.top_k = top_k
        self.family = family_of(manifest)
        providers = ort_providers(device)
        if self.device.type == "cuda" and CUDA_PROVIDER not in ort.get_available_providers():
            raise ModelLoadError(f"{manifest.key}: this onnxruntime has no CUDA execution provider "
                                 "(install onnxruntime-gpu)")
        self.cache_hit = False
        started = time.perf_counter()
        if graph is None:
            graph = self._cached_graph(cache_dir, opset, ort.__version__, providers)
        try:
            self.session = ort.InferenceSession(graph, session_options(threads), providers=providers)
        except Exception as exc:  # ONNX Runtime raises its own classes (Fail, InvalidGraph, ...)
            raise ModelLoadError(f"{manifest.key}: ONNX Runtime cannot load the graph: "
                                 f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        if self.device.type == "cuda" and CUDA_PROVIDER not in self.session.get_providers():
            raise ModelLoadError(f"{manifest.key}: ONNX Runtime could not start its CUDA provider on {device}")
        self.output_names = sorted((o.name for o in self.session.get_outputs()), key=output_index)
        self.load_s = time.perf_counter() - started
        log.debug("loaded %s on onnxruntime-%s in %.2f s (graph %s)", manifest.key, self.device.type, self.load_s,
                  "from the cache" if self.cache_hit else "exported")

    def _cached_graph(self, cache_dir: Path | None, opset: int, ort_version: str, providers: list[Any]) -> bytes:
        key = graph_key(self.manifest, opset, ort_version, self.device.type)
        if cache_dir is not None:
            cached = read_graph(cache_dir, self.manifest, key)
            if cached is not None:
                self.cache_hit = True
                return cached
        exported = export_graph(self.manifest, opset)
        try:
            graph = optimize_in_memory(exported, providers)
        except Exception as exc:  # ONNX Runtime's own exception classes: a load error, so auto falls back
            raise ModelLoadError(f"{self.manifest.key}: ONNX Runtime cannot optimize the graph: "
                                 f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        if cache_dir is not None:
            write_graph(cache_dir, self.manifest, key, graph)
        return graph

    @property
    def name(self) -> str:
        return f"onnxruntime-{self.device.type}"

    @property
    def detail(self) -> str:
        """How it runs, for the startup log."""
        threads = "default threads" if self.threads <= 0 else f"{self.threads} thread{'s' if self.threads > 1 else ''}"
        return f"fp32, {threads}, graph {'cached' if self.cache_hit else 'exported'}"

    def predict(self, batch: np.ndarray) -> list[ModelOutput]:
        """One ModelOutput per image of an (N, C, S, S) float32 batch."""
        self.manifest.check_batch(batch.shape)
        outputs = run_graph(self.session, self.output_names, np.ascontiguousarray(batch, dtype=np.float32))
        raw = [torch.from_numpy(np.asarray(o)) for o in outputs]
        return self.family.decode(raw, self.manifest.labels, self.score_floor, self.top_k)
