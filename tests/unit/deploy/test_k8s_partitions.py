"""KEDA scales a stage only as far as its input's partitions: a consumer beyond them idles. In every
rendered tree each ScaledObject's maxReplicaCount is at most the partitions of the KafkaTopic its
trigger reads, and that KafkaTopic has the partitions the ConfigMap's settings give it."""

from __future__ import annotations

import pytest
from radstream.streams.kafka.topics import parse_topic_partitions, topic_specs
from test_k8s import _RENDERED, _render, config, of_kind
from test_k8s_schemas import TREES


@pytest.mark.parametrize("tree", TREES)
def test_no_scaled_object_scales_past_its_input_partitions(tree: str) -> None:
    if tree not in _RENDERED:
        _RENDERED[tree] = _render(tree)
    resources = _RENDERED[tree]
    env = config(resources)
    expected = {env["RADSTREAM_TOPIC_PREFIX"] + s.name: s.partitions
                for s in topic_specs(int(env["RADSTREAM_PARTITIONS"]),
                                     parse_topic_partitions(env.get("RADSTREAM_TOPIC_PARTITIONS", "")))}
    partitions = {t["spec"].get("topicName", t["metadata"]["name"]): t["spec"]["partitions"]
                  for t in of_kind(resources, "KafkaTopic")}
    problems = [f"KafkaTopic {name}: {partitions.get(name)} partitions, the ConfigMap gives {n}"
                for name, n in expected.items() if partitions.get(name) != n]
    scaled = of_kind(resources, "ScaledObject")
    assert scaled
    for so in scaled:
        for trigger in so["spec"]["triggers"]:
            topic = trigger["metadata"]["topic"]
            most = so["spec"]["maxReplicaCount"]
            if topic not in partitions:
                problems.append(f"{so['metadata']['name']}: reads {topic}, which has no KafkaTopic")
            elif most > partitions[topic]:
                problems.append(f"{so['metadata']['name']}: maxReplicaCount {most} > {partitions[topic]} "
                                f"partitions of {topic}")
    assert not problems, f"k8s/{tree}:\n" + "\n".join(problems)
