"""infer: one model, one consumer group, batched.

Dynamic batching (streams/batching.py): the runtime runs at once what is buffered, and waits,
up to `max_wait_ms` after the first message, only while more messages keep arriving, up to
`max_batch`; the whole batch runs as one forward pass and its offsets are committed after
every output is acknowledged.
Boxes leave this stage in original-image pixels (the letterbox is undone here).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from radstream.models.manifest import ModelManifest
from radstream.models.profile import Letterbox
from radstream.streams import metrics
from radstream.streams.blobstore import BlobStore
from radstream.domain.errors import PermanentError, TransientError, classify
from radstream.domain.thresholds import ThresholdBook
from radstream.streams.contracts import carried_fields
from radstream.streams.kafka.topics import IMAGE_PREPROCESSED, INFERENCE_RESULTS, schema_of
from radstream.streams.stage import Inbound, Output, Result, Stage
from radstream.domain.keys import idempotency_key, image_key
from radstream.domain.thresholds import ThresholdKey

log = logging.getLogger(__name__)

# config_version is carried, then replaced by the version of the thresholds this model applied.
CARRIED = carried_fields(schema_of(IMAGE_PREPROCESSED), schema_of(INFERENCE_RESULTS), exclude=("stage_ms",))


def is_out_of_memory(exc: BaseException) -> bool:
    """Device out-of-memory as torch raises it (its own class, or a RuntimeError saying so), or as
    ONNX Runtime does (its RuntimeException, not a RuntimeError: "Failed to allocate memory")."""
    import torch

    oom = getattr(torch.cuda, "OutOfMemoryError", ())
    if (bool(oom) and isinstance(exc, oom)) or (isinstance(exc, RuntimeError) and "out of memory" in str(exc)):
        return True
    return (type(exc).__module__.startswith("onnxruntime") and
            ("Failed to allocate memory" in str(exc) or "out of memory" in str(exc)))


def letterbox_of(tensor: dict[str, Any]) -> Letterbox:
    return Letterbox(tensor["scale_x"], tensor["scale_y"], tensor["pad_x"], tensor["pad_y"],
                     tensor["orig_height"], tensor["orig_width"])


class InferStage(Stage):
    name = "infer"
    input_topic = IMAGE_PREPROCESSED
    output_topics = (INFERENCE_RESULTS,)

    def __init__(self, manifest: ModelManifest, backend: Any, store: BlobStore,
                 max_batch: int = 8, max_wait_ms: int = 20, backend_name: str = "torch-cpu", *,
                 config: ThresholdBook | None = None, loader: Callable[[], Any] | None = None) -> None:
        """`loader`: instead of `backend`, a function that opens it, run in the background by
        `start` (the stage process joins its group and polls meanwhile; D-043)."""
        self.manifest = manifest
        self.backend = backend
        self._loader = loader
        self._loading: threading.Thread | None = None
        self._load_error: BaseException | None = None
        self.store = store
        self.max_batch = max_batch
        self.max_wait_ms = max_wait_ms
        self.backend_name = backend_name
        self.config = config
        self.profile_hash = manifest.input_profile.hash()

    @property
    def group_id(self) -> str:
        return f"radstream-infer-{self.manifest.name}"

    @property
    def timing_label(self) -> str:
        return f"infer:{self.manifest.name}"

    def start(self) -> None:
        if self._loader is not None and self.backend is None and self._loading is None:
            self._loading = threading.Thread(target=self._load, name=f"load-{self.manifest.name}", daemon=True)
            self._loading.start()

    def _load(self) -> None:
        try:
            self.backend = self._loader()  # type: ignore[misc]
            self.backend_name = self.backend.name
        except BaseException as exc:  # re-raised by the first batch: ModelLoadError makes the stage unhealthy
            self._load_error = exc

    def wait_for_model(self) -> None:
        """The first batch waits for the background load; a failed load is raised here, before any
        message is answered, so nothing is dead-lettered for it (the runner serves /healthz 503)."""
        if self.backend is None and self._loading is None and self._loader is not None:
            self._load()
        if self._loading is not None:
            self._loading.join()
            self._loading = None
        if self._load_error is not None:
            raise self._load_error

    def process_batch(self, events: list[Inbound]) -> list[Result]:
        self.wait_for_model()
        results: list[Result | None] = [None] * len(events)
        tensors, ready = [], []
        for i, ev in enumerate(events):
            try:
                entry = self._tensor_entry(ev.value)
                tensors.append(self.store.get_array(entry["tensor"]))
                ready.append((i, entry))
            except Exception as exc:  # per-message: one bad blob must not fail the batch
                results[i] = classify(exc)
        if ready:
            t0 = time.perf_counter()
            try:
                outputs = self.predict_halving(np.stack(tensors))
            except Exception as exc:  # the whole forward pass failed: every message in it shares the error
                err = classify(exc)
                return [r if r is not None else err for r in results]
            metrics.model_seconds.labels("infer", self.manifest.name).observe(time.perf_counter() - t0)
            self._record_gpu_memory()
            for (i, entry), out in zip(ready, outputs):
                results[i] = [self._result(events[i].value, entry, out, len(ready))]
        return [r for r in results]  # type: ignore[misc]

    def predict_halving(self, batch: np.ndarray) -> list[Any]:
        """Predict; on out-of-memory, split the batch in halves and retry each, down to one image.
        Only a single image that does not fit is an error (transient: memory may free up)."""
        try:
            return self.backend.predict(batch)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            if len(batch) == 1:
                raise TransientError(f"{self.manifest.key}: out of memory on a single image", code="out_of_memory") from None
            half = len(batch) // 2
            log.warning("%s: out of memory at batch %d; retrying as %d + %d", self.manifest.key, len(batch), half,
                        len(batch) - half)
            metrics.oom_splits.labels("infer", self.manifest.name).inc()
            return self.predict_halving(batch[:half]) + self.predict_halving(batch[half:])

    def _tensor_entry(self, event: dict[str, Any]) -> dict[str, Any]:
        for entry in event["tensors"]:
            if entry["profile"] == self.profile_hash:
                return entry
        raise PermanentError(
            f"no tensor for profile {self.profile_hash} of {self.manifest.key} (is preprocess on the same model set?)",
            code="profile_missing",
        )

    def _result(self, event: dict[str, Any], entry: dict[str, Any], out: Any, batch: int) -> Output:
        letterbox = letterbox_of(entry)
        thresholds = self.thresholds(event["site"])
        # model:<name>/<label> is this model's score floor for that label (pushed live).
        kept = [d for d in out.detections
                if d.score >= thresholds.get(ThresholdKey.model_label(self.manifest.name, d.label), 0.0)]
        detections = []
        if kept:
            boxes = letterbox.to_original(np.array([d.box for d in kept], dtype=np.float32))
            detections = [{"label": d.label, "score": float(d.score), "box": [float(v) for v in b]}
                          for d, b in zip(kept, boxes)]
        value = {k: event[k] for k in CARRIED}
        value.update({
            "idempotency_key": idempotency_key(event["idempotency_key"], self.manifest.key),
            "model": {"name": self.manifest.name, "version": self.manifest.version, "task": self.manifest.task},
            "detections": detections,
            "classifications": {k: float(v) for k, v in out.classifications.items()}
                               if self.manifest.task in ("classifier", "qc") else {},
            "batch_size": batch,
            "config_version": thresholds.version,
            "stage_ms": dict(event["stage_ms"]),
        })
        return Output(INFERENCE_RESULTS, image_key(event["sop_uid"], event["frame"]), value)

    def _record_gpu_memory(self) -> None:
        device = getattr(self.backend, "device", None)
        if getattr(device, "type", "cpu") == "cuda":
            import torch

            metrics.gpu_memory_bytes.labels("infer", self.manifest.name).set(torch.cuda.memory_allocated(device))

    def health(self) -> dict[str, Any]:
        m = self.manifest
        backend = self.backend_name if self.backend is not None else "loading"
        return {"models": [{"name": m.name, "version": m.version, "sha256": m.artifact.sha256, "backend": backend}]}


