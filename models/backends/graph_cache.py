"""ONNX Runtime's optimized graphs, cached beside the TensorRT engines, never in plaintext when
the weights are not.

A serialized graph holds the model's weights, so it is kept the way its artifact is: when the
manifest's artifact is encrypted, the cached graph is encrypted under the same key and bound to
the same model name and version (models/crypto.py); a plaintext artifact gives a plaintext
graph. A graph is only valid for the exact model (the manifest's `content_hash`), the opset it
was exported at, the ONNX Runtime version that optimized it and the execution provider it was
optimized for (fusions differ between the CPU and CUDA providers): all four are in its file
name, so a changed model or an upgraded runtime misses the cache instead of loading a stale
graph. A cached file that does not read back (another key, a damaged file) is a miss, logged.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from radstream.models.manifest import ModelManifest

log = logging.getLogger(__name__)

PROVIDERS = ("cpu", "cuda")


@dataclass(frozen=True)
class GraphKey:
    model: str  # the manifest key, name-version: for a human reading the folder
    content_hash: str
    opset: int
    ort_version: str
    provider: str  # "cpu" or "cuda": the execution provider the graph was optimized for
    encrypted: bool

    def __post_init__(self) -> None:
        if self.provider not in PROVIDERS:
            raise ValueError(f"provider must be one of {PROVIDERS}, got {self.provider!r}")

    @property
    def filename(self) -> str:
        suffix = ".onnx.enc" if self.encrypted else ".onnx"
        return f"{self.model}.{self.content_hash}.opset{self.opset}.ort{self.ort_version}.{self.provider}{suffix}"


def graph_key(manifest: ModelManifest, opset: int, ort_version: str, provider: str) -> GraphKey:
    return GraphKey(manifest.key, manifest.content_hash(), opset, ort_version, provider, manifest.artifact.encrypted)


def graph_path(cache_dir: Path, key: GraphKey) -> Path:
    return Path(cache_dir) / key.filename


def _seal(manifest: ModelManifest, graph: bytes) -> bytes:
    if not manifest.artifact.encrypted:
        return graph
    from radstream.models import crypto

    return crypto.encrypt(graph, crypto.load_key(), manifest.name, manifest.version)


def _open(manifest: ModelManifest, data: bytes) -> bytes:
    if not manifest.artifact.encrypted:
        return data
    from radstream.models import crypto

    return crypto.decrypt(data, crypto.load_key(), manifest.name, manifest.version)


def read_graph(cache_dir: Path, manifest: ModelManifest, key: GraphKey) -> bytes | None:
    """The cached graph's plaintext, in memory only; None on a miss or a file that does not open."""
    from radstream.models import crypto

    path = graph_path(cache_dir, key)
    try:
        return _open(manifest, path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, crypto.ModelKeyError, crypto.DecryptionError) as exc:
        log.warning("model %s: cached graph %s unusable (%s); exporting again", manifest.name, path,
                    str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return None


def write_graph(cache_dir: Path, manifest: ModelManifest, key: GraphKey, graph: bytes) -> Path | None:
    """Store `graph` under `key`, sealed like the artifact (atomically); None when the folder is
    not writable (a read-only pod: the next start exports again, which is slower but correct)."""
    path = graph_path(cache_dir, key)
    sealed = _seal(manifest, graph)  # before anything touches the disk
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as handle:
            handle.write(sealed)
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("model %s: cannot cache its graph in %s (%s)", manifest.name, cache_dir, exc.strerror or exc)
        tmp.unlink(missing_ok=True)
        return None
    return path
