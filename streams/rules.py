"""Declarative decision rules: fused detections and classifier outputs become named findings.

A rule is data (id, version, kind, label, source, threshold key and default), so a
finding can always say which rule fired, what it read and which threshold it
crossed. Thresholds come from the ThresholdSet in force (streams/config.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from radstream.streams.config import ThresholdSet
from radstream.streams.fusion import FusedBox


@dataclass(frozen=True)
class Rule:
    id: str
    version: str
    kind: str  # "fused_box" (a fused detection at or above threshold) or "classifier" (probability at or above)
    label: str
    source: str  # "fused" or a classifier model name
    threshold_key: str
    default_threshold: float


def default_rules(detectors: dict[str, dict[str, float]], classifiers: dict[str, dict[str, float]]) -> list[Rule]:
    """One rule per detector label and per classifier label of the models in force.

    Arguments map model name -> {label: default threshold from its manifest}. A fused
    box rule defaults to the lowest default among the detectors that emit the label.
    """
    box_defaults: dict[str, float] = {}
    for labels in detectors.values():
        for label, value in labels.items():
            box_defaults[label] = min(value, box_defaults.get(label, value))
    rules = [
        Rule(f"{label}-detected", "1", "fused_box", label, "fused", f"rule:{label}-detected/min_score", value)
        for label, value in sorted(box_defaults.items())
    ]
    for model, labels in sorted(classifiers.items()):
        rules += [
            Rule(f"{label}-suspected", "1", "classifier", label, model, f"rule:{label}-suspected/min_probability", value)
            for label, value in sorted(labels.items())
        ]
    return rules


def apply_rules(
    rules: list[Rule], fused: list[FusedBox], classifier_outputs: list[dict], thresholds: ThresholdSet
) -> list[dict]:
    """Return Finding records (schemas/FindingsFused.avsc) for every rule that fired."""
    findings: list[dict] = []
    for rule in rules:
        threshold = thresholds.get(rule.threshold_key, rule.default_threshold)
        if rule.kind == "fused_box":
            for i, box in enumerate(fused):
                if box.label == rule.label and box.score >= threshold:
                    findings.append(_finding(rule, box.score, box.box, {f"fused_box[{i}].score": box.score}, threshold))
        elif rule.kind == "classifier":
            for out in classifier_outputs:
                if out["model"] == rule.source and out["label"] == rule.label and out["probability"] >= threshold:
                    inputs = {f"{out['model']}/{out['label']}": out["probability"]}
                    findings.append(_finding(rule, out["probability"], None, inputs, threshold))
    return findings


def _finding(rule: Rule, confidence: float, box: list[float] | None, inputs: dict[str, float], threshold: float) -> dict:
    return {
        "rule_id": rule.id,
        "rule_version": rule.version,
        "label": rule.label,
        "confidence": float(confidence),
        "box": box,
        "inputs": inputs,
        "thresholds": {rule.threshold_key: threshold},
    }
