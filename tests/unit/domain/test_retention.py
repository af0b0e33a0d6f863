"""The retention rule: raw blobs of final (and exported) studies past their age, derived by age."""

from __future__ import annotations

import pytest
from radstream.domain.retention import (
    FinalResult,
    StoredBlob,
    parse_duration,
    plan_retention,
)

H = 3600.0
NOW = 1_000_000.0


def blob(sha: str, age_s: float) -> StoredBlob:
    return StoredBlob(sha, f"/b/{sha}", 10, NOW - age_s)


def plan(stored, raw, finals):
    return plan_retention(stored, raw, finals, NOW, raw_after_s=72 * H, derived_after_s=30 * 24 * H)


def test_raw_blob_of_an_old_final_study_goes_and_of_a_pending_study_stays() -> None:
    p = plan([blob("a", 100 * H), blob("b", 100 * H)], {"a": {"S1"}, "b": {"S2"}}, {"S1": FinalResult(NOW - 80 * H)})
    assert [(d.blob.sha256, d.area) for d in p.deletions] == [("a", "raw")]
    assert p.kept_raw_not_final == 1


def test_final_but_recent_or_unexported_raw_blobs_stay() -> None:
    finals = {"S1": FinalResult(NOW - 10 * H), "S2": FinalResult(NOW - 80 * H, exported=False)}
    p = plan([blob("a", 100 * H), blob("b", 100 * H)], {"a": {"S1"}, "b": {"S2"}}, finals)
    assert p.deletions == [] and p.kept_raw_recent == 2


def test_a_raw_blob_shared_with_a_pending_study_stays() -> None:
    p = plan([blob("a", 100 * H)], {"a": {"S1", "S2"}}, {"S1": FinalResult(NOW - 80 * H)})
    assert p.deletions == [] and p.kept_raw_not_final == 1


def test_derived_blobs_go_by_age_alone() -> None:
    p = plan([blob("old", 31 * 24 * H), blob("new", 29 * 24 * H)], {}, {})
    assert [(d.blob.sha256, d.area) for d in p.deletions] == [("old", "derived")]
    assert p.kept_derived_recent == 1


@pytest.mark.parametrize("text, seconds", [("72h", 72 * H), ("30d", 30 * 24 * H), ("90s", 90), ("1.5m", 90)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["72", "3w", "", "-1h", "h"])
def test_bad_durations_name_the_form(text: str) -> None:
    with pytest.raises(ValueError, match="e.g. 72h"):
        parse_duration(text)


def test_a_dead_lettered_arrivals_raw_blob_stays_for_a_replay() -> None:
    p = plan_retention([blob("a", 100 * H), blob("b", 100 * H)], {"a": {"S1"}, "b": {"S1"}},
                       {"S1": FinalResult(NOW - 80 * H)}, NOW, 72 * H, 30 * 24 * H, dead_lettered=frozenset({"b"}))
    assert [d.blob.sha256 for d in p.deletions] == ["a"] and p.kept_raw_dead_lettered == 1


def test_areas_decide_raw_and_derived_and_an_unnamed_raw_blob_stays() -> None:
    old = 100 * 24 * H
    stored = [StoredBlob("r", "/b/raw/r", 10, NOW - old, "raw"),          # raw, named by no arrival
              StoredBlob("d", "/b/derived/d", 10, NOW - old, "derived"),  # derived, old
              StoredBlob("x", "/b/derived/x", 10, NOW - old, "derived"),  # derived copy of a raw's content
              StoredBlob("legacy", "/b/legacy", 10, NOW - old)]            # before the split, unnamed
    p = plan(stored, {"x": {"S1"}}, {})
    assert sorted((d.blob.sha256, d.area) for d in p.deletions) == [("d", "derived"), ("legacy", "derived"),
                                                                     ("x", "derived")]
    assert p.kept_raw_unnamed == 1 and p.kept_raw_not_final == 0


def test_a_blob_from_before_the_split_named_by_an_arrival_is_still_raw() -> None:
    p = plan([StoredBlob("a", "/b/a", 10, NOW - 100 * H)], {"a": {"S1"}}, {})
    assert p.deletions == [] and p.kept_raw_not_final == 1
