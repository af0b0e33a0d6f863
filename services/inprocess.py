"""The same stages, chained in one process with no Kafka: the baseline for `radstream bench`
and the reference that tests compare the streamed results against.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from radstream.services.publish import arrival_event, find_files, read_instance
from radstream.streams.blobstore import open_blob_store
from radstream.streams.config import Config
from radstream.domain.errors import StageError
from radstream.streams.stage import Inbound, Output, Stage
from radstream.streams.stages.registry import build_stage, models_in_force
from radstream.streams.state import MemoryStore


@dataclass
class InProcessPipeline:
    config: Config
    stage_seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def __post_init__(self) -> None:
        self.models = sorted(models_in_force(self.config))
        names = ["decode", "preprocess"] + [f"infer:{m}" for m in self.models] + ["fuse", "qc"]
        self.stages: dict[str, Stage] = {}
        for label in names:
            name, _, model = label.partition(":")
            # No broker here: the stateful stages keep their state in memory (stateless ones ignore it).
            self.stages[label] = build_stage(name, self.config, model or None, state=MemoryStore())
        self.store = open_blob_store(self.config.blob_url)

    def _run(self, label: str, events: list[dict]) -> list[Output]:
        t0 = time.perf_counter()
        results = self.stages[label].process_batch([Inbound(e) for e in events])
        self.stage_seconds[label] += time.perf_counter() - t0
        outputs = []
        for res in results:
            if isinstance(res, StageError):
                continue  # the streamed pipeline dead-letters these; here they simply produce nothing
            outputs += res
        return outputs

    def run(self, paths: list[Path], site: str = "") -> list[dict]:
        """Every file through every stage; returns the final StudyResult records."""
        instances = [read_instance(p) for p in find_files(paths)]
        per_study: dict[str, int] = defaultdict(int)
        for inst in instances:
            per_study[inst.study_uid] += 1
        results: list[dict] = []
        for inst in instances:
            blob = self.store.put(inst.path.read_bytes(), "application/dicom")
            arrival = arrival_event(inst, blob, site, per_study[inst.study_uid], int(time.time() * 1000))
            results += [o.value for o in self.image(arrival) if o.value["final"]]
        t0 = time.perf_counter()
        results += [o.value for o in self.stages["qc"].on_tick(int(time.time() * 1000) + 10**9)]
        self.stage_seconds["qc"] += time.perf_counter() - t0
        return results

    def image(self, arrival: dict) -> list[Output]:
        """One arrival through decode .. qc; returns any study results it completed."""
        decoded = self._run("decode", [arrival])
        pre = self._run("preprocess", [o.value for o in decoded])
        inferred = []
        for model in self.models:
            inferred += self._run(f"infer:{model}", [o.value for o in pre])
        fused = []
        for o in inferred:
            fused += self._run("fuse", [o.value])
        out = []
        for o in fused:
            out += self._run("qc", [o.value])
        return out
