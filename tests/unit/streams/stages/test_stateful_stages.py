"""fuse and qc as pure logic over a state store, without a broker (their Kafka side is in tests/integration)."""

from __future__ import annotations

import pytest

from radstream.domain.thresholds import ThresholdBook
from radstream.domain.rules import default_rules
from radstream.streams.stage import Inbound
from radstream.streams.stages.fuse import ExpectedModel, FuseStage
from radstream.streams.stages.qc import QcStage
from radstream.streams.state import MemoryStore
from tests.factories import inference_result

DET = {"label": "nodule", "score": 0.9, "box": [10.0, 10.0, 30.0, 30.0]}


def _fuse(deadline_s: float = 30.0) -> FuseStage:
    book = ThresholdBook()
    assert book.apply({"version": 7, "scope": "rule:nodule-suspected", "author": "t", "reason": "r",
                       "created_at": 0, "values": {"rule:nodule-suspected/min_probability": 0.6}})
    return FuseStage(
        [ExpectedModel("det", "detector"), ExpectedModel("cls", "classifier")],
        default_rules({"det": {"nodule": 0.5}}, {"cls": {"nodule": 0.5}}),
        deadline_s=deadline_s, config=book, state=MemoryStore(),
    )


def test_fuse_emits_once_when_every_model_answered_and_ignores_redelivery() -> None:
    stage = _fuse()
    assert stage.process(Inbound(inference_result("det", "detector", detections=[DET]))) == []
    out = stage.process(Inbound(inference_result("cls", "classifier", classifications={"nodule": 0.7})))
    assert len(out) == 1
    fused = out[0].value
    assert out[0].key == "1.2.3" and fused["missing_models"] == [] and fused["config_version"] == 7
    assert fused["fused_boxes"][0]["sources"][0]["model"] == "det"
    rules = sorted(f["rule_id"] for f in fused["findings"])
    assert rules == ["nodule-detected", "nodule-suspected"]
    suspected = next(f for f in fused["findings"] if f["rule_id"] == "nodule-suspected")
    assert suspected["thresholds"] == {"rule:nodule-suspected/min_probability": 0.6}
    assert suspected["inputs"] == {"cls/nodule": 0.7}
    assert stage.process(Inbound(inference_result("cls", "classifier", classifications={"nodule": 0.7}))) == []


def test_an_urgent_image_stays_urgent_through_fuse_its_partial_too() -> None:
    """fuse carries `priority`, so the runtime's lane_of sends the fused result to
    findings.fused.stat, also when the deadline emits it from the state (D-057)."""
    from radstream.streams.codec import Codec
    from radstream.streams.kafka.topics import lane_of

    stage = _fuse(deadline_s=0.0)
    first = inference_result("det", "detector", detections=[DET], priority="stat")
    stage.process(Inbound(first))
    [partial] = stage.on_tick(first["arrived_at"] + 10_000)
    assert partial.value["priority"] == "stat" and lane_of(partial.topic, partial.value) == "findings.fused.stat"
    [update] = stage.process(Inbound(inference_result("cls", "classifier", priority="stat")))
    assert update.value["priority"] == "stat" and lane_of(update.topic, update.value) == "findings.fused.stat"
    Codec().encode("FindingsFused", update.value)


def test_a_state_from_before_priority_was_carried_reads_as_routine() -> None:
    """A changelog written before D-057 holds results without `priority`: the contract's default."""
    from radstream.streams.codec import Codec

    stage = _fuse()
    old = inference_result("det", "detector", detections=[DET])
    del old["priority"]
    stage.process(Inbound(old))
    [out] = stage.process(Inbound(inference_result("cls", "classifier")))
    assert "priority" not in out.value
    _, decoded = Codec().decode(Codec().encode("FindingsFused", out.value))
    assert decoded["priority"] == "routine"


def test_classifier_below_threshold_fires_no_rule() -> None:
    stage = _fuse()
    stage.process(Inbound(inference_result("det", "detector")))
    out = stage.process(Inbound(inference_result("cls", "classifier", classifications={"nodule": 0.55})))
    assert out[0].value["findings"] == []


def test_fuse_deadline_gives_a_partial_naming_the_missing_model_then_an_update() -> None:
    stage = _fuse(deadline_s=0.0)
    first = inference_result("det", "detector", detections=[DET])
    stage.process(Inbound(first))
    partial = stage.on_tick(first["arrived_at"] + 10_000)
    assert len(partial) == 1 and partial[0].value["missing_models"] == ["cls"]
    assert stage.on_tick(first["arrived_at"] + 20_000) == []  # not emitted twice
    update = stage.process(Inbound(inference_result("cls", "classifier", classifications={"nodule": 0.1})))
    assert len(update) == 1 and update[0].value["missing_models"] == []
    assert update[0].value["idempotency_key"] != partial[0].value["idempotency_key"]


def _fused(sop: str, study: str = "9.9", expected: int | None = 2, **meta) -> dict:
    stage = _fuse()
    det = inference_result("det", "detector", sop=sop, study=study, expected_instances=expected)
    cls = inference_result("cls", "classifier", sop=sop, study=study, expected_instances=expected,
                           classifications={"nodule": 0.9})
    for res in (det, cls):
        res["metadata"].update(meta)
    stage.process(Inbound(det))
    return stage.process(Inbound(cls))[0].value


def _qc(quiet_s: float = 10.0) -> QcStage:
    return QcStage(quiet_period_s=quiet_s, state=MemoryStore())


def test_qc_finalises_when_the_expected_count_is_reached_in_any_order() -> None:
    stage = _qc()
    [update] = stage.process(Inbound(_fused("9.9.2")))
    assert not update.value["final"] and update.value["completion"] == "in_progress"
    assert [i["sop_uid"] for i in update.value["images"]] == ["9.9.2"]
    out = stage.process(Inbound(_fused("9.9.1")))
    assert len(out) == 1
    result = out[0].value
    assert result["final"] and result["completion"] == "expected_count_reached"
    assert [i["sop_uid"] for i in result["images"]] == ["9.9.1", "9.9.2"]
    assert result["images"][0]["status"] == "ANALYSED" and result["images"][0]["findings"]


def test_qc_quiet_period_and_header_gating() -> None:
    stage = _qc(quiet_s=0.0)
    fused = _fused("9.9.1", expected=None, body_part="HAND")
    [update] = stage.process(Inbound(fused))
    assert not update.value["final"]  # no expected count: an update until the quiet period ends
    out = stage.on_tick(fused["arrived_at"] + 60_000)
    assert len(out) == 1 and out[0].value["completion"] == "quiet_period_elapsed"
    image = out[0].value["images"][0]
    assert image["status"] == "NOT_ANALYSABLE" and image["findings"] == []
    assert "body part HAND" in image["qc_flags"][0]


def test_fuse_calibrates_before_fusion_and_rules_and_keeps_the_raw_values() -> None:
    temp = {"method": "temperature", "temperature": 0.5}
    stage = FuseStage([ExpectedModel("det", "detector", calibration=temp), ExpectedModel("cls", "classifier",
                                                                                          calibration=temp)],
                      default_rules({"det": {"nodule": 0.5}}, {"cls": {"nodule": 0.5}}), state=MemoryStore())
    stage.process(Inbound(inference_result("det", "detector", detections=[{**DET, "score": 0.7}])))
    [out] = stage.process(Inbound(inference_result("cls", "classifier", classifications={"nodule": 0.6})))
    fused = out.value
    # logit(0.6) / 0.5 -> 0.6923...; logit(0.7) / 0.5 -> 0.8448...
    [cls] = fused["classifier_outputs"]
    assert cls["calibrated"] and cls["raw_probability"] == 0.6 and abs(cls["probability"] - 0.6923) < 1e-3
    [box] = fused["fused_boxes"]
    assert abs(box["sources"][0]["score"] - 0.8448) < 1e-3 and box["sources"][0]["raw_score"] == 0.7
    assert {f["rule_id"] for f in fused["findings"]} == {"nodule-detected", "nodule-suspected"}


@pytest.mark.parametrize("meta,flag", [
    ({"view_position": "LL"}, "view position LL is outside"),
    ({"body_part": "HAND", "laterality": None}, "laterality missing for a paired body part (HAND)"),
    ({"laterality": "R", "series_laterality": "L"}, "laterality inconsistent: image R, series L"),
])
def test_view_position_and_laterality_checks(meta, flag) -> None:
    stage = _qc()
    [out] = stage.process(Inbound(_fused("9.9.1", expected=1, **meta)))
    image = out.value["images"][0]
    assert image["status"] == "NOT_ANALYSABLE" and any(f.startswith(flag) for f in image["qc_flags"]), image["qc_flags"]


def test_a_chest_pa_without_laterality_passes_the_header_checks() -> None:
    [out] = _qc().process(Inbound(_fused("9.9.1", expected=1, laterality=None, series_laterality=None)))
    assert out.value["images"][0]["qc_flags"] == []


def test_a_study_belongs_to_its_first_site_even_after_its_state_is_dropped() -> None:
    from radstream.domain.errors import Rejected

    stage = QcStage(quiet_period_s=0.0, state=MemoryStore(), owner_retention_s=3600)
    first = {**_fused("9.9.1", expected=None), "site": "SITE_A"}
    stage.process(Inbound(first))
    with pytest.raises(Rejected) as refused:
        stage.process(Inbound({**_fused("9.9.2", expected=None), "site": "SITE_B"}))
    assert refused.value.code == "site_conflict" and "SITE_A" in refused.value.reason
    assert list(stage.state.get("9.9")["images"]) != [] and stage.state.get("9.9")["site"] == "SITE_A"
    t0 = first["arrived_at"]
    [final] = stage.on_tick(t0 + 60_000)
    assert final.value["site"] == "SITE_A" and [i["sop_uid"] for i in final.value["images"]] == ["9.9.1"]
    stage.on_tick(t0 + 10 ** 7)  # past the study's retention: only its owner is kept
    assert stage.state.get("9.9") == {"owner_only": True, "site": "SITE_A", "last_ms": stage.state.get("9.9")["last_ms"]}
    with pytest.raises(Rejected):
        stage.process(Inbound({**_fused("9.9.3", expected=None), "site": "SITE_B"}))
    [again] = stage.process(Inbound({**_fused("9.9.4", expected=None), "site": "SITE_A"}))  # the owner: a new study
    assert [i["sop_uid"] for i in again.value["images"]] == ["9.9.4"]
    stage.on_tick(t0 + 10 ** 7)
    stage.state.put("9.9", {"owner_only": True, "site": "SITE_A", "last_ms": t0})
    stage.on_tick(t0 + 3600 * 1000 + 1)  # past the owner's retention: forgotten
    assert stage.state.get("9.9") is None
