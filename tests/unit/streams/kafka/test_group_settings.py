"""Group settings: cooperative-sticky for every group consumer, a static instance id only for
the stage runner's consumer (D-043); the supervisor gives each slot its own, stable id."""

from __future__ import annotations

from pathlib import Path

from radstream.services.supervisor import Child, Supervisor
from radstream.streams.kafka.settings import KafkaSettings


def test_group_consumers_rebalance_cooperatively_and_only_the_runner_is_static() -> None:
    settings = KafkaSettings.from_env(env={"RADSTREAM_BOOTSTRAP": "k:9092", "RADSTREAM_GROUP_INSTANCE_ID": "pod-7"})
    runner = settings.consumer_config("radstream-decode", static_member=True)
    other = settings.consumer_config("radstream-export-dicom")
    standalone = settings.consumer_config(None)
    assert runner["group.instance.id"] == "pod-7"
    assert runner["partition.assignment.strategy"] == other["partition.assignment.strategy"] == "cooperative-sticky"
    assert "group.instance.id" not in other  # gc's look at an export group must not take a stage's slot
    assert "group.instance.id" not in standalone and "partition.assignment.strategy" not in standalone


def test_no_instance_id_is_dynamic_membership_and_the_assignor_can_be_chosen() -> None:
    settings = KafkaSettings.from_env(env={"RADSTREAM_BOOTSTRAP": "k:9092", "RADSTREAM_KAFKA_ASSIGNOR": "range"})
    conf = settings.consumer_config("radstream-fuse", static_member=True)
    assert "group.instance.id" not in conf and conf["partition.assignment.strategy"] == "range"


def test_each_supervised_slot_has_its_own_id_stable_across_restarts(tmp_path: Path) -> None:
    children = [Child("decode"), Child("infer", "demo-qc"), Child("infer", "demo-frcnn")]
    one = Supervisor(children, env={}, log_dir=tmp_path / "a" / "logs")
    ids = [one.instance_id(c) for c in children]
    assert len(set(ids)) == 3 and ids[1].endswith("-infer-demo-qc")
    assert ids == [Supervisor(children, env={}, log_dir=tmp_path / "a" / "logs").instance_id(c) for c in children]
    assert one.instance_id(children[0]) != Supervisor(children, env={}, log_dir=tmp_path / "b").instance_id(children[0])
    prefixed = Supervisor(children, env={"RADSTREAM_GROUP_INSTANCE_ID": "node-3"})
    assert prefixed.instance_id(children[1]) == "node-3-infer-demo-qc"
