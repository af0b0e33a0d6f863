"""TensorRT 10: build an engine from the exported ONNX graph, and run it like TorchBackend.

`tensorrt` is imported inside functions, so this module imports (and `profile_shapes` is
tested) on machines without it. I/O buffers are torch CUDA tensors: no pycuda or
cuda-python dependency, and the stream is torch's, so allocations and execution share it.
Decoding is the family's own (`family.decode`), exactly as under torch.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from radstream.models.backends.export import INPUT_NAME, output_index
from radstream.models.families import family_of
from radstream.models.manifest import ModelLoadError, ModelManifest
from radstream.models.outputs import ModelOutput

log = logging.getLogger(__name__)

Shape = tuple[int, int, int, int]
WORKSPACE_BYTES = 4 << 30


class EngineBuildError(ModelLoadError):
    """TensorRT could not parse the ONNX graph or build an engine from it."""


def batch_profile(channels: int, size: int, max_batch: int) -> tuple[Shape, Shape, Shape]:
    """(min, opt, max) input shapes: batch 1, half the max (TensorRT tunes kernels for opt), the max."""
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    return ((1, channels, size, size), (max(1, max_batch // 2), channels, size, size),
            (max_batch, channels, size, size))


def profile_shapes(manifest: ModelManifest, max_batch: int) -> tuple[Shape, Shape, Shape]:
    profile = manifest.input_profile
    return batch_profile(profile.channels, profile.size, max_batch)


def _logger():
    import tensorrt as trt

    return trt.Logger(trt.Logger.WARNING)


def _write_atomically(path: Path, data) -> None:
    """`data`: bytes or a buffer (TensorRT's IHostMemory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def build_engine(onnx_path: Path, engine_path: Path, max_batch: int, fp16: bool = True,
                 timing_cache_path: Path | None = None) -> Path:
    """Parse the ONNX graph, build a serialized engine for batches 1..max_batch, write it.

    The timing cache (per GPU architecture and TensorRT version, engine_cache.py) is loaded
    before and saved after the build, so rebuilding or building a sibling model skips most
    of the kernel timing.
    """
    import tensorrt as trt

    logger = _logger()
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineBuildError(f"{onnx_path}: TensorRT cannot parse the ONNX graph: {errors}")
    dims = tuple(network.get_input(0).shape)  # (-1, C, S, S)
    if len(dims) != 4 or dims[2] != dims[3]:
        raise EngineBuildError(f"{onnx_path}: expected an (N, C, S, S) input, got {dims}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    profile.set_shape(INPUT_NAME, *batch_profile(dims[1], dims[2], max_batch))
    config.add_optimization_profile(profile)
    if timing_cache_path is not None:
        cached = timing_cache_path.read_bytes() if timing_cache_path.is_file() else b""
        if not config.set_timing_cache(config.create_timing_cache(cached), ignore_mismatch=False):
            log.warning("timing cache %s is from another GPU or TensorRT; starting a fresh one", timing_cache_path)
            config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(f"{onnx_path}: TensorRT failed to build an engine (see its log above)")
    _write_atomically(Path(engine_path), serialized)
    if timing_cache_path is not None:
        _write_atomically(timing_cache_path, config.get_timing_cache().serialize())
    return Path(engine_path)


def _torch_dtype(trt_dtype) -> torch.dtype:
    import tensorrt as trt

    table = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16, trt.DataType.INT32: torch.int32,
             trt.DataType.INT64: torch.int64, trt.DataType.BOOL: torch.bool, trt.DataType.INT8: torch.int8}
    return table[trt_dtype]


class TensorRTBackend:
    """One deserialized engine on one GPU; `predict` as TorchBackend's.

    Batches above the engine's max batch run in chunks of it, so the infer stage's own
    batching never has to know the engine's limit.
    """

    def __init__(self, manifest: ModelManifest, engine_path: Path, device: str = "cuda",
                 score_floor: float = 0.05, top_k: int = 50) -> None:
        import tensorrt as trt

        self.manifest = manifest
        self.engine_path = Path(engine_path)
        self.device = torch.device(device)
        if self.device.type != "cuda":
            raise ModelLoadError(f"{manifest.key}: TensorRT runs on CUDA only, not {device}")
        self.score_floor = score_floor
        self.top_k = top_k
        self.family = family_of(manifest)
        torch.cuda.init()  # TensorRT uses the current CUDA context: make it torch's
        with torch.cuda.device(self.device):
            self._runtime = trt.Runtime(_logger())
            self.engine = self._runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
            if self.engine is None:
                raise ModelLoadError(f"{manifest.key}: cannot deserialize TensorRT engine {self.engine_path}")
            self.context = self.engine.create_execution_context()  # allocates the activation memory
            if self.context is None:
                raise ModelLoadError(f"{manifest.key}: no execution context for {self.engine_path} (GPU memory?)")
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.output_names = sorted(outputs, key=output_index)
        self.max_batch = int(self.engine.get_tensor_profile_shape(INPUT_NAME, 0)[2][0])
        log.debug("loaded %s TensorRT engine %s (max batch %d)", manifest.key, self.engine_path, self.max_batch)

    @property
    def name(self) -> str:
        return "tensorrt"

    def predict(self, batch: np.ndarray) -> list[ModelOutput]:
        """One ModelOutput per image of an (N, C, S, S) float32 batch."""
        self.manifest.check_batch(batch.shape)
        chunks = [self._run(batch[i:i + self.max_batch]) for i in range(0, len(batch), self.max_batch)]
        raw = [torch.cat(parts) for parts in zip(*chunks)]
        return self.family.decode(raw, self.manifest.labels, self.score_floor, self.top_k)

    def _run(self, batch: np.ndarray) -> list[torch.Tensor]:
        """Raw outputs on the host, in `raw_module`'s order."""
        with torch.cuda.device(self.device):
            stream = torch.cuda.current_stream(self.device)
            x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
            if not self.context.set_input_shape(INPUT_NAME, tuple(x.shape)):
                raise ValueError(f"{self.manifest.key}: engine rejects input shape {tuple(x.shape)}")
            self.context.set_tensor_address(INPUT_NAME, x.data_ptr())
            outputs = []
            for name in self.output_names:
                shape = tuple(self.context.get_tensor_shape(name))
                out = torch.empty(shape, dtype=_torch_dtype(self.engine.get_tensor_dtype(name)), device=self.device)
                self.context.set_tensor_address(name, out.data_ptr())
                outputs.append(out)
            if not self.context.execute_async_v3(stream.cuda_stream):
                raise RuntimeError(f"{self.manifest.key}: TensorRT execution failed")
            stream.synchronize()
            return [t.float().cpu() for t in outputs]


def build_cached_engine(manifest: ModelManifest, onnx_path: Path, cache_dir: Path, max_batch: int,
                        compute_capability: str, tensorrt_version: str, fp16: bool = True) -> Path:
    """Build `manifest`'s engine into the cache under its key (engine_cache.py), reusing the
    shared timing cache; what `radstream models compile` runs for each model."""
    from radstream.models.backends.engine_cache import engine_key, engine_path, timing_cache_path

    key = engine_key(manifest, compute_capability, tensorrt_version, "fp16" if fp16 else "fp32", max_batch)
    return build_engine(onnx_path, engine_path(cache_dir, key), max_batch, fp16=fp16,
                        timing_cache_path=timing_cache_path(cache_dir, compute_capability, tensorrt_version))
