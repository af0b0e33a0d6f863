"""The monitor stage: study.results and findings.overrides in, drift alarms out.

Stateful like fuse and qc (its changelog, `radstream.monitor.changelog`), on the shared
runtime with /healthz and /metrics, its own consumer group (`radstream-monitor`); the pure
parts are domain/agreement.py, domain/drift.py, domain/monitoring.py and streams/monitoring.py. Its
figures are global (PPV per model across sites, a device across sites), so it runs as one
process that holds every partition: one replica, never scaled out (docs/architecture.md).

An alarm is a MonitorAlarm on `monitor.alarms`, the `radstream_monitor_drift_alarm` gauge,
and, when one is configured, a post to a webhook through `alert` (`radstream stage monitor`
wires the watchdog's signed, Slack-compatible sender to it: services/monitor/alerts.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, ClassVar

from radstream.domain.keys import idempotency_key
from radstream.domain.signatures import rejection
from radstream.streams import metrics
from radstream.streams.monitoring import AlarmChange, MonitorSettings, MonitorState
from radstream.streams.kafka.topics import FINDINGS_OVERRIDES, MONITOR_ALARMS, STUDY_RESULTS
from radstream.streams.stage import Inbound, Output, Stage
from radstream.streams.state import MemoryStore, StateStore

log = logging.getLogger(__name__)

PPV_EVERY_S = 30.0  # the agreement gauges are recomputed from the whole state this often, on the timer


class MonitorStage(Stage):
    name: ClassVar[str] = "monitor"
    input_topic = STUDY_RESULTS
    extra_input_topics = (FINDINGS_OVERRIDES,)
    output_topics = (MONITOR_ALARMS,)
    stateful = True

    def __init__(self, settings: MonitorSettings | None = None, *, trusted: dict[str, Any] | None = None,
                 on_rejected: Callable[[dict[str, Any], str], None] | None = None,
                 state: StateStore | None = None) -> None:
        self.state = state if state is not None else MemoryStore()
        self.monitor = MonitorState(self.state, settings)
        self.trusted = dict(trusted or {})
        self.on_rejected = on_rejected  # an ignored verdict, as the gateway's: findings.overrides.audit
        # (kind "drift" or "recovered", group, text) -> sent somewhere; set by whoever runs the stage
        self.alert: Callable[[str, str, str], None] | None = None
        self.on_close: list[Callable[[], None]] = []
        self.untrusted = 0
        self.verdicts = 0
        self.alarms_raised = 0
        self._last_ppv = 0.0

    def process(self, event: Inbound) -> list[Output]:
        if event.topic == FINDINGS_OVERRIDES:
            why = rejection("FindingOverride", event.value, self.trusted)
            if why is not None:  # as every reader of overrides: ignored, logged, counted
                log.error("ignored override of finding %s: %s", event.value.get("finding_id"), why)
                if self.on_rejected is not None:
                    self.on_rejected(event.value, why)  # flushed before the count says so
                self.untrusted += 1
                return []
            self.monitor.add_override(event.value)
            self.verdicts += 1
            return []
        return [self._alarm(change) for change in self.monitor.add_result(event.value)]

    def on_tick(self, now_ms: int) -> list[Output]:
        if time.time() - self._last_ppv >= PPV_EVERY_S:
            self._last_ppv = time.time()
            self.monitor.expire(now_ms)
            self.publish_agreement()
        return []

    def publish_agreement(self) -> None:
        """The PPV gauges, per rule, model, site and week."""
        tables = self.monitor.snapshot()["agreement"]
        for dimension in ("rule", "model", "site", "week"):
            for key, tally in tables[dimension].items():
                if tally["ppv"] is not None:
                    metrics.monitor_ppv.labels(dimension, key).set(tally["ppv"])

    def _alarm(self, change: AlarmChange) -> Output:
        drift, group = change.drift, change.group
        metrics.monitor_drift_alarm.labels(group, change.feature).set(1 if change.raised else 0)
        if drift:
            metrics.monitor_psi.labels(group, change.feature).set(drift["psi"])
            metrics.monitor_ks.labels(group, change.feature).set(drift["ks"])
        state = "RAISED" if change.raised else "CLEARED"
        text = (f"monitor: drift {state.lower()}: {group} {change.feature} PSI {drift.get('psi', 0):.3f} "
                f"(threshold {self.monitor.settings.psi_threshold}), KS {drift.get('ks', 0):.3f} "
                f"(critical {drift.get('ks_critical', 0):.3f}), {drift.get('n_current', 0)} values "
                f"against {drift.get('n_reference', 0)}")
        if change.raised:
            self.alarms_raised += 1
        log.warning("%s", text)
        if self.alert is not None:
            self.alert("drift" if change.raised else "recovered", group, text)
        entry = self.state.get(f"group:{group}") or {}
        now = int(time.time() * 1000)
        value = {"idempotency_key": idempotency_key(group, change.feature, state, (entry.get("current") or [""])[-1]),
                 "group": group, "sites": entry.get("sites", []), "feature": change.feature, "state": state,
                 "psi": float(drift.get("psi", 0.0)), "ks": float(drift.get("ks", 0.0)),
                 "ks_critical": float(drift.get("ks_critical", 1.0)),
                 "psi_threshold": self.monitor.settings.psi_threshold,
                 "n_reference": int(drift.get("n_reference", 0)), "n_current": int(drift.get("n_current", 0)),
                 "created_at": now}
        return Output(MONITOR_ALARMS, group, value)

    def health(self) -> dict[str, Any]:
        groups = self.monitor.groups()
        return {"windows": {g: [d["reference_studies"], d["current_studies"]] for g, d in groups.items()},
                "alarms": {g: d["alarms"] for g, d in groups.items() if d["alarms"]},
                "alarms_raised": self.alarms_raised, "verdicts": self.verdicts, "overrides_untrusted": self.untrusted}

    def close(self) -> None:
        for close in self.on_close:
            close()
