"""Declarative decision rules: fused detections and classifier outputs become named findings.

A rule is data: an id and version, the finding label, a primary condition (`when`), and
optional conditions that must also hold (`also`) or must not (`unless`). Every condition
names a threshold key (`rule:<id>/<name>`) with a default, so a finding can always say which
rule fired, what it read and which thresholds it crossed, and a push to the config topic
retunes it live. Example: "nodule, when a fused box scores >= t and the classifier agrees,
unless the QC model calls the image rotated" (examples/rules.yaml).

Without a rules file (RADSTREAM_RULES), one rule per detector label and per classifier
label of the models in force is used, with the manifests' default thresholds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from radstream.domain.thresholds import ThresholdKey, ThresholdSet
from radstream.domain.fusion import FusedBox
from radstream.domain.fusion_methods import check_method

# The default rule of a label, by kind: its id is `<label>-<kind>`, its one threshold this name.
DEFAULT_RULE_THRESHOLDS = {"detected": "min_score", "suspected": "min_probability"}


class RuleError(ValueError):
    """A rules document that cannot work; the message names the rule and the problem."""


@dataclass(frozen=True)
class Condition:
    kind: str  # "fused_box": a fused box of `label`; "classifier": `source` model's probability for `label`
    label: str
    source: str  # "fused" or a classifier model name
    threshold_key: str
    default: float
    below: bool = False  # True: holds when the value is under the threshold (e.g. "healed classifier < h")

    def value(self, fused: list[FusedBox], classifier_outputs: list[dict]) -> float | None:
        """The strongest observed value (max box score or the probability); None when absent."""
        if self.kind == "fused_box":
            scores = [b.score for b in fused if b.label == self.label]
        else:
            scores = [o["probability"] for o in classifier_outputs
                      if o["model"] == self.source and o["label"] == self.label]
        return max(scores) if scores else None

    def holds(self, value: float | None, threshold: float) -> bool:
        if value is None:
            return False
        return value < threshold if self.below else value >= threshold

    @property
    def input_name(self) -> str:
        return f"fused/{self.label}" if self.kind == "fused_box" else f"{self.source}/{self.label}"


@dataclass(frozen=True)
class Rule:
    id: str
    version: str
    label: str
    when: Condition
    also: tuple[Condition, ...] = ()
    unless: tuple[Condition, ...] = ()

    @property
    def conditions(self) -> tuple[Condition, ...]:
        return (self.when, *self.also, *self.unless)


def default_rule_id(label: str, kind: str) -> str:
    """The id of the default rule for `label`: kind "detected" (fused boxes) or "suspected" (a classifier)."""
    return f"{label}-{kind}"


def default_rule_threshold(label: str, kind: str) -> ThresholdKey:
    """The threshold key of the default rule for `label` (see `default_rule_id`)."""
    return ThresholdKey.rule(default_rule_id(label, kind), DEFAULT_RULE_THRESHOLDS[kind])


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
        Rule(default_rule_id(label, "detected"), "1", label,
             Condition("fused_box", label, "fused", str(default_rule_threshold(label, "detected")), value))
        for label, value in sorted(box_defaults.items())
    ]
    for model, labels in sorted(classifiers.items()):
        rules += [
            Rule(default_rule_id(label, "suspected"), "1", label,
                 Condition("classifier", label, model, str(default_rule_threshold(label, "suspected")), value))
            for label, value in sorted(labels.items())
        ]
    return rules


def parse_rules(data: Any, detector_labels: set[str], classifier_labels: dict[str, set[str]]) -> list[Rule]:
    """Rules from a YAML/JSON document `{rules: [...]}`, checked against the models in force."""
    items = data.get("rules") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise RuleError("a rules document needs a non-empty `rules:` list")
    rules, seen = [], set()
    for n, item in enumerate(items, 1):
        if not isinstance(item, dict) or not {"id", "label", "when"} <= set(item):
            raise RuleError(f"rule #{n}: needs id, label and when")
        rid = str(item["id"])
        if rid in seen:
            raise RuleError(f"rule {rid}: defined twice")
        seen.add(rid)

        def condition(spec: Any, where: str) -> Condition:
            if not isinstance(spec, dict) or "threshold" not in spec or "default" not in spec:
                raise RuleError(f"rule {rid}, {where}: needs a threshold name and a default")
            key = str(ThresholdKey.rule(rid, str(spec["threshold"])))
            default = float(spec["default"])
            if not 0 <= default <= 1:
                raise RuleError(f"rule {rid}, {where}: default {default} is out of range [0, 1]")
            if "fused_box" in spec:
                label = str(spec["fused_box"])
                if label not in detector_labels:
                    raise RuleError(f"rule {rid}, {where}: no detector in force emits {label!r}")
                return Condition("fused_box", label, "fused", key, default, bool(spec.get("below", False)))
            if "classifier" in spec:
                model, label = str(spec["classifier"]), str(spec.get("label", ""))
                if label not in classifier_labels.get(model, set()):
                    raise RuleError(f"rule {rid}, {where}: no classifier {model!r} with label {label!r} in force")
                return Condition("classifier", label, model, key, default, bool(spec.get("below", False)))
            raise RuleError(f"rule {rid}, {where}: a condition is `fused_box: LABEL` or `classifier: MODEL` + `label`")

        rules.append(Rule(
            rid, str(item.get("version", "1")), str(item["label"]), condition(item["when"], "when"),
            tuple(condition(c, f"also[{i}]") for i, c in enumerate(item.get("also") or [])),
            tuple(condition(c, f"unless[{i}]") for i, c in enumerate(item.get("unless") or [])),
        ))
    return rules


def parse_fusion_methods(data: Any, detector_labels: set[str]) -> dict[str, str]:
    """The rules document's optional `fusion: {LABEL: wbf|nmw|soft-nms}`: how each label's boxes are
    fused (a label not named takes RADSTREAM_FUSION_METHOD)."""
    spec = data.get("fusion") if isinstance(data, dict) else None
    if spec is None:
        return {}
    if not isinstance(spec, dict):
        raise RuleError("`fusion:` maps a detector label to a method, e.g. {nodule: nmw}")
    methods = {}
    for label, method in spec.items():
        if str(label) not in detector_labels:
            raise RuleError(f"fusion: no detector in force emits {str(label)!r}")
        try:
            methods[str(label)] = check_method(str(method), f"fusion.{label}")
        except ValueError as exc:
            raise RuleError(str(exc)) from None
    return methods


def apply_rules(
    rules: list[Rule], fused: list[FusedBox], classifier_outputs: list[dict], thresholds: ThresholdSet
) -> list[dict]:
    """Return Finding records (schemas/FindingsFused.avsc) for every rule that fired.

    A fused-box rule gives one finding per qualifying box; a classifier rule one per image.
    """
    findings: list[dict] = []
    for rule in rules:
        limits = {c.threshold_key: thresholds.get(c.threshold_key, c.default) for c in rule.conditions}
        inputs: dict[str, float] = {}
        gate = True
        for cond in rule.also:
            value = cond.value(fused, classifier_outputs)
            if value is not None:
                inputs[cond.input_name] = value
            gate &= cond.holds(value, limits[cond.threshold_key])
        for cond in rule.unless:
            value = cond.value(fused, classifier_outputs)
            if value is not None:
                inputs[cond.input_name] = value
            gate &= not cond.holds(value, limits[cond.threshold_key])
        if not gate:
            continue
        when = rule.when
        if when.kind == "fused_box":
            for i, box in enumerate(fused):
                if box.label == when.label and when.holds(box.score, limits[when.threshold_key]):
                    findings.append(_finding(rule, box.score, box.box, {f"fused_box[{i}].score": box.score, **inputs},
                                             limits))
        else:
            value = when.value(fused, classifier_outputs)
            if when.holds(value, limits[when.threshold_key]):
                findings.append(_finding(rule, value, None, {when.input_name: value, **inputs}, limits))
    return findings


def _finding(rule: Rule, confidence: float, box: list[float] | None, inputs: dict[str, float],
             thresholds: dict[str, float]) -> dict:
    return {
        "rule_id": rule.id,
        "rule_version": rule.version,
        "label": rule.label,
        "confidence": float(confidence),
        "box": box,
        "inputs": inputs,
        "thresholds": thresholds,
    }
