"""The stage registry: adding a stage means writing its module and one entry here.

Each factory builds its stage from the settings plus what the stage is wired to: the
threshold book that the runtime's config watcher keeps current, and, for a stateful
stage, its state store (its changelog unless the caller passes another, e.g. a
MemoryStore for the in-process pipeline).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from radstream.domain.thresholds import ThresholdBook, ThresholdKey
from radstream.models.manifest import ModelManifest
from radstream.models.registry import default_registry_dir, every_version, load_manifests, load_version, \
    registered_versions
from radstream.streams.blobstore import open_blob_store
from radstream.streams.config import Config
from radstream.streams.kafka.topics import CHANGELOGS
from radstream.streams.stage import Stage
from radstream.streams.state import ChangelogStore, StateStore

log = logging.getLogger(__name__)


def models_in_force(config: Config) -> dict[str, ModelManifest]:
    return load_manifests(registry_dir(config), config.models)


def registry_dir(config: Config) -> Path:
    return config.model_registry or default_registry_dir()


def rules_in_force(config: Config, manifests: dict[str, ModelManifest]) -> list:
    """The rules file named by RADSTREAM_RULES, checked against the models in force, or else
    one default rule per detector and classifier label (manifest default thresholds)."""
    from radstream.domain.rules import default_rules, parse_rules

    models = manifests.values()
    if config.rules is not None:
        return parse_rules(
            config.rules,
            {label for m in models if m.task == "detector" for label in m.labels},
            {m.name: set(m.labels) for m in models if m.task == "classifier"},  # "qc" models gate in qc
        )

    def defaults(m: ModelManifest) -> dict[str, float]:
        return {label: m.default_thresholds.get(label, 0.5) for label in m.labels}

    return default_rules(
        {m.name: defaults(m) for m in models if m.task == "detector"},
        {m.name: defaults(m) for m in models if m.task == "classifier"},
    )


def fusion_methods_in_force(config: Config, manifests: dict[str, ModelManifest]) -> dict[str, str]:
    """The rules file's `fusion:` map (label -> method), checked against the detectors in force."""
    from radstream.domain.rules import parse_fusion_methods

    labels = {label for m in manifests.values() if m.task == "detector" for label in m.labels}
    return parse_fusion_methods(config.rules, labels) if config.rules is not None else {}


def raw_operating_points(manifest: ModelManifest, floors: dict[str, float]) -> dict[str, float]:
    """Per label, the threshold on the raw scores infer writes: a pushed `model:<name>/<label>`
    value, else the manifest's operating point before calibration (`models compare`'s flips)."""
    raw = (manifest.calibration or {}).get("raw_default_thresholds") or manifest.default_thresholds
    return {label: floors.get(str(ThresholdKey.model_label(manifest.name, label)),
                              float(raw.get(label, manifest.default_thresholds.get(label, 0.5))))
            for label in manifest.labels}


def known_threshold_keys(config: Config) -> set[str]:
    """Every threshold key a push may set: the rules' keys and one score floor per model label."""
    manifests = models_in_force(config)
    keys = {c.threshold_key for r in rules_in_force(config, manifests) for c in r.conditions}
    keys |= {str(ThresholdKey.model_label(m.name, label)) for m in manifests.values() for label in m.labels}
    return keys


def _changelog_unless(state: StateStore | None, config: Config, stage: str) -> StateStore:
    return state if state is not None else ChangelogStore(config.kafka, CHANGELOGS[stage])


def _decode(config: Config, model: str | None, book: ThresholdBook, state: StateStore | None) -> Stage:
    from radstream.streams.stages.decode import DecodeStage

    check = None
    if config.require_signed_arrivals:  # the site on an arrival must be vouched for by a key (D-038)
        from radstream.domain.signatures import arrival_rejection

        trusted, sites = config.trusted_keys(), config.trusted_sites()

        def check(arrival: dict) -> str | None:
            return arrival_rejection(arrival, trusted, sites)

    return DecodeStage(open_blob_store(config.blob_url), non_image_policy=config.non_image_policy,
                       timeout_s=config.decode_timeout_s, memory_bytes=config.decode_memory_mb << 20,
                       arrival_check=check)


def _preprocess(config: Config, model: str | None, book: ThresholdBook, state: StateStore | None) -> Stage:
    from radstream.streams.stages.preprocess import PreprocessStage

    # every registered version's profile: a version put in force or shadowed finds its tensor (D-056)
    versions = every_version(registry_dir(config), sorted(models_in_force(config)))
    profiles = {m.input_profile.hash(): m.input_profile for m in versions}
    return PreprocessStage(open_blob_store(config.blob_url), list(profiles.values()))


def _infer(config: Config, model: str | None, book: ThresholdBook, state: StateStore | None, *,
           shadow: bool = False, version: str | None = None) -> Stage:
    from radstream.models.backends.select import open_backend
    from radstream.models.manifest import ModelLoadError, production_refusal, read_weights
    from radstream.streams.stages.infer import InferStage

    manifests = models_in_force(config)
    if not model:
        raise ValueError(f"infer needs --model, one of: {', '.join(sorted(manifests))}")
    if model not in manifests:
        raise ValueError(f"model {model!r} is not in the set in force ({', '.join(sorted(manifests))})")
    registry = registry_dir(config)
    max_batch = 8  # InferStage's dynamic batch; a TensorRT engine built for more serves it too

    def checked(manifest: ModelManifest) -> ModelManifest:
        if config.production:  # before any weights are read: no plaintext weights, no dev key
            refusal = production_refusal(manifest)
            if refusal:
                raise ModelLoadError(refusal)
        # The artifact's hash and key are checked now (no torch needed, milliseconds): a stage with a
        # wrong key or a tampered artifact does not start, and says why on /healthz, as before.
        read_weights(manifest)
        return manifest

    def loader(manifest: ModelManifest) -> Callable[[], Any]:
        def load() -> Any:
            backend = open_backend(manifest, config.device, config.engine_cache, max_batch,  # logs its choice
                                   torch_precision=config.torch_precision, cuda_graphs=config.cuda_graphs,
                                   backend=config.backend, threads=config.compute_threads)
            limit_compute_threads(config.compute_threads)  # now that the backend has loaded torch (or not)
            return backend
        return load

    def open_version(v: str) -> tuple[ModelManifest, Callable[[], Any]]:
        """A version the model set names, checked like the first (run in the background, D-056)."""
        manifest = checked(load_version(registry, model, v))
        return manifest, loader(manifest)

    if shadow:  # a candidate: the version asked for, else the newest registered
        manifest = checked(load_version(registry, model, version or registered_versions(registry, model)[-1]))
    else:
        manifest = checked(manifests[model])
    # The model loads once the runner polls (InferStage.start, D-043): a restarted infer process is
    # back in its group in about a second and holds its partitions while torch and the weights load.
    return InferStage(manifest, None, open_blob_store(config.blob_url), max_batch=max_batch,
                      backend_name="loading", config=book, loader=loader(manifest), shadow=shadow,
                      versions=None if shadow else open_version)


def _fuse(config: Config, model: str | None, book: ThresholdBook, state: StateStore | None) -> Stage:
    from radstream.streams.stages.fuse import ExpectedModel, FuseStage

    manifests = models_in_force(config)
    expected = [ExpectedModel(m.name, m.task, m.fusion_weight, m.calibration or None) for m in manifests.values()]
    # each other registered version's own calibration: a promoted version's scores are calibrated as it
    # was fitted (the default versions' are their ExpectedModel's)
    calibrations = {(m.name, m.version): m.calibration or None
                    for m in every_version(registry_dir(config), sorted(manifests))
                    if m.version != manifests[m.name].version}
    return FuseStage(expected, rules_in_force(config, manifests), deadline_s=config.join_deadline_s,
                     calibrations=calibrations,
                     iou_thr=config.fusion_iou, fusion_method=config.fusion_method,
                     fusion_methods=fusion_methods_in_force(config, manifests), config=book,
                     state=_changelog_unless(state, config, "fuse"))


def _qc(config: Config, model: str | None, book: ThresholdBook, state: StateStore | None) -> Stage:
    from radstream.domain.qc import applicability_union
    from radstream.streams.stages.qc import QcStage

    manifests = models_in_force(config)
    qc_models = {m.name: {label: m.default_thresholds.get(label, 0.5) for label in m.labels}
                 for m in manifests.values() if m.task == "qc"}
    # Header checks: the union of the manifests' applicability (a dimension no model restricts accepts anything).
    applicable = applicability_union(m.applicability for m in manifests.values())
    log.info("qc applicability: modalities %s, body parts %s, views %s", *(
        ", ".join(values) or "any" for values in (applicable.modalities, applicable.body_parts, applicable.views)))
    return QcStage(quiet_period_s=config.quiet_period_s, qc_models=qc_models,
                   applicable_body_parts=applicable.body_parts, applicable_views=applicable.views,
                   applicable_modalities=applicable.modalities, config=book,
                   state=_changelog_unless(state, config, "qc"),
                   owner_retention_s=config.study_owner_retention_days * 86400)


def _monitor(config: Config, model: str | None, book: ThresholdBook, state: StateStore | None) -> Stage:
    from radstream.streams.config import RejectionAudit
    from radstream.streams.kafka.topics import OVERRIDES_AUDIT
    from radstream.streams.monitoring import monitor_settings
    from radstream.streams.stages.monitor import MonitorStage

    # Its webhook (RADSTREAM_MONITOR_WEBHOOK) is wired by `radstream stage` (services/monitor/alerts.py).
    # A verdict it ignores goes to the audit topic marked rejected_by monitor, as the gateway's (D-036).
    return MonitorStage(monitor_settings(config), trusted=config.trusted_keys(),
                        on_rejected=RejectionAudit(config.kafka, None, "monitor", OVERRIDES_AUDIT, "finding_id"),
                        state=_changelog_unless(state, config, "monitor"))


STAGES: dict[str, Callable[[Config, str | None, ThresholdBook, StateStore | None], Stage]] = {
    "decode": _decode,
    "preprocess": _preprocess,
    "infer": _infer,
    "fuse": _fuse,
    "qc": _qc,
    "monitor": _monitor,  # watches what the others produce: study.results and findings.overrides
}


def limit_compute_threads(threads: int) -> None:
    """Cap torch's and OpenCV's thread pools (0: library defaults). Several stage processes on
    few cores oversubscribe the CPU otherwise; one process per pod can use them all.

    torch is capped only where it is loaded already: importing it here (2-3 s) made every stage
    process, decode and fuse included, that much slower to rejoin its group after a restart
    (D-043). The infer factory calls this again once its backend has loaded torch.
    """
    if threads <= 0:
        return
    import cv2

    cv2.setNumThreads(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def build_stage(name: str, config: Config, model: str | None = None, *, book: ThresholdBook | None = None,
                state: StateStore | None = None, shadow: bool = False, version: str | None = None) -> Stage:
    """`book`: the thresholds in force (default: a new, empty book). `state`: a stateful stage's
    store (default: its changelog, which the runtime restores; stateless stages have none).
    `shadow` (infer only): run `version` of `model` (default: its newest) beside the live one."""
    limit_compute_threads(config.compute_threads)
    if shadow or version is not None:
        if name != "infer" or not shadow:
            raise ValueError("--shadow and --version are for `stage infer --model M --shadow [--version V]` only")
        return _infer(config, model, book if book is not None else ThresholdBook(), state, shadow=True,
                      version=version)
    try:
        factory = STAGES[name]
    except KeyError:
        raise ValueError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}") from None
    return factory(config, model, book if book is not None else ThresholdBook(), state)
