"""What the deployment files must contain, computed from the code (not copied from them).

Every consumer of the pipeline is a stage worker: one per stage, and one per model for
infer. Its consumer group and input topic come from the Stage classes themselves.
"""

from __future__ import annotations

import importlib
import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from radstream.streams.stage import Stage
from radstream.streams.stages.registry import STAGES

REPO = Path(__file__).resolve().parents[3]
MODEL_REGISTRY = REPO / "models" / "registry"
PER_MODEL_STAGES = {"infer"}


@dataclass(frozen=True)
class Consumer:
    """One stage worker as deployed: `radstream stage <stage> [--model <model>]`."""

    stage: str
    model: str | None
    group_id: str
    input_topic: str  # logical name; the deployed one carries RADSTREAM_TOPIC_PREFIX
    shadow: bool = False  # `stage infer --model M --shadow`: a candidate version (D-056)

    @property
    def instance(self) -> str:
        """The name of its Deployment (radstream-<instance>) and compose service."""
        return (f"{self.stage}-{self.model}" if self.model else self.stage) + ("-shadow" if self.shadow else "")

    @property
    def args(self) -> list[str]:
        return ["stage", self.stage] + (["--model", self.model] if self.model else []) + (
            ["--shadow"] if self.shadow else [])


def stage_class(name: str) -> type[Stage]:
    if name.startswith("export-"):
        return export_classes()[name]
    module = importlib.import_module(f"radstream.streams.stages.{name}")
    for _, cls in inspect.getmembers(module, inspect.isclass):
        if issubclass(cls, Stage) and cls is not Stage and getattr(cls, "name", None) == name:
            return cls
    raise LookupError(f"no Stage subclass named {name!r} in {module.__name__}")


def model_names() -> list[str]:
    """Models with a manifest in models/registry/*.json (the default set in force)."""
    names = []
    for path in sorted(MODEL_REGISTRY.glob("*.json")):
        names.append(json.loads(path.read_text()).get("name", path.stem))
    return names


def _group_id(cls: type[Stage], model: str | None, shadow: bool = False) -> str:
    # The Stage's own group_id property, evaluated without building the stage
    # (which would load models and open the blob store).
    fake_self = SimpleNamespace(name=cls.name, manifest=SimpleNamespace(name=model), shadow=shadow)
    group_id = inspect.getattr_static(cls, "group_id")
    return group_id.fget(fake_self)


def consumers(models: list[str]) -> list[Consumer]:
    """Every stage worker: per-model stages once per model in `models`."""
    result = []
    for name in STAGES:
        cls = stage_class(name)
        for model in (models if name in PER_MODEL_STAGES else [None]):
            result.append(Consumer(name, model, _group_id(cls, model), cls.input_topic))
    return result


def shadow_consumers(models: list[str]) -> list[Consumer]:
    """A shadow infer worker per model (`stage infer --model M --shadow`, components/shadow-infer):
    each has its identity ready, used when an overlay deploys that model's shadow."""
    cls = stage_class("infer")
    return [Consumer("infer", m, _group_id(cls, m, shadow=True), cls.input_topic, shadow=True) for m in models]


def export_classes() -> dict[str, type[Stage]]:
    """Every export edge's Stage class (`radstream export <target>`), by stage name (export-<target>)."""
    from radstream.services.export.stage import ExportStage

    found: dict[str, type[Stage]] = {}
    for module in ("pacs", "hl7", "fhir"):
        for _, cls in inspect.getmembers(importlib.import_module(f"radstream.services.export.{module}"), inspect.isclass):
            if issubclass(cls, ExportStage) and isinstance(cls.__dict__.get("name"), str):
                found[cls.name] = cls
    return found


def export_consumers() -> list[Consumer]:
    """One worker per export target of `radstream export` (services/commands/export.py TARGETS)."""
    from radstream.services.commands.export import TARGETS

    classes = export_classes()
    assert set(classes) == {f"export-{t}" for t in TARGETS}, sorted(classes)
    return [Consumer(f"export-{t}", None, _group_id(classes[f"export-{t}"], None), classes[f"export-{t}"].input_topic)
            for t in TARGETS]


# --- Kafka identities and their ACLs (k8s/components/kafka-auth, D-028) ---------------------

Acl = tuple[str, str, str]  # (resource type, name, operation) as Strimzi names them; `name*`: a prefixed ACL


def stage_acls(consumer: Consumer) -> set[Acl]:
    """What one stage worker's identity may do: read its input topic as its group, write its
    outputs and its input's DLQ, keep its changelog, read thresholds and audit ignored ones."""
    from radstream.streams.kafka.topics import (
        CHANGELOGS,
        CONFIG_AUDIT,
        CONFIG_THRESHOLDS,
        FINDINGS_OVERRIDES,
        OVERRIDES_AUDIT,
        dlq,
    )

    from radstream.streams.kafka.topics import STAT_LANED, stat_twin
    from radstream.streams.stage import stat_input

    cls = stage_class(consumer.stage)
    inputs = (consumer.input_topic, *cls.extra_input_topics)  # the monitor also reads findings.overrides
    read = list(inputs)
    if stat_input(cls):
        read.append(stat_input(cls))  # the STAT lane (D-044, D-057): read urgent first; its DLQ is the input's
    acls: set[Acl] = {("topic", topic, op) for topic in read for op in ("Read", "Describe")}
    acls.add(("group", consumer.group_id, "Read"))
    declared = cls.shadow_output_topics if consumer.shadow else cls.output_topics  # type: ignore[attr-defined]
    outputs = [*declared, *(stat_twin(t) for t in declared if t in STAT_LANED)]
    # a reader of verdicts audits the ones it ignores (the monitor, as the gateway: D-036)
    audits = (OVERRIDES_AUDIT,) if FINDINGS_OVERRIDES in inputs else ()
    for topic in (*outputs, *(dlq(t) for t in inputs), CONFIG_AUDIT, *audits):
        acls |= {("topic", topic, op) for op in ("Write", "Describe")}
    acls |= {("topic", CONFIG_THRESHOLDS, op) for op in ("Read", "Describe")}
    if consumer.stage in CHANGELOGS:
        acls |= {("topic", CHANGELOGS[consumer.stage], op) for op in ("Read", "Write", "Describe")}
    return acls


def edge_acls() -> dict[str, set[Acl]]:
    """The identities that are not stage workers: the gateway reads, and writes only the viewer's
    verdicts (D-042), only the thresholds identity writes config.thresholds, the receiver writes arrivals."""
    from radstream.services.gateway.events import FOLLOWED
    from radstream.streams.kafka.topics import (
        CONFIG_AUDIT,
        CONFIG_THRESHOLDS,
        DICOM_ARRIVED,
        FINDINGS_OVERRIDES,
        OVERRIDES_AUDIT,
        STUDY_RESULTS,
        stat_twin,
    )

    def read(*topics: str) -> set[Acl]:
        return {("topic", t, op) for t in topics for op in ("Read", "Describe")}

    def write(*topics: str) -> set[Acl]:
        return {("topic", t, op) for t in topics for op in ("Write", "Describe")}

    workers = consumers(model_names()) + shadow_consumers(model_names()) + export_consumers()
    return {
        # KEDA's lag triggers: the offsets of every scaled group on its input topic, nothing more
        "keda": {("topic", c.input_topic, "Describe") for c in workers} | {("group", c.group_id, "Describe") for c in workers},
        # the gateway reads; it writes the audit of the verdicts it ignored (D-036) and the
        # viewer's verdicts (D-042)
        "gateway": read(*FOLLOWED, CONFIG_THRESHOLDS) | write(OVERRIDES_AUDIT, FINDINGS_OVERRIDES),
        "thresholds": read(CONFIG_THRESHOLDS, CONFIG_AUDIT) | write(CONFIG_THRESHOLDS),
        "receiver": write(DICOM_ARRIVED, stat_twin(DICOM_ARRIVED)),
        # retention reads arrivals (urgent ones on the STAT twin) and results, and the export groups'
        # committed offsets (a name ending in * is a prefixed ACL)
        "blobs-gc": read(DICOM_ARRIVED, stat_twin(DICOM_ARRIVED), STUDY_RESULTS)
        | {("group", "radstream-export-*", "Describe")},
    }
