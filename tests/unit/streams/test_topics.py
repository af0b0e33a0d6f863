"""The one topic -> schema table: every topic's records follow exactly one contract, named once."""

from __future__ import annotations

import pytest

from radstream.streams.codec import schema_names
from radstream.streams.kafka import topics
from radstream.streams.kafka.topics import CHANGELOGS, SCHEMAS, dlq, schema_of, topic_specs
from radstream.streams.stage import Output

PAIRS = {
    "dicom.arrived": "DicomArrived",
    "image.decoded": "ImageDecoded",
    "image.preprocessed": "ImagePreprocessed",
    "inference.results": "InferenceResult",
    "findings.fused": "FindingsFused",
    "study.results": "StudyResult",
    "findings.overrides": "FindingOverride",
    "config.thresholds": "ThresholdSet",
    "config.thresholds.audit": "ThresholdSet",
}


@pytest.mark.parametrize("topic,schema", sorted(PAIRS.items()))
def test_each_event_topic_carries_its_contract(topic: str, schema: str) -> None:
    assert schema_of(topic) == schema


def test_every_dead_letter_topic_carries_dead_letters() -> None:
    dlqs = {t for t in SCHEMAS if t.endswith(".dlq")}
    # study.results: the forwarder's and the export edges'; findings.overrides: the monitor's
    assert dlqs == {dlq(t) for t in [*topics.CONSUMED, topics.STUDY_RESULTS, topics.FINDINGS_OVERRIDES]}
    assert {schema_of(t) for t in dlqs} == {"DeadLetter"}


def test_every_created_topic_is_in_the_table_except_the_json_changelogs() -> None:
    created = {s.name for s in topic_specs()}
    assert created - set(SCHEMAS) == set(CHANGELOGS.values())
    assert set(SCHEMAS) <= created


def test_the_table_names_only_shipped_schemas_and_every_event_schema() -> None:
    assert set(SCHEMAS.values()) == set(schema_names())


def test_a_topic_outside_the_table_is_a_clear_error() -> None:
    with pytest.raises(LookupError, match="no schema for topic 'radstream.fuse.changelog'"):
        schema_of("radstream.fuse.changelog")


def test_an_output_and_a_stage_input_take_their_schema_from_the_topic() -> None:
    from radstream.services.gateway.forward import WebhookForwarder
    from radstream.streams.stages.decode import DecodeStage
    from radstream.streams.stages.qc import QcStage

    assert Output("findings.fused", "k", {}).schema == "FindingsFused"
    assert DecodeStage.input_topic == "dicom.arrived" and DecodeStage.__new__(DecodeStage).input_schema == "DicomArrived"
    assert QcStage.__new__(QcStage).input_schema == "FindingsFused"
    assert WebhookForwarder.__new__(WebhookForwarder).input_schema == "StudyResult"


def test_per_topic_partitions_carry_to_twins_dlqs_and_co_partitioned_changelogs() -> None:
    from radstream.streams.kafka.topics import CHANGELOG_INPUTS, parse_topic_partitions

    per_topic = parse_topic_partitions(" image.preprocessed=12, inference.results=6 ,")
    assert per_topic == {"image.preprocessed": 12, "inference.results": 6}
    counts = {s.name: s.partitions for s in topic_specs(3, per_topic)}
    assert counts["image.preprocessed"] == counts["image.preprocessed.stat"] == counts["image.preprocessed.dlq"] == 12
    assert counts["inference.results"] == counts["inference.results.stat"] == counts["radstream.fuse.changelog"] == 6
    assert counts["image.decoded"] == counts["radstream.qc.changelog"] == 3
    assert counts["config.thresholds"] == 1
    assert set(CHANGELOG_INPUTS) == set(CHANGELOGS)


def test_changelogs_follow_their_stage_input() -> None:
    """CHANGELOG_INPUTS is each stateful stage's input_topic (co-partitioning)."""
    from radstream.streams.kafka.topics import CHANGELOG_INPUTS
    from radstream.streams.stages.registry import STAGES
    from radstream.services.export.stage import ExportStage  # noqa: F401  (export-* share its input)

    import importlib
    for stage, topic in CHANGELOG_INPUTS.items():
        if stage.startswith("export-"):
            assert ExportStage.input_topic == topic
            continue
        assert stage in STAGES
        module = importlib.import_module(f"radstream.streams.stages.{stage}")
        inputs = {getattr(c, "input_topic", None) for c in vars(module).values()
                  if isinstance(c, type) and getattr(c, "name", None) == stage}
        assert inputs == {topic}, stage


@pytest.mark.parametrize("text", ["image.preprocessed", "nope=3", "image.decoded=0", "image.decoded=x",
                                  "config.thresholds=4"])
def test_bad_topic_partitions_are_one_clear_error(text: str) -> None:
    from radstream.streams.kafka.topics import parse_topic_partitions

    with pytest.raises(ValueError, match="RADSTREAM_TOPIC_PARTITIONS: .* is not TOPIC=N"):
        parse_topic_partitions(text)


def test_every_stage_from_decode_to_qc_reads_a_stat_twin_and_the_others_none() -> None:
    """The STAT lane runs up to qc (D-044, D-057): its twin has the input's schema; the monitor
    (two inputs) and the export edges (study.results, holding partitions) read none."""
    from radstream.services.export.stage import ExportStage
    from radstream.streams.stage import stat_input
    from radstream.streams.stages.decode import DecodeStage
    from radstream.streams.stages.fuse import FuseStage
    from radstream.streams.stages.infer import InferStage
    from radstream.streams.stages.monitor import MonitorStage
    from radstream.streams.stages.preprocess import PreprocessStage
    from radstream.streams.stages.qc import QcStage

    for stage in (DecodeStage, PreprocessStage, InferStage, FuseStage, QcStage):
        assert stat_input(stage) == stage.input_topic + ".stat"
        assert schema_of(stat_input(stage)) == schema_of(stage.input_topic)
    assert stat_input(MonitorStage) is None and stat_input(ExportStage) is None
    assert topics.lane_of("findings.fused", {"priority": "stat"}) == "findings.fused.stat"
    assert topics.lane_of("study.results", {"priority": "stat"}) == "study.results"
