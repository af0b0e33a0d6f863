"""fuse: join every expected model's output for one image, fuse boxes (WBF, NMW or Soft-NMS per
label), apply rules.

State (the StateStore it is given: its changelog under the runtime) per image key
`<sop>#<frame>`: the model outputs seen so far and what was emitted. Complete joins
are emitted at once; joins still missing models at the deadline are emitted as
partial results that name the missing models; a late output after a partial emission
produces an update.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from radstream.models.calibration import calibrate
from radstream.domain.fusion import DEFAULT_IOU_THR, ModelBoxes
from radstream.domain.fusion_methods import DEFAULT_FUSION_METHOD, fuse_by_label
from radstream.domain.keys import frame_key, idempotency_key
from radstream.streams.contracts import carried_fields
from radstream.streams.kafka.topics import FINDINGS_FUSED, INFERENCE_RESULTS, schema_of
from radstream.domain.rules import Rule, apply_rules
from radstream.domain.thresholds import ThresholdBook
from radstream.streams.stage import Inbound, Output, Stage, trace_parent, traceparent_of
from radstream.streams.state import MemoryStore, StateStore

CARRIED = carried_fields(schema_of(INFERENCE_RESULTS), schema_of(FINDINGS_FUSED),
                         exclude=("config_version", "stage_ms"))


@dataclass(frozen=True)
class ExpectedModel:
    name: str
    task: str
    weight: float = 1.0
    calibration: dict | None = None  # from the manifest; applied before fusion and rules


class FuseStage(Stage):
    name = "fuse"
    input_topic = INFERENCE_RESULTS
    output_topics = (FINDINGS_FUSED,)
    stateful = True

    def __init__(self, models: list[ExpectedModel], rules: list[Rule], deadline_s: float = 30.0,
                 iou_thr: float = DEFAULT_IOU_THR, skip_box_thr: float = 0.0, *,
                 fusion_method: str = DEFAULT_FUSION_METHOD, fusion_methods: dict[str, str] | None = None,
                 config: ThresholdBook | None = None, state: StateStore | None = None,
                 calibrations: dict[tuple[str, str], dict | None] | None = None) -> None:
        """`calibrations`: (model, version) -> its calibration, for the registered versions other
        than the default; a result of any other version takes its model's (ExpectedModel.calibration)."""
        self.models = {m.name: m for m in models}
        self.calibrations = dict(calibrations or {})
        self.rules = rules
        self.deadline_ms = int(deadline_s * 1000)
        self.retention_ms = max(self.deadline_ms * 4, 300_000)
        self.iou_thr = iou_thr
        self.skip_box_thr = skip_box_thr
        self.fusion_method = fusion_method  # every label's, unless `fusion_methods` names the label
        self.fusion_methods = dict(fusion_methods or {})
        self.config = config
        self.state: StateStore = state if state is not None else MemoryStore()

    def process(self, event: Inbound) -> list[Output]:
        result = event.value
        model = result["model"]["name"]
        if model not in self.models:
            return []  # a model outside the set in force: not part of this join
        key = frame_key(result["sop_uid"], result["frame"])
        entry = self.state.get(key) or {"first_seen_ms": _now_ms(), "results": {}, "emitted": None,
                                        "traceparent": traceparent_of(event)}
        if model in entry["results"] and entry["emitted"] == "complete":
            return []  # redelivery of an output already fused
        entry["results"][model] = result
        missing = self._missing(entry)
        outputs: list[Output] = []
        if not missing:
            outputs.append(self.fuse(entry["results"], []))
            entry["emitted"], entry["emitted_ms"] = "complete", _now_ms()
        self.state.put(key, entry)
        return outputs

    def on_tick(self, now_ms: int) -> list[Output]:
        outputs = []
        for key, entry in self.state.items():
            if entry["emitted"] is None and now_ms - entry["first_seen_ms"] >= self.deadline_ms:
                partial = self.fuse(entry["results"], self._missing(entry))
                partial.trace_parent = trace_parent(entry.get("traceparent"))
                outputs.append(partial)
                entry["emitted"], entry["emitted_ms"] = "partial", now_ms
                self.state.put(key, entry)
            elif entry["emitted"] and now_ms - entry.get("emitted_ms", now_ms) >= self.retention_ms:
                self.state.delete(key)
        return outputs

    def _calibration(self, result: dict) -> dict | None:
        model = result["model"]
        key = (model["name"], model["version"])
        return self.calibrations[key] if key in self.calibrations else self.models[model["name"]].calibration

    def fuse(self, results: dict[str, dict], missing: list[str]) -> Output:
        """Pure: model outputs for one image -> one FindingsFused event."""
        first = next(iter(results.values()))
        thresholds = self.thresholds(first["site"])
        detectors = [
            ModelBoxes(
                model=name,
                boxes=[d["box"] for d in r["detections"]],
                scores=[calibrate(d["score"], self._calibration(r)) for d in r["detections"]],
                labels=[d["label"] for d in r["detections"]],
                weight=self.models[name].weight,
            )
            for name, r in sorted(results.items())
            if self.models[name].task == "detector"
        ]
        fused = fuse_by_label(detectors, self.fusion_methods, self.fusion_method, self.iou_thr,
                              self.skip_box_thr) if detectors else []
        raw = {(name, tuple(d["box"])): d["score"] for name, r in results.items() for d in r["detections"]}
        for box in fused:
            for source in box.sources:
                source["raw_score"] = raw.get((source["model"], tuple(source["box"])))
        classifier_outputs = [
            {"model": name, "label": label, "probability": calibrate(p, self._calibration(r)),
             "calibrated": bool(self._calibration(r)), "raw_probability": float(p)}
            for name, r in sorted(results.items())
            for label, p in sorted(r["classifications"].items())
        ]
        versions = {name: r["model"]["version"] for name, r in results.items()}
        stage_ms: dict[str, float] = {}
        for r in results.values():
            stage_ms.update(r["stage_ms"])
        # a result restored from a changelog written before a field was carried (priority, D-057)
        # lacks it: the contract's default then applies
        value = {k: first[k] for k in CARRIED if k in first}
        value.update({
            "idempotency_key": idempotency_key(first["sop_uid"], first["frame"], sorted(versions.items()),
                                               thresholds.version, sorted(missing)),
            "expected_models": sorted(self.models),
            "missing_models": sorted(missing),
            "model_versions": versions,
            "fused_boxes": [{"label": f.label, "score": f.score, "box": f.box, "sources": f.sources} for f in fused],
            "classifier_outputs": classifier_outputs,
            "findings": [self._with_id(f, first) for f in apply_rules(self.rules, fused, classifier_outputs, thresholds)],
            "config_version": thresholds.version,
            "stage_ms": stage_ms,
        })
        return Output(FINDINGS_FUSED, first["study_uid"], value)

    @staticmethod
    def _with_id(finding: dict, image: dict) -> dict:
        """A stable id: the same image, rule and box always give the same id, so an override
        by a radiologist names exactly one finding across redeliveries."""
        box = [round(v, 1) for v in finding["box"]] if finding["box"] else None
        finding["finding_id"] = idempotency_key(image["sop_uid"], image["frame"], finding["rule_id"],
                                                finding["rule_version"], box)[:16]
        return finding

    def _missing(self, entry: dict) -> list[str]:
        return sorted(set(self.models) - set(entry["results"]))

    def health(self) -> dict[str, Any]:
        return {"expected_models": sorted(self.models), "open_joins": len(self.state) if self.state else 0,
                "fusion": {"default": self.fusion_method, **self.fusion_methods}}


def _now_ms() -> int:
    return int(time.time() * 1000)
