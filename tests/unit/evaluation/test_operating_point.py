"""The sweep's operating-point picker and the threshold file it writes."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from radstream.evaluation.inputs import EvaluationInputError
from radstream.evaluation.operating_point import (
    parse_pick, pick_operating_point, threshold_key, write_threshold_file)

# 20 positives scored 0.05..1.00 step 0.05 and 20 negatives 0.02..0.40 step 0.02 (constructed by hand).
POS = np.round(np.arange(1, 21) * 0.05, 2)
NEG = np.round(np.arange(1, 21) * 0.02, 2)
TRUTH = np.r_[np.ones(20, bool), np.zeros(20, bool)]
SCORES = np.r_[POS, NEG]


def test_max_specificity_at_sensitivity_95_is_the_highest_threshold_keeping_19_of_20() -> None:
    # Sensitivity >= 0.95 needs the 19 positives >= 0.10, so the threshold can be at most 0.10;
    # at 0.10 the negatives >= 0.10 are 0.10..0.40 (16 of them): specificity 4/20.
    # Ties: none above 0.10 qualifies; 0.10 has the best specificity of the feasible ones.
    p = pick_operating_point(parse_pick("nodule:max_specificity@sensitivity>=0.95"), TRUTH, SCORES)
    assert p["threshold"] == pytest.approx(0.10)
    assert p["sensitivity"] == pytest.approx(0.95) and p["specificity"] == pytest.approx(0.20)
    assert (p["tp"], p["fp"], p["tn"], p["fn"]) == (19, 16, 4, 1)


def test_max_sensitivity_at_specificity_1_and_ties_go_to_youden_then_lower_threshold() -> None:
    # Specificity 1 needs threshold > 0.40: the lowest score above is 0.45 (sensitivity 12/20).
    p = pick_operating_point(parse_pick("nodule:max_sensitivity@specificity>=1"), TRUTH, SCORES)
    assert p["threshold"] == pytest.approx(0.45) and p["sensitivity"] == pytest.approx(0.6)
    # Unconstrained max_specificity: every threshold > 0.40 has specificity 1; Youden picks the lowest, 0.45.
    assert pick_operating_point(parse_pick("nodule:max_specificity"), TRUTH, SCORES)["threshold"] == pytest.approx(0.45)


def test_infeasible_constraint_gives_none() -> None:
    assert pick_operating_point(parse_pick("nodule:max_sensitivity@ppv>=1.01"), TRUTH, SCORES) is None


@pytest.mark.parametrize("text", ["nodule", "nodule:min_specificity", "nodule:max_specificity@auc>=0.5",
                                  "nodule:max_specificity@sensitivity=0.9", ":max_f1"])
def test_bad_pick_is_an_input_error(text: str) -> None:
    with pytest.raises(EvaluationInputError):
        parse_pick(text)


def test_threshold_file_uses_the_keys_rules_read(tmp_path) -> None:
    from radstream.domain.rules import default_rules

    rules = {r.label + "/" + r.when.kind: r.when.threshold_key
             for r in default_rules({"det": {"mass": 0.5}}, {"cls": {"nodule": 0.5}})}
    assert threshold_key("nodule", "suspected") == rules["nodule/classifier"]
    assert threshold_key("mass", "detected") == rules["mass/fused_box"]
    path = tmp_path / "t.yaml"
    write_threshold_file(path, {threshold_key("nodule", "suspected"): 0.1}, ["a note"])
    assert yaml.safe_load(path.read_text()) == {"scope": "global",
                                                 "values": {"rule:nodule-suspected/min_probability": 0.1}}


def test_picked_threshold_file_is_accepted_by_thresholds_push(tmp_path) -> None:
    """What the picker writes passes the exact validation `radstream thresholds push` applies,
    against the rules of the models in force."""
    from radstream.services.thresholds import read_file
    from radstream.streams.config import Config
    from radstream.domain.thresholds import validate_document
    from radstream.streams.stages.registry import known_threshold_keys

    path = tmp_path / "picked.yaml"
    write_threshold_file(path, {threshold_key("nodule", "suspected"): 0.42, threshold_key("nodule", "detected"): 0.3},
                         ["picked: max specificity at sensitivity >= 0.95"])
    keys = known_threshold_keys(Config.from_env(env={}))
    for doc in read_file(path):
        validate_document(doc["scope"], doc["values"], keys)
