"""Where compiled TensorRT engines live and what they are keyed by.

An engine is only valid for the GPU architecture, the TensorRT version, the exact model
(weights, profile, labels: the manifest's `content_hash`), the precision and the largest
batch it was built for; all five are in its file name, so a changed model or an upgraded
driver stack simply misses the cache instead of loading a stale engine. Pure functions on
paths: testable without TensorRT or a GPU. The folder is `Config.engine_cache`
(`RADSTREAM_ENGINE_CACHE`, default ~/.cache/radstream/engines).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from radstream.models.manifest import ModelManifest

PRECISIONS = ("fp16", "fp32")
_SUFFIX = ".engine"
_BATCH_RE = re.compile(r"\.b(\d+)\.engine$")


def compute_capability_tag(major: int, minor: int) -> str:
    """(9, 0) -> "sm90", as CUDA names architectures."""
    return f"sm{major}{minor}"


@dataclass(frozen=True)
class EngineKey:
    model: str  # the manifest key, name-version: for a human reading the folder
    content_hash: str
    compute_capability: str  # "sm90"
    tensorrt_version: str
    precision: str  # "fp16" or "fp32"
    max_batch: int

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {self.max_batch}")

    @property
    def stem(self) -> str:
        """Everything but the batch: engines that differ only in max batch share it."""
        return f"{self.model}.{self.content_hash}.{self.compute_capability}.trt{self.tensorrt_version}.{self.precision}"

    @property
    def filename(self) -> str:
        return f"{self.stem}.b{self.max_batch}{_SUFFIX}"


def engine_key(manifest: ModelManifest, compute_capability: str, tensorrt_version: str,
               precision: str = "fp16", max_batch: int = 64) -> EngineKey:
    return EngineKey(manifest.key, manifest.content_hash(), compute_capability, tensorrt_version, precision,
                     max_batch)


def engine_path(cache_dir: Path, key: EngineKey) -> Path:
    return Path(cache_dir) / key.filename


def timing_cache_path(cache_dir: Path, compute_capability: str, tensorrt_version: str) -> Path:
    """One timing cache per GPU architecture and TensorRT version, shared by every model's
    build: layer timings measured for one model speed up the next build."""
    return Path(cache_dir) / f"timing.{compute_capability}.trt{tensorrt_version}.cache"


def find_engine(cache_dir: Path, key: EngineKey) -> Path | None:
    """The cached engine for `key`, or else the one with the smallest max batch above it.

    An engine built for batch 64 serves an infer stage batching 8: it may be a little
    slower than one tuned for 8, but it is far faster than no engine at all.
    """
    exact = engine_path(cache_dir, key)
    if exact.is_file():
        return exact
    larger = [(batch, path) for path in Path(cache_dir).glob(f"{key.stem}.b*{_SUFFIX}")
              if (batch := engine_batch(path)) is not None and batch >= key.max_batch]
    return min(larger)[1] if larger else None


def engine_batch(path: Path) -> int | None:
    """The max batch recorded in an engine's file name."""
    match = _BATCH_RE.search(Path(path).name)
    return int(match.group(1)) if match else None
