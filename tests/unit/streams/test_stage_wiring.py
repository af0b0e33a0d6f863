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
