"""The monitor's logic without a broker: PPV and Wilson intervals from 20 overrides against a hand
computation, and drift alarms for the one site and device whose exposure scale changed."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from monitor_records import box_finding, classifier_finding, image, override, phantom_stats, study

from radstream.domain.agreement import wilson_interval
from radstream.streams.monitoring import MonitorSettings, MonitorState
from radstream.streams.state import MemoryStore

W48 = int(dt.datetime(2026, 11, 25, 12, tzinfo=dt.timezone.utc).timestamp() * 1000)  # ISO week 2026-W48
W49 = int(dt.datetime(2026, 12, 2, 12, tzinfo=dt.timezone.utc).timestamp() * 1000)  # 2026-W49
BOX = [10.0, 10.0, 30.0, 30.0]
FRCNN_BOX = [{"label": "nodule", "score": 0.8, "box": BOX,
              "sources": [{"model": "demo-frcnn", "box": BOX, "score": 0.8, "raw_score": 0.7}]}]

# finding -> (kind, site, week, verdict, reason); verdict None: nobody judged it.
FINDINGS = {
    **{f"d{i}": ("box", "S1", W48 if i <= 4 else W49, "CONFIRMED" if i <= 6 else "REJECTED", "artefact")
       for i in range(1, 9)},
    "d9": ("box", "S2", W48, "CONFIRMED", ""), "d10": ("box", "S2", W48, "CONFIRMED", ""),
    "d11": ("box", "S2", W48, "REJECTED", "artefact"), "d12": ("box", "S2", W48, "REJECTED", ""),
    **{f"d{i}": ("box", "S1", W49, None, "") for i in range(13, 17)},
    **{f"s{i}": ("classifier", "S2", W49, "CONFIRMED" if i <= 3 else "REJECTED", "normal anatomy")
       for i in range(1, 9)},
}


def _wilson_by_quadratic(k: int, n: int, z: float = 1.959963984540054) -> list[float]:
    """The interval's ends as the roots of (p_hat - p)^2 = z^2 p (1 - p) / n: a second derivation."""
    p_hat = k / n
    roots = np.roots([1 + z * z / n, -(2 * p_hat + z * z / n), p_hat * p_hat])
    return sorted(float(r) for r in roots)


@pytest.fixture(scope="module")
def tables() -> dict:
    state = MonitorState(MemoryStore())
    for fid, (kind, site, week, verdict, reason) in FINDINGS.items():
        if kind == "box":
            img = image(f"{fid}.sop", findings=[box_finding(fid, BOX)], boxes=FRCNN_BOX)
        else:
            img = image(f"{fid}.sop", findings=[classifier_finding(fid)],
                        outputs=[{"model": "demo-classifier", "label": "nodule", "probability": 0.9,
                                  "calibrated": False, "raw_probability": 0.9}])
        if fid == "d5":  # a verdict that arrives before its result, then a later one that replaces it
            state.add_override(override(fid, f"{fid}.study", "REJECTED", "too early", at=week + 1))
        state.add_result(study(f"{fid}.study", site, [img], week, final=False))  # an update, then the final
        state.add_result(study(f"{fid}.study", site, [img], week))
        if verdict:
            state.add_override(override(fid, f"{fid}.study", verdict, reason if verdict == "REJECTED" else "",
                                        at=week + 2))
    state.add_override(override("d1", "d1.study", "REJECTED", "stale", at=1))  # older than d1's verdict: ignored
    return state.snapshot()["agreement"]


# (table, key) -> confirmed, rejected, findings, counted by hand from FINDINGS above
HAND = {
    ("overall", None): (11, 9, 24),
    ("rule", "nodule-detected"): (8, 4, 16), ("rule", "nodule-suspected"): (3, 5, 8),
    ("model", "demo-frcnn"): (8, 4, 16), ("model", "demo-classifier"): (3, 5, 8),
    ("site", "S1"): (6, 2, 12), ("site", "S2"): (5, 7, 12),
    ("week", "2026-W48"): (6, 2, 8), ("week", "2026-W49"): (5, 7, 16),
}


@pytest.mark.parametrize(("table", "key"), sorted(HAND, key=str))
def test_ppv_and_wilson_interval_equal_the_hand_computation(tables: dict, table: str, key: str | None) -> None:
    got = tables[table] if key is None else tables[table][key]
    confirmed, rejected, findings = HAND[(table, key)]
    judged = confirmed + rejected
    assert (got["confirmed"], got["rejected"], got["findings"]) == (confirmed, rejected, findings)
    assert got["ppv"] == pytest.approx(confirmed / judged)
    assert got["override_rate"] == pytest.approx(judged / findings)
    assert got["ppv_ci95"] == pytest.approx(_wilson_by_quadratic(confirmed, judged), abs=1e-9)


def test_wilson_interval_worked_by_hand() -> None:
    # 8 of 12: centre (0.6667 + 1.9600^2 / 24) / (1 + 1.9600^2 / 12) = 0.6262, half-width 0.2356
    assert wilson_interval(8, 12) == pytest.approx((0.3906, 0.8619), abs=1e-4)
    # 3 of 8: centre 0.4156, half-width 0.2787
    assert wilson_interval(3, 8) == pytest.approx((0.1368, 0.6943), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0) and wilson_interval(5, 5)[1] == 1.0


def test_rejection_reasons_are_counted_as_given(tables: dict) -> None:
    assert tables["overall"]["rejection_reasons"] == {"artefact": 3, "(no reason given)": 1, "normal anatomy": 5}
    assert tables["site"]["S1"]["rejection_reasons"] == {"artefact": 2}


def test_scoped_by_site_shows_only_that_sites_findings() -> None:
    state = MonitorState(MemoryStore())
    state.add_result(study("a", "S1", [image("a1", findings=[box_finding("fa", BOX)], boxes=FRCNN_BOX)], W48))
    state.add_result(study("b", "S2", [image("b1", findings=[box_finding("fb", BOX)], boxes=FRCNN_BOX)], W48))
    state.add_override(override("fa", "a", "CONFIRMED"))
    state.add_override(override("fb", "b", "REJECTED"))
    scoped = state.snapshot(sites=frozenset({"S1"}))["agreement"]
    assert set(scoped["site"]) == {"S1"} and scoped["overall"]["confirmed"] == 1 and scoped["overall"]["rejected"] == 0


def _drift_run(change: str) -> tuple[MonitorState, list]:
    """60 studies from site A (device Acme/CR-1) and from site B (device Other/DR-9), then 60 more of
    each in which site A's images change: exposure scale x1.8, or another manufacturer."""
    rng = np.random.default_rng(7)
    state = MonitorState(MemoryStore(), MonitorSettings(window_studies=30))
    changes = []
    for n in range(120):
        late = n >= 60
        a_scale = 1.8 if late and change == "exposure" else 1.0
        a_device = ("Zeta", "CR-7") if late and change == "manufacturer" else ("Acme", "CR-1")
        a_stats = phantom_stats(rng, a_scale if change == "exposure" else (0.5 if late else 1.0))
        for site, stats, (manufacturer, model) in (("A", a_stats, a_device),
                                                   ("B", phantom_stats(rng), ("Other", "DR-9"))):
            img = image(f"{site}{n}.1", stats=stats, manufacturer=manufacturer, model=model)
            changes += state.add_result(study(f"{site}{n}", site, [img], W49 + n))
    return state, changes


def test_a_changed_exposure_scale_alarms_for_that_site_and_device_only() -> None:
    state, changes = _drift_run("exposure")
    raised = {(c.group, c.feature) for c in changes if c.raised}
    assert {g for g, _ in raised} == {"site:A", "device:Acme/CR-1"}
    assert ("site:A", "pixel_mean") in raised and ("device:Acme/CR-1", "pixel_p99") in raised
    groups = state.groups()
    assert groups["site:A"]["alarms"] and groups["device:Acme/CR-1"]["alarms"]
    assert groups["site:B"]["alarms"] == [] and groups["device:Other/DR-9"]["alarms"] == []
    assert groups["site:B"]["drift"]["pixel_mean"]["psi"] < 0.25  # judged, and quiet
    mean = groups["site:A"]["drift"]["pixel_mean"]
    assert mean["psi"] >= 0.25 and mean["ks"] >= mean["ks_critical"] and mean["n_current"] == 30
    # the preprocess profile's [0, 1] image is robust to a pure scale: its stats do not move
    assert not any(f.startswith("profile:") for _, f in raised)


def test_another_manufacturer_alarms_for_the_site_not_for_the_new_device() -> None:
    """Site A's second half comes from a device whose pixels run at half the scale: the site's
    windows drift; the new device starts its own reference, so it cannot alarm yet."""
    state, changes = _drift_run("manufacturer")
    raised = {c.group for c in changes if c.raised}
    assert raised == {"site:A"}
    groups = state.groups()
    assert groups["device:Zeta/CR-7"]["reference_studies"] == 30 and groups["device:Zeta/CR-7"]["current_studies"] == 30
    assert groups["device:Acme/CR-1"]["current_studies"] == 30 and not groups["device:Acme/CR-1"]["alarms"]


def test_a_pinned_reference_replaces_the_first_studies_and_a_redelivered_study_counts_once() -> None:
    rng = np.random.default_rng(3)
    first = MonitorState(MemoryStore(), MonitorSettings(window_studies=12))  # KS at 5 vs 5 could never reject
    for n in range(12):
        first.add_result(study(f"r{n}", "A", [image(f"r{n}.1", stats=phantom_stats(rng))], W49))
    pinned = first.reference_windows()
    assert len(pinned["site:A"]["pixel_mean"]) == 12
    state = MonitorState(MemoryStore(), MonitorSettings(window_studies=12, reference=pinned))
    late = study("x0", "A", [image("x0.1", stats=phantom_stats(rng, 2.0))], W49)
    state.add_result(late)
    state.add_result(late)  # redelivered: once
    assert state.groups()["site:A"]["current_studies"] == 1 and state.groups()["site:A"]["pinned_reference"]
    assert state.groups()["site:A"]["drift"] == {}  # not judged before the current window is full
    for n in range(1, 12):
        state.add_result(study(f"x{n}", "A", [image(f"x{n}.1", stats=phantom_stats(rng, 2.0))], W49))
    assert "pixel_mean" in state.groups()["site:A"]["alarms"]
