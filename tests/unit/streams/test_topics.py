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
