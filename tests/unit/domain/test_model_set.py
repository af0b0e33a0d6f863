"""The model set in force as a `models` record on the config topic: validated like every record,
never part of the effective thresholds (so a promotion leaves results' config_version alone)."""

from __future__ import annotations

import pytest

from radstream.domain.thresholds import (
    MODEL_SET_SCOPE,
    ThresholdBook,
    ThresholdError,
    model_set_of,
    model_set_values,
    validate_document,
)


def _record(version: int, scope: str, values: dict) -> dict:
    return {"version": version, "scope": scope, "author": "lead", "reason": "r", "created_at": 1, "values": values}


def test_the_model_set_round_trips_and_is_checked() -> None:
    values = model_set_values({"demo-classifier": "1", "demo-frcnn": "2"})
    assert values == {"model:demo-classifier/1": 1.0, "model:demo-frcnn/2": 1.0}
    assert model_set_of(values) == {"demo-classifier": "1", "demo-frcnn": "2"}
    with pytest.raises(ThresholdError, match="two versions"):
        model_set_of({"model:a/1": 1.0, "model:a/2": 1.0})
    with pytest.raises(ThresholdError, match="a version in force is 1"):
        model_set_of({"model:a/1": 0.5})
    with pytest.raises(ThresholdError, match="invalid key"):
        model_set_of({"rule:a/1": 1.0})
    # `thresholds push` (which passes the registry's keys) cannot set it: promote does
    with pytest.raises(ThresholdError, match="models promote"):
        validate_document(MODEL_SET_SCOPE, values, known_keys={"model:demo-classifier/nodule"})


def test_the_model_set_is_followed_but_not_a_threshold() -> None:
    book = ThresholdBook()
    assert book.apply(_record(1, "global", {"rule:nodule-detected/min_score": 0.4}))
    assert book.apply(_record(2, MODEL_SET_SCOPE, model_set_values({"demo-classifier": "1"})))
    assert book.model_set() == {"demo-classifier": "1"} and book.model_set_version == 2
    assert book.effective().version == 1 and book.effective().values == {"rule:nodule-detected/min_score": 0.4}
    assert book.version == 2  # the config topic's version in force, as every stage reports it
    assert not book.apply(_record(3, MODEL_SET_SCOPE, {"model:demo-classifier/1": 1.0, "model:demo-classifier/2": 1.0}))
    assert book.model_set() == {"demo-classifier": "1"} and "two versions" in (book.last_error or "")
