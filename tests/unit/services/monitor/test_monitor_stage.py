"""The monitor stage's pure side: only signed verdicts count, and an alarm is a valid MonitorAlarm
on monitor.alarms plus the gauge (its Kafka side is in tests/integration/test_monitor.py)."""

from __future__ import annotations

import numpy as np
from monitor_records import box_finding, image, override, phantom_stats, study, valid

from radstream.domain.signatures import new_signing_key, parse_trusted_keys, sign
from radstream.streams.stages.monitor import MonitorStage
from radstream.streams.monitoring import MonitorSettings
from radstream.streams import metrics
from radstream.streams.kafka.topics import FINDINGS_OVERRIDES, MONITOR_ALARMS, STUDY_RESULTS
from radstream.streams.stage import Inbound

BOX = [1.0, 1.0, 9.0, 9.0]


def test_only_verdicts_a_trusted_key_signed_count() -> None:
    key = new_signing_key("dr-a")
    stage = MonitorStage(trusted=parse_trusted_keys(key.public_line()))
    result = study("s1", "A", [image("i1", findings=[box_finding("f1", BOX)],
                                     boxes=[{"label": "nodule", "score": 0.8, "box": BOX, "sources": []}])], 1)
    stage.process(Inbound(result, topic=STUDY_RESULTS))
    forged = override("f1", "s1", "REJECTED", at=5)
    assert stage.process(Inbound(forged, topic=FINDINGS_OVERRIDES)) == []
    signed = valid("FindingOverride", sign("FindingOverride", override("f1", "s1", "CONFIRMED", at=6), key))
    stage.process(Inbound(signed, topic=FINDINGS_OVERRIDES))
    overall = stage.monitor.snapshot()["agreement"]["overall"]
    assert (overall["confirmed"], overall["rejected"], stage.untrusted) == (1, 0, 1)
    stage.publish_agreement()
    assert metrics.REGISTRY.get_sample_value("radstream_monitor_ppv", {"dimension": "rule",
                                                                        "key": "nodule-detected"}) == 1.0


def test_a_drift_alarm_is_a_monitor_alarm_record_and_a_gauge() -> None:
    rng = np.random.default_rng(11)
    stage = MonitorStage(MonitorSettings(window_studies=12))
    outputs = []
    for n in range(24):
        scale = 2.0 if n >= 12 else 1.0
        outputs += stage.process(Inbound(study(f"s{n}", "A", [image(f"i{n}", stats=phantom_stats(rng, scale))], 1),
                                         topic=STUDY_RESULTS))
    assert outputs and {o.topic for o in outputs} == {MONITOR_ALARMS}
    alarm = valid("MonitorAlarm", outputs[0].value)
    assert alarm["state"] == "RAISED" and alarm["sites"] == ["A"] and alarm["n_current"] == 12
    assert {o.key for o in outputs} == {"site:A", "device:Acme/CR-1"}
    assert metrics.REGISTRY.get_sample_value("radstream_monitor_drift_alarm",
                                             {"group": "site:A", "feature": "pixel_mean"}) == 1.0
    assert stage.health()["alarms"]["site:A"]
