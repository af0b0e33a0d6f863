"""infer: one model, one consumer group, batched.

Dynamic batching (streams/batching.py): the runtime runs at once what is buffered, and waits,
up to `max_wait_ms` after the first message, only while more messages keep arriving, up to
`max_batch`; the whole batch runs as one forward pass and its offsets are committed after
every output is acknowledged.
Boxes leave this stage in original-image pixels (the letterbox is undone here).

The version served follows the model set in force on the config topic (D-056): when a push names
another version of this model, it is opened in the background while the old one keeps serving,
and swapped in between batches once ready; one that cannot be opened is refused with a one-line
error and the old one stays. A shadow stage (`--shadow`) runs one fixed version in its own group
and writes to inference.shadow, which fuse never reads.
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
from radstream.streams.kafka.topics import IMAGE_PREPROCESSED, INFERENCE_RESULTS, INFERENCE_SHADOW, schema_of
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
    output_topics: tuple[str, ...] = (INFERENCE_RESULTS,)
    shadow_output_topics = (INFERENCE_SHADOW,)  # what a shadow stage writes instead (its KafkaUser's ACLs)

    def __init__(self, manifest: ModelManifest, backend: Any, store: BlobStore,
                 max_batch: int = 8, max_wait_ms: int = 20, backend_name: str = "torch-cpu", *,
                 config: ThresholdBook | None = None, loader: Callable[[], Any] | None = None,
                 shadow: bool = False, versions: Callable[[str], tuple[ModelManifest, Callable[[], Any]]] | None = None
                 ) -> None:
        """`loader`: instead of `backend`, a function that opens it, run in the background by
        `start` (the stage process joins its group and polls meanwhile; D-043). `versions`: for a
        live stage, version -> (its manifest, a loader), called in the background when the model
        set in force names another version (None: this stage serves `manifest` only). `shadow`:
        results go to inference.shadow, in a group of their own."""
        self.manifest = manifest
        self.default_version = manifest.version  # in force while no model set names this model
        self.shadow = shadow
        if shadow:
            self.output_topics = self.shadow_output_topics
        self._versions = versions
        self._switch: threading.Thread | None = None
        self._switched: tuple[ModelManifest, Any] | None = None
        self._refused: tuple[int, str] | None = None  # (model set version, model version) refused
        self._refusal: str | None = None
        self._live_noted: str | None = None
        self._batches = 0
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

    def laned_batch(self) -> int:
        """While laned, an urgent image waits for the forward pass in hand. On a CPU the per-image
        time mostly does not fall with the batch (D-031's table: on ONNX Runtime batch 8 costs
        more than 6 times batch 1 for every model), so a CPU backend takes what decode and
        preprocess take; a GPU keeps its batch, which is its throughput (D-057)."""
        on_gpu = self.backend_name == "tensorrt" or self.backend_name.endswith("-cuda")
        return self.max_batch if on_gpu else super().laned_batch()

    @property
    def group_id(self) -> str:
        return f"radstream-infer-{self.manifest.name}" + ("-shadow" if self.shadow else "")

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
        if self._batches == 0 and self._switch is not None:  # a restart after a promotion: serve the
            self._switch.join()  # version in force from the first result on, not the default first
            self.between_batches()

    def wanted_version(self) -> str:
        """The version the model set in force names for this model, else the default manifest's."""
        try:
            wanted = self.config.model_set() if self.config is not None else {}
        except ValueError:  # a record that validated when applied always parses; never fatal
            wanted = {}
        return wanted.get(self.manifest.name, self.default_version)

    def between_batches(self) -> None:
        """Follow the model set (live stage), or say that the shadowed version went live (shadow)."""
        if self._switch is not None and not self._switch.is_alive():
            self._switch = None
            if self._switched is not None:
                old = self.manifest
                self.manifest, self.backend = self._switched
                self._switched = None
                self.backend_name = getattr(self.backend, "name", self.backend_name)
                self.profile_hash = self.manifest.input_profile.hash()
                log.info("%s: now serving version %s (was %s; model set version %d)", self.manifest.name,
                         self.manifest.version, old.version, self.config.model_set_version if self.config else 0)
        wanted = self.wanted_version()
        if self.shadow:
            if wanted == self.manifest.version and self._live_noted != wanted:
                log.warning("shadow of %s: version %s is the live version now (model set version %d); its results "
                            "duplicate the live ones, and this shadow can be stopped", self.manifest.name, wanted,
                            self.config.model_set_version if self.config else 0)
            self._live_noted = wanted if wanted == self.manifest.version else None
            return
        set_version = self.config.model_set_version if self.config is not None else 0
        if (wanted == self.manifest.version or self._versions is None or self._switch is not None
                or self._refused == (set_version, wanted)):
            return
        self._switch = threading.Thread(target=self._open_version, args=(wanted, set_version),
                                        name=f"switch-{self.manifest.name}-{wanted}", daemon=True)
        self._switch.start()

    def _open_version(self, version: str, set_version: int) -> None:
        try:
            manifest, loader = self._versions(version)  # type: ignore[misc]
            self._switched = (manifest, loader())
            self._refusal = None
            log.info("%s: version %s opened in the background; switching between batches", manifest.name, version)
        except Exception as exc:  # refused, never fatal: the version serving now stays
            self._refused = (set_version, version)
            self._refusal = f"version {version} refused: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            log.error("%s: %s; keeping version %s", self.manifest.name, self._refusal, self.manifest.version)

    def process_batch(self, events: list[Inbound]) -> list[Result]:
        self.wait_for_model()
        self._batches += 1
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
        if self.shadow:
            return Output(INFERENCE_SHADOW, image_key(event["sop_uid"], event["frame"]), value)
        return Output(INFERENCE_RESULTS, image_key(event["sop_uid"], event["frame"]), value)

    def _record_gpu_memory(self) -> None:
        device = getattr(self.backend, "device", None)
        if getattr(device, "type", "cpu") == "cuda":
            import torch

            metrics.gpu_memory_bytes.labels("infer", self.manifest.name).set(torch.cuda.memory_allocated(device))

    def health(self) -> dict[str, Any]:
        m = self.manifest
        backend = self.backend_name if self.backend is not None else "loading"
        model = {"name": m.name, "version": m.version, "sha256": m.artifact.sha256, "backend": backend,
                 "shadow": self.shadow}
        if self._switch is not None:
            model["opening_version"] = self.wanted_version()
        if self._refusal:
            model["refused"] = self._refusal
        return {"models": [model]}


