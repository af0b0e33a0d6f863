"""The monitor's state and what it concludes, over any StateStore (and its settings): the stage keeps it in its
changelog, `monitor report` and the gateway's /monitoring rebuild it in memory from the topics.

Keys: `finding:<id>` (what produced a finding, and the verdict on it once one arrives; an
override may come first); `group:<name>` (a site's or a device's drift windows: the ids of its
first `window` studies, the reference, unless one is pinned, and of its last `window` studies,
the current window; the last judgement); `values:<name>|<study>` (one study's feature values in
that group). A study thus writes one small entry per group, not the whole window again: at 200
studies and 20 features a window is about 230 KiB of JSON, which a changelog record per study
would repeat. Only final results feed the windows, once per study; every result feeds the findings.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from dataclasses import dataclass
from typing import Any

from radstream.domain.agreement import JudgedFinding, agreement
from radstream.domain.drift import DEFAULT_PSI_THRESHOLD, feature_drift
from radstream.domain.monitoring import device_group, image_features, result_findings, site_group
from radstream.streams.config import Config
from radstream.streams.state import StateStore

DEFAULT_WINDOW_STUDIES = 200
DEFAULT_RETENTION_DAYS = 180.0


@dataclass(frozen=True)
class MonitorSettings:
    window_studies: int = DEFAULT_WINDOW_STUDIES  # reference = the group's first N studies; current = its last N
    psi_threshold: float = DEFAULT_PSI_THRESHOLD
    retention_days: float = DEFAULT_RETENTION_DAYS  # findings older than this are forgotten
    reference: dict[str, dict[str, list[float]]] | None = None  # pinned: group -> feature -> values ("*": any)


@dataclass(frozen=True)
class AlarmChange:
    """A feature of a group crossed into alarm (raised) or back (cleared)."""

    group: str
    feature: str
    raised: bool
    drift: dict[str, Any]


class MonitorState:
    def __init__(self, store: StateStore, settings: MonitorSettings | None = None) -> None:
        self.store = store
        self.settings = settings or MonitorSettings()

    # -- input ------------------------------------------------------------------------
    def add_result(self, result: dict[str, Any]) -> list[AlarmChange]:
        """One StudyResult: its findings indexed; if final, its images into their groups' windows."""
        for finding in result_findings(result):
            key = f"finding:{finding['finding_id']}"
            entry = self.store.get(key) or {}
            self.store.put(key, {**entry, **finding})
        if not result.get("final"):
            return []
        per_group: dict[str, dict[str, list[float]]] = {}
        for image in result["images"]:
            features = image_features(image)
            for group in (site_group(result.get("site") or ""), device_group(image)):
                values = per_group.setdefault(group, {})
                for name, value in features.items():
                    values.setdefault(name, []).append(value)
        changes: list[AlarmChange] = []
        for group, values in per_group.items():
            changes += self._add_study(group, result["study_uid"], result.get("site") or "", values)
        return changes

    def add_override(self, override: dict[str, Any]) -> None:
        """One signed FindingOverride (the caller checks the signature); the latest verdict wins."""
        key = f"finding:{override['finding_id']}"
        entry = self.store.get(key) or {"finding_id": override["finding_id"], "study_uid": override["study_uid"]}
        if entry.get("verdict_at", -1) > override["created_at"]:
            return  # an older verdict redelivered
        entry.update(verdict=override["verdict"], reason=override.get("reason") or "", by=override["by"],
                     verdict_at=override["created_at"])
        self.store.put(key, entry)

    def expire(self, now_ms: int | None = None) -> int:
        """Forget findings older than the retention; returns how many."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        horizon = now_ms - self.settings.retention_days * 86_400_000
        old = [k for k, v in self.store.items() if k.startswith("finding:") and v.get("at", now_ms) < horizon]
        for key in old:
            self.store.delete(key)
        return len(old)

    def _values(self, group: str, studies: list[str]) -> dict[str, list[float]]:
        """feature -> the values of these studies in this group, in study order."""
        out: dict[str, list[float]] = {}
        for study in studies:
            for name, vs in (self.store.get(f"values:{group}|{study}") or {}).items():
                out.setdefault(name, []).extend(vs)
        return out

    def _reference(self, group: str, entry: dict[str, Any]) -> dict[str, list[float]] | None:
        """The pinned reference, else the group's first studies' values once there are enough."""
        pinned = self.settings.reference or {}
        if group in pinned or "*" in pinned:
            return pinned.get(group, pinned.get("*"))
        if len(entry["reference"]) < self.settings.window_studies:
            return None
        return self._values(group, entry["reference"])

    def _reference_full(self, group: str, entry: dict[str, Any]) -> bool:
        return self._reference_is_pinned(group) or len(entry["reference"]) >= self.settings.window_studies

    def _add_study(self, group: str, study: str, site: str, values: dict[str, list[float]]) -> list[AlarmChange]:
        key = f"group:{group}"
        entry = self.store.get(key) or {"reference": [], "current": [], "sites": [], "drift": {}, "alarms": []}
        if study in entry["reference"] or study in entry["current"]:
            return []  # a redelivered or re-finalised study counts once
        if site not in entry["sites"]:
            entry["sites"] = sorted({*entry["sites"], site})
        window = self.settings.window_studies
        self.store.put(f"values:{group}|{study}", {name: [round(v, 6) for v in vs] for name, vs in values.items()})
        if not self._reference_full(group, entry):
            entry["reference"] = [*entry["reference"], study]
        else:
            entry["current"] = [*entry["current"], study]
            for old in entry["current"][:-window]:
                self.store.delete(f"values:{group}|{old}")  # slid out of the current window
            entry["current"] = entry["current"][-window:]
        changes = self._judge(group, entry) if len(entry["current"]) >= window else []
        self.store.put(key, entry)
        return changes

    def _judge(self, group: str, entry: dict[str, Any]) -> list[AlarmChange]:
        reference = self._reference(group, entry) or {}
        current = self._values(group, entry["current"])
        drift = {name: feature_drift(name, reference[name], current[name], self.settings.psi_threshold).as_dict()
                 for name in sorted(set(reference) & set(current))}
        before = set(entry["alarms"])
        now = {name for name, d in drift.items() if d["alarm"]}
        entry["drift"], entry["alarms"] = drift, sorted(now)
        return ([AlarmChange(group, f, True, drift[f]) for f in sorted(now - before)]
                + [AlarmChange(group, f, False, drift.get(f, {})) for f in sorted(before - now)])

    # -- output -----------------------------------------------------------------------
    def judged_findings(self, sites: frozenset[str] | None = None, since_ms: int = 0) -> Iterable[JudgedFinding]:
        for key, entry in self.store.items():
            if not key.startswith("finding:") or "rule" not in entry:
                continue  # a verdict whose finding has not been seen
            if (sites is not None and entry["site"] not in sites) or entry["at"] < since_ms:
                continue
            yield JudgedFinding(entry["finding_id"], entry["rule"], tuple(entry["models"]), entry["site"],
                                entry["week"], entry.get("verdict"), entry.get("reason", ""))

    def groups(self, sites: frozenset[str] | None = None) -> dict[str, dict[str, Any]]:
        """Each group's drift, alarms and window sizes; a scoped reader sees a device group only
        when every study in it came from the reader's sites."""
        out = {}
        for key, entry in self.store.items():
            if not key.startswith("group:"):
                continue
            if sites is not None and not set(entry["sites"]) <= sites:
                continue
            out[key[len("group:"):]] = {
                "sites": entry["sites"], "reference_studies": len(entry["reference"]),
                "pinned_reference": self._reference_is_pinned(key[len("group:"):]),
                "current_studies": len(entry["current"]), "drift": entry["drift"], "alarms": entry["alarms"]}
        return dict(sorted(out.items()))

    def _reference_is_pinned(self, group: str) -> bool:
        pinned = self.settings.reference or {}
        return group in pinned or "*" in pinned

    def snapshot(self, sites: frozenset[str] | None = None, since_ms: int = 0) -> dict[str, Any]:
        """What `monitor report` and /monitoring show: agreement and drift (scoped by `sites`)."""
        return {"generated_at": int(time.time() * 1000), "window_studies": self.settings.window_studies,
                "psi_threshold": self.settings.psi_threshold,
                "agreement": agreement(self.judged_findings(sites, since_ms)), "drift": self.groups(sites)}

    def window_values(self, group: str, feature: str) -> tuple[list[float], list[float]]:
        """A group's reference and current values of one feature (the report's histograms)."""
        entry = self.store.get(f"group:{group}")
        if entry is None:
            return [], []
        reference = (self._reference(group, entry) or self._values(group, entry["reference"])).get(feature, [])
        return list(reference), self._values(group, entry["current"]).get(feature, [])

    def reference_windows(self) -> dict[str, dict[str, list[float]]]:
        """Every group's reference values: a file to pin (RADSTREAM_MONITOR_REFERENCE)."""
        return {key[len("group:"):]: self._values(key[len("group:"):], entry["reference"])
                for key, entry in self.store.items() if key.startswith("group:") and entry["reference"]}


# -- settings: from the one config reader, a pinned reference file read and checked ------------
class ReferenceFileError(ValueError):
    """A pinned reference that cannot be used; the message names the file and the problem."""


def read_reference(path: str) -> dict[str, dict[str, list[float]]]:
    """`{GROUP: {FEATURE: [values]}}` (what `monitor report` writes as reference.json); `*` is any group."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ReferenceFileError(f"cannot read the monitor reference {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ReferenceFileError(f"{path}: not JSON ({exc.msg}, line {exc.lineno})") from None
    groups = data.get("groups") if isinstance(data, dict) else None
    if not isinstance(groups, dict) or not all(
            isinstance(f, dict) and all(isinstance(v, list) and all(isinstance(x, (int, float)) for x in v)
                                        for v in f.values()) for f in groups.values()):
        raise ReferenceFileError(f"{path}: expected {{\"groups\": {{GROUP: {{FEATURE: [numbers]}}}}}}")
    return {g: {k: [float(x) for x in v] for k, v in f.items()} for g, f in groups.items()}


def monitor_settings(config: Config) -> MonitorSettings:
    if config.monitor_window_studies < 1:
        raise ReferenceFileError("RADSTREAM_MONITOR_WINDOW_STUDIES must be at least 1")
    reference = read_reference(config.monitor_reference_file) if config.monitor_reference_file else None
    return MonitorSettings(window_studies=config.monitor_window_studies,
                           psi_threshold=config.monitor_psi_threshold,
                           retention_days=config.monitor_retention_days, reference=reference)
