"""`radstream models compare NAME --since T`: a shadow version against the live one, on the same images.

Reads inference.results (and its STAT twin) and inference.shadow from T (sought by the broker's time index where it
has one, then filtered by each record's timestamp), keeps
the latest result of NAME per image on each side, and hands the pairs to the pure comparison
(domain/model_agreement.py). The live version's thresholds are its raw operating points (the
manifest's, before calibration, as infer's results carry raw scores), or a pushed
`model:NAME/LABEL` floor.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from radstream.domain.keys import image_key
from radstream.domain.model_agreement import Agreement, compare_versions
from radstream.models.manifest import ModelLoadError, ModelManifest
from radstream.models.registry import load_version
from radstream.streams.kafka.reader import read_events
from radstream.streams.kafka.settings import KafkaSettings
from radstream.streams.kafka.topics import INFERENCE_RESULTS, INFERENCE_SHADOW, stat_twin
from radstream.streams.stages.registry import raw_operating_points

PROGRESS_EVERY = 5000


def latest_per_image(settings: KafkaSettings, topics: tuple[str, ...], model: str, since_ms: int,
                     progress: Callable[[str], None] | None = None) -> dict[str, dict[str, Any]]:
    """Image key -> the latest result of `model` on `topics` at or after `since_ms`."""
    found: dict[str, tuple[int, dict[str, Any]]] = {}
    read = 0
    records = ((msg, record) for topic in topics
               for msg, record in read_events(settings, topic, skip_undecodable=True, since_ms=since_ms))
    for msg, record in records:
        read += 1
        if progress is not None and read % PROGRESS_EVERY == 0:
            progress(f"{', '.join(topics)}: {read} records read, {len(found)} images of {model} so far")
        stamp = msg.timestamp()[1]
        if record["model"]["name"] != model or stamp < since_ms:
            continue
        key = image_key(record["sop_uid"], record["frame"])
        if key not in found or stamp >= found[key][0]:
            found[key] = (stamp, record)
    return {k: r for k, (_, r) in found.items()}


def compare(settings: KafkaSettings, registry_dir: Path, model: str, since_ms: int, floors: dict[str, float],
            iou_thr: float = 0.5, progress: Callable[[str], None] | None = None) -> Agreement:
    # the live results of urgent images are on the STAT twin (D-057); a shadow's all go to inference.shadow
    live = latest_per_image(settings, (INFERENCE_RESULTS, stat_twin(INFERENCE_RESULTS)), model, since_ms, progress)
    shadow = latest_per_image(settings, (INFERENCE_SHADOW,), model, since_ms, progress)
    versions = sorted({r["model"]["version"] for r in live.values()})
    reference = _manifest(registry_dir, model, versions[-1] if versions else None)
    return compare_versions(model, live, shadow, reference.labels, raw_operating_points(reference, floors),
                            reference.task == "detector", iou_thr)


def _manifest(registry_dir: Path, model: str, version: str | None) -> ModelManifest:
    """The live version's manifest (its labels, task and operating points), else the default one."""
    if version is not None:
        try:
            return load_version(registry_dir, model, version)
        except ModelLoadError:
            pass
    path = Path(registry_dir) / f"{model}.json"
    if not path.is_file():
        raise ModelLoadError(f"no model {model!r} in {registry_dir}")
    return ModelManifest.read(path)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def render(agreement: Agreement, since: str) -> str:
    a = agreement
    lines = [f"{a.model}: live {', '.join(a.live_versions) or '-'} vs shadow {', '.join(a.shadow_versions) or '-'} "
             f"since {since}: {a.matched} images matched, {a.only_live} only live, {a.only_shadow} only shadow",
             f"{'label':<16}{'images':>7}{'pearson':>9}{'threshold':>11}{'live+ shadow-':>15}{'live- shadow+':>15}"]
    for row in a.labels:
        lines.append(f"{row.label:<16}{row.images:>7}{_fmt(row.pearson):>9}{row.threshold:>11.3f}"
                     f"{row.live_positive_shadow_negative:>15}{row.live_negative_shadow_positive:>15}")
    if a.boxes is not None:
        b = a.boxes
        lines.append(f"boxes at IoU {b.iou:g} (live as reference): {b.true_positives} matched, "
                     f"{b.false_positives} only shadow, {b.false_negatives} only live, F1 {_fmt(b.f1)}")
    return "\n".join(lines) + "\n"
