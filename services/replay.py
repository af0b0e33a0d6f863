"""Shadow replay: recorded arrivals through a candidate config (or model set) in a separate,
prefixed pipeline, never touching a live topic, then compared with the live results.

The shadow pipeline gets its own topic and consumer-group prefix (`<live prefix>shadow-<id>.`),
its own config topic holding the candidate thresholds, and reads the shared blob store
(content-addressed: it can only add blobs). Live topics are only read.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

from radstream.domain.signatures import parse_trusted_keys
from radstream.services.results import study_results
from radstream.services.signing import write_key_pair
from radstream.services.stack import Stack
from radstream.services.thresholds import push, read_file
from radstream.streams.config import Config
from radstream.streams.kafka.producer import EventPublisher
from radstream.streams.kafka.reader import read_events
from radstream.streams.kafka.topics import DICOM_ARRIVED, create_topics, schema_of
from radstream.streams.stages.registry import known_threshold_keys


@dataclass
class ReplayReport:
    shadow_prefix: str
    replayed: int
    studies: list[str]
    live: list[dict]
    shadow: list[dict]


def recorded_arrivals(config: Config, topic: str, start_ms: int, end_ms: int) -> list:
    """Messages of the live topic whose `arrived_at` falls in [start, end]; undecodable ones are skipped."""
    # `topic` may be any live topic of recorded arrivals: its records are read as dicom.arrived's.
    # skip_undecodable: the live DLQ already holds those; a replay only re-runs valid arrivals.
    picked = []
    for msg, event in read_events(config.kafka, topic, schema=schema_of(DICOM_ARRIVED), skip_undecodable=True):
        if start_ms <= event["arrived_at"] <= end_ms:
            picked.append((msg, event))
    return picked


def run_replay(config: Config, topic: str, start_ms: int, end_ms: int, candidate: Path,
               models: list[str] | None = None, name: str | None = None, timeout_s: float = 300.0,
               say=print) -> ReplayReport:
    arrivals = recorded_arrivals(config, topic, start_ms, end_ms)
    if not arrivals:
        raise LookupError(f"no arrivals on {config.kafka.topic(topic)} between the given times")
    studies = sorted({event["study_uid"] for _, event in arrivals})
    prefix = f"{config.kafka.topic_prefix}shadow-{name or uuid.uuid4().hex[:8]}."
    shadow = replace(config, kafka=replace(config.kafka, topic_prefix=prefix), models=models or config.models)
    docs = read_file(candidate)  # validated before anything is created
    create_topics(shadow.kafka, shadow.partitions)
    # The candidate is signed by a key made for this replay and trusted by the shadow stages only:
    # nothing live trusts it, and the shadow stages trust nothing else.
    _, public, key = write_key_pair("shadow-replay", config.home / "keys" / prefix.rstrip("."))
    trusted = parse_trusted_keys(public.read_text(), str(public))
    version = push(shadow.kafka, docs, key, f"candidate {candidate.name}", known_threshold_keys(shadow), trusted)
    say(f"shadow pipeline {prefix}*: candidate thresholds as version {version}, "
        f"{len(arrivals)} arrival(s) of {len(studies)} study(ies)")
    env = {"RADSTREAM_TOPIC_PREFIX": prefix, "RADSTREAM_TRUSTED_KEYS": str(public)}
    if models:
        env["RADSTREAM_MODELS"] = ",".join(models)
    with Stack(shadow, config.kafka.bootstrap, env=env) as stack:
        producer = EventPublisher(shadow.kafka)
        for msg, _ in arrivals:
            producer.send_raw(shadow.kafka.topic(DICOM_ARRIVED), msg.key(), msg.value(), list(msg.headers() or []))
        producer.flush()
        got: dict[str, dict] = {}
        deadline = time.monotonic() + timeout_s
        for result in study_results(shadow.kafka, follow=True, idle_timeout_s=timeout_s):
            stack.poll()
            if result["study_uid"] in studies:
                got[result["study_uid"]] = result
            if set(got) >= set(studies) or time.monotonic() > deadline:
                break
    missing = sorted(set(studies) - set(got))
    if missing:
        raise TimeoutError(f"shadow results missing for {len(missing)} study(ies) after {timeout_s:.0f}s")
    live = {r["study_uid"]: r for r in study_results(config.kafka) if r["study_uid"] in studies}
    return ReplayReport(prefix, len(arrivals), studies, [live[s] for s in studies if s in live],
                        [got[s] for s in studies])


def findings_summary(result: dict | None) -> str:
    if result is None:
        return "(no result)"
    findings = [f for img in result["images"] for f in img["findings"]]
    labels = sorted({f["label"] for f in findings})
    top = max((f["confidence"] for f in findings), default=0.0)
    return f"v{result['config_version']}: {len(findings)} finding(s) {','.join(labels) or '-'} (max {top:.2f})"


def side_by_side(report: ReplayReport) -> list[str]:
    live = {r["study_uid"]: r for r in report.live}
    shadow = {r["study_uid"]: r for r in report.shadow}
    lines = [f"{'study':<20} {'live':<44} shadow"]
    for study in report.studies:
        lines.append(f"...{study[-17:]:<17} {findings_summary(live.get(study)):<44} {findings_summary(shadow.get(study))}")
    return lines


def compare_metrics(report: ReplayReport, labels_csv: Path) -> dict:
    """The evaluation (evaluation/) on the same studies, live against shadow."""
    from radstream.evaluation import inputs, study_scores
    from radstream.evaluation.evaluate import EvaluationOptions, evaluate

    labels = inputs.read_labels(labels_csv)
    names = {r.label for r in labels}
    out = {}
    for side, results in (("live", report.live), ("shadow", report.shadow)):
        calls = study_scores.calls_from_results(results, names)
        rows = [r for r in labels if any(r.study_uid == x["study_uid"] for x in results)]
        out[side] = evaluate(rows, calls, EvaluationOptions(n_resamples=500), results=results)["labels"]
    return out


def write_outputs(report: ReplayReport, out: Path, metrics: dict | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for side in ("live", "shadow"):
        (out / f"{side}.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in getattr(report, side)))
    if metrics is not None:
        (out / "comparison.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
