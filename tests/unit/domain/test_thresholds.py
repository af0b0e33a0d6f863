"""ThresholdKey: the two kinds, spelled byte for byte as threshold files and findings have them."""

from __future__ import annotations

import pytest

from radstream.domain.rules import default_rule_threshold, default_rules, parse_rules
from radstream.domain.thresholds import KEY_RE, ThresholdError, ThresholdKey, ThresholdSet, validate_document


def test_the_two_kinds_render_as_on_the_wire() -> None:
    assert str(ThresholdKey.model_label("demo-qc", "underexposed")) == "model:demo-qc/underexposed"
    assert str(ThresholdKey.rule("nodule-detected", "min_score")) == "rule:nodule-detected/min_score"
    for key in (ThresholdKey.model_label("m.1_a", "l-2"), ThresholdKey.rule("r", "t")):
        assert KEY_RE.match(str(key))


def test_the_kind_says_which_meaning() -> None:
    model = ThresholdKey.model_label("demo-frcnn", "nodule")
    rule = ThresholdKey.rule("nodule-detected", "min_score")
    assert (model.kind, model.owner, model.name) == ("model", "demo-frcnn", "nodule")
    assert (rule.kind, rule.owner, rule.name) == ("rule", "nodule-detected", "min_score")
    assert model != ThresholdKey.rule("demo-frcnn", "nodule")  # same parts, other meaning
    assert len({model, ThresholdKey.model_label("demo-frcnn", "nodule")}) == 1  # frozen: a set member


def test_a_threshold_set_reads_a_key_or_its_string() -> None:
    values = ThresholdSet(3, {"model:demo-qc/rotated": 0.7})
    assert values.get(ThresholdKey.model_label("demo-qc", "rotated"), 0.5) == 0.7
    assert values.get("model:demo-qc/rotated", 0.5) == 0.7
    assert values.get(ThresholdKey.rule("demo-qc", "rotated"), 0.5) == 0.5  # a rule key is another threshold


def test_a_scope_may_set_only_its_own_kind_of_key() -> None:
    validate_document("model:demo-qc", {str(ThresholdKey.model_label("demo-qc", "rotated")): 0.6})
    with pytest.raises(ThresholdError, match="belongs to another scope"):
        validate_document("model:demo-qc", {str(ThresholdKey.rule("demo-qc", "rotated")): 0.6})


def test_rules_read_rule_keys() -> None:
    rules = default_rules({"det": {"nodule": 0.3}}, {"cls": {"effusion": 0.6}})
    assert [c.threshold_key for r in rules for c in r.conditions] == [
        "rule:nodule-detected/min_score", "rule:effusion-suspected/min_probability"]
    assert rules[0].when.threshold_key == str(default_rule_threshold("nodule", "detected"))
    assert [r.id for r in rules] == ["nodule-detected", "effusion-suspected"]
    parsed = parse_rules({"rules": [{"id": "n2", "label": "nodule",
                                     "when": {"fused_box": "nodule", "threshold": "t", "default": 0.4}}]},
                         {"nodule"}, {})
    assert parsed[0].when.threshold_key == "rule:n2/t"
