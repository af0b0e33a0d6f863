"""How a stage is wired: its threshold book and state store come in through its constructor
(build_stage), and the runtime takes a stateful stage only with a changelog behind it."""

from __future__ import annotations

from pathlib import Path

import pytest

from radstream.domain.thresholds import ThresholdBook
from radstream.streams.config import Config
from radstream.streams.kafka.settings import KafkaSettings
from radstream.streams.kafka.topics import CHANGELOGS
from radstream.streams.runtime import StageRunner
from radstream.streams.stages.qc import QcStage
from radstream.streams.stages.registry import build_stage
from radstream.streams.state import ChangelogStore, MemoryStore

REGISTRY = Path(__file__).resolve().parents[3] / "models" / "registry"


def _config(tmp_path: Path) -> Config:
    return Config.from_env(env={"RADSTREAM_MODEL_REGISTRY": str(REGISTRY), "RADSTREAM_HOME": str(tmp_path),
                                "RADSTREAM_TOPIC_PREFIX": "t1."})


def test_build_stage_gives_a_stateful_stage_its_changelog_and_the_book_it_is_passed(tmp_path: Path) -> None:
    book = ThresholdBook()
    stage = build_stage("qc", _config(tmp_path), book=book)
    assert stage.config is book
    assert isinstance(stage.state, ChangelogStore) and stage.state.topic == "t1." + CHANGELOGS["qc"]
    memory = MemoryStore()
    assert build_stage("qc", _config(tmp_path), state=memory).state is memory


def test_the_runtime_refuses_a_stateful_stage_whose_state_would_not_survive_a_restart() -> None:
    with pytest.raises(TypeError, match="must be a ChangelogStore"):
        StageRunner(QcStage(state=MemoryStore()), KafkaSettings())  # refused before any client is built


def test_memory_store_is_a_dict_that_may_change_while_iterated() -> None:
    store = MemoryStore()
    store.put("a", 1)
    store.put("b", 2)
    for key, _ in store.items():
        store.delete(key)
    store.delete("missing")
    assert len(store) == 0 and store.get("a") is None


def test_fuse_takes_its_fusion_method_per_label_from_the_rules_file_and_else_from_the_setting(tmp_path: Path) -> None:
    """RADSTREAM_FUSION_METHOD for every label, a rules file's `fusion:` map over it per label;
    the fused box of a NMW label keeps its leader's score and both sources."""
    from radstream.streams.stage import Inbound
    from tests.factories import inference_result

    rules = tmp_path / "rules.yaml"
    rules.write_text("fusion: {nodule: nmw}\nrules:\n  - id: n\n    label: nodule\n"
                     "    when: {fused_box: nodule, threshold: t, default: 0.3}\n")
    env = {"RADSTREAM_MODEL_REGISTRY": str(REGISTRY), "RADSTREAM_HOME": str(tmp_path),
           "RADSTREAM_MODELS": "demo-frcnn,demo-effdet", "RADSTREAM_FUSION_METHOD": "soft-nms"}
    plain = build_stage("fuse", Config.from_env(env=env), state=MemoryStore())
    assert plain.fusion_method == "soft-nms" and plain.fusion_methods == {}
    stage = build_stage("fuse", Config.from_env(env={**env, "RADSTREAM_RULES": str(rules)}), state=MemoryStore())
    assert stage.fusion_methods == {"nodule": "nmw"} and stage.health()["fusion"] == {"default": "soft-nms",
                                                                                       "nodule": "nmw"}
    for name in stage.models:
        stage.models[name] = type(stage.models[name])(name, "detector")  # uncalibrated, weight 1: scores as sent
    stage.process(Inbound(inference_result("demo-frcnn", "detector", detections=[
        {"label": "nodule", "score": 0.8, "box": [0.0, 0.0, 10.0, 10.0]}])))
    (out,) = stage.process(Inbound(inference_result("demo-effdet", "detector", detections=[
        {"label": "nodule", "score": 0.4, "box": [2.0, 0.0, 12.0, 10.0]}])))
    (box,) = out.value["fused_boxes"]
    assert box["score"] == pytest.approx(0.8) and {s["model"] for s in box["sources"]} == {"demo-frcnn", "demo-effdet"}
    with pytest.raises(ValueError, match="RADSTREAM_FUSION_METHOD='nms': expected one of wbf, nmw, soft-nms"):
        Config.from_env(env={**env, "RADSTREAM_FUSION_METHOD": "nms"})


def test_a_rules_file_naming_an_unknown_fusion_method_or_label_is_refused(tmp_path: Path) -> None:
    from radstream.domain.rules import RuleError, parse_fusion_methods

    with pytest.raises(RuleError, match="fusion.nodule: fusion method 'max' is not one of"):
        parse_fusion_methods({"fusion": {"nodule": "max"}}, {"nodule"})
    with pytest.raises(RuleError, match="no detector in force emits 'mass'"):
        parse_fusion_methods({"fusion": {"mass": "nmw"}}, {"nodule"})
