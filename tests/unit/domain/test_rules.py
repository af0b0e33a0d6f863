"""Declarative rules: conditions, `also` and `unless`, live thresholds, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from radstream.domain.thresholds import ThresholdSet
from radstream.domain.fusion import FusedBox
from radstream.domain.rules import RuleError, apply_rules, parse_rules

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "rules.yaml"
MODELS = ({"nodule"}, {"demo-classifier": {"nodule"}})


def _rules():
    return parse_rules(yaml.safe_load(EXAMPLE.read_text()), *MODELS)


def _box(score: float) -> FusedBox:
    return FusedBox("nodule", score, [1.0, 2.0, 3.0, 4.0], [{"model": "det", "box": [1, 2, 3, 4], "score": score}])


def _cls(p: float) -> list[dict]:
    return [{"model": "demo-classifier", "label": "nodule", "probability": p}]


def test_box_confirmed_by_the_classifier_fires_with_everything_it_read() -> None:
    [finding] = apply_rules(_rules(), [_box(0.6)], _cls(0.7), ThresholdSet())
    assert finding["rule_id"] == "nodule-confirmed" and finding["box"] == [1.0, 2.0, 3.0, 4.0]
    assert finding["inputs"] == {"fused_box[0].score": 0.6, "demo-classifier/nodule": 0.7}
    assert finding["thresholds"] == {"rule:nodule-confirmed/min_score": 0.3,
                                     "rule:nodule-confirmed/min_classifier": 0.5}


def test_also_and_unless_gate_the_rules() -> None:
    assert apply_rules(_rules(), [_box(0.6)], _cls(0.4), ThresholdSet()) == []  # classifier disagrees
    [possible] = apply_rules(_rules(), [_box(0.1)], _cls(0.9), ThresholdSet())   # no box past 0.3
    assert possible["rule_id"] == "nodule-possible" and possible["box"] is None
    assert [f["rule_id"] for f in apply_rules(_rules(), [_box(0.5)], _cls(0.9), ThresholdSet())] == ["nodule-confirmed"]


def test_pushed_thresholds_retune_a_rule() -> None:
    strict = ThresholdSet(3, {"rule:nodule-confirmed/min_classifier": 0.8})
    assert apply_rules(_rules(), [_box(0.6)], _cls(0.7), strict) == []
    below = parse_rules({"rules": [{"id": "r", "label": "nodule", "when": {"fused_box": "nodule", "threshold": "t",
                                                                         "default": 0.2},
                                    "also": [{"classifier": "demo-classifier", "label": "nodule", "threshold": "h",
                                              "default": 0.5, "below": True}]}]}, *MODELS)
    assert apply_rules(below, [_box(0.6)], _cls(0.3), ThresholdSet())  # "classifier under h"
    assert not apply_rules(below, [_box(0.6)], _cls(0.7), ThresholdSet())


@pytest.mark.parametrize("doc,message", [
    ({}, "non-empty `rules:`"),
    ({"rules": [{"id": "a", "label": "x"}]}, "needs id, label and when"),
    ({"rules": [{"id": "a", "label": "x", "when": {"fused_box": "mass", "threshold": "t", "default": 0.5}}]},
     "no detector in force emits 'mass'"),
    ({"rules": [{"id": "a", "label": "x", "when": {"classifier": "nope", "label": "nodule", "threshold": "t",
                                                  "default": 0.5}}]}, "no classifier 'nope'"),
    ({"rules": [{"id": "a", "label": "x", "when": {"fused_box": "nodule", "default": 0.5}}]}, "needs a threshold"),
    ({"rules": [{"id": "a", "label": "x", "when": {"fused_box": "nodule", "threshold": "t", "default": 2}}]},
     "out of range"),
    ({"rules": [{"id": "a", "label": "x", "when": {"fused_box": "nodule", "threshold": "t", "default": 0.5}}] * 2},
     "defined twice"),
])
def test_bad_rules_are_refused_with_the_reason(doc, message) -> None:
    with pytest.raises(RuleError, match=message):
        parse_rules(doc, *MODELS)


def test_the_example_file_loads_through_the_config_reader(monkeypatch) -> None:
    from radstream.streams.config import Config
    from radstream.streams.stages.registry import known_threshold_keys, rules_in_force

    config = Config.from_env(env={"RADSTREAM_RULES": str(EXAMPLE)})
    from radstream.streams.stages.registry import models_in_force

    assert [r.id for r in rules_in_force(config, models_in_force(config))] == ["nodule-confirmed", "nodule-possible"]
    assert "rule:nodule-possible/box_seen" in known_threshold_keys(config)
