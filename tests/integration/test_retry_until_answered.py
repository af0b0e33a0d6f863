"""A retry-until-answered stage (the export edges) on the real runtime and a real broker: a peer
that does not answer holds the partition, commits nothing from that message on, dead-letters
nothing, turns /healthz unhealthy after `unhealthy_after_s`, and delivers in order once it answers."""

from __future__ import annotations

import time
from typing import Any

import pytest
from confluent_kafka import TopicPartition
from radstream.domain.errors import TransientError
from radstream.domain.retry import RetryPolicy
from radstream.streams.kafka.consumer import group_consumer
from radstream.streams.kafka.producer import EventPublisher
from radstream.streams.kafka.topics import STUDY_RESULTS, create_topics
from radstream.streams.runtime import StageRunner
from radstream.streams.stage import Inbound, Output, Stage

from tests.plain_reader import raw_records
from tests.unit.services.gateway.gateway_records import study_result

pytestmark = pytest.mark.integration


class SilentPeer(Stage):
    """Sends each result to a 'peer' that does not answer the second result for `silent_rounds` rounds."""

    name = "silent-peer"
    input_topic = STUDY_RESULTS
    max_batch = 1
    retry_until_answered = True
    unhealthy_after_s = 0.5

    def __init__(self, silent_rounds: int, attempts_per_round: int) -> None:
        self.silent_attempts = silent_rounds * attempts_per_round
        self.tries: list[str] = []
        self.answered: list[str] = []
        self.health_while_silent: dict[str, Any] = {}
        self.committed_while_silent: int | None = None
        self.runner: StageRunner | None = None

    def process(self, event: Inbound) -> list[Output]:
        study = event.value["study_uid"]
        self.tries.append(study)
        if study == "1.2.3.2" and self.tries.count(study) <= self.silent_attempts:
            if self.tries.count(study) == self.silent_attempts:  # the last round: silent for 0.1 + 0.2 + 0.4 s
                self.health_while_silent = self.runner.health()
                self.committed_while_silent = _committed(self.runner)
            raise TransientError("peer did not answer (connection refused)", code="peer_unreachable")
        self.answered.append(study)
        if len(self.answered) == 3:
            self.runner._stopping = True  # the test's SIGTERM
        return []


def _committed(runner: StageRunner) -> int:
    tp = runner._consumer.committed([TopicPartition(runner.input_topic, 0)], timeout=10)[0]
    return tp.offset


def test_unanswered_result_is_held_not_skipped(pipeline_config) -> None:
    settings = pipeline_config.kafka
    create_topics(settings, partitions=1)
    publisher = EventPublisher(settings)
    for i in (1, 2, 3):
        study = f"1.2.3.{i}"
        publisher.send(STUDY_RESULTS, study, study_result(study=study, key=f"res-{i}"))
    publisher.flush()

    stage = SilentPeer(silent_rounds=4, attempts_per_round=3)
    runner = StageRunner(stage, settings, max_attempts=3, backoff_s=0.01)
    runner._holds.policy = RetryPolicy(max_attempts=1000, base_s=0.1, cap_s=0.4)  # seconds, not minutes, here
    stage.runner = runner
    started = time.monotonic()
    assert runner.run() == 0
    assert time.monotonic() - started < 60

    assert stage.answered == ["1.2.3.1", "1.2.3.2", "1.2.3.3"], "delivered once each, in order"
    assert stage.tries.count("1.2.3.2") == 4 * 3 + 1
    assert stage.tries.count("1.2.3.1") == 1, "the answered message before the hold is not sent again"
    assert stage.committed_while_silent == 1, "nothing committed from the unanswered message on"
    silent = stage.health_while_silent
    assert silent["healthy"] is False and silent["unanswered_for_s"] >= 0.5
    assert "connection refused" in silent["unanswered_reason"]

    after = group_consumer(settings, runner.group_id)
    try:
        assert after.committed([TopicPartition(runner.input_topic, 0)], timeout=10)[0].offset == 3
    finally:
        after.close()
    dlq_topic = settings.topic(STUDY_RESULTS + ".dlq")
    records, _ = raw_records(settings.bootstrap, [dlq_topic], settle_polls=5)
    assert records == [], "a silent peer sends nothing to the DLQ"
    assert runner.health()["healthy"] is True


def test_a_retry_until_answered_stage_takes_one_message_at_a_time(pipeline_config) -> None:
    class Batched(SilentPeer):
        max_batch = 4

    with pytest.raises(TypeError, match="one message at a time"):
        StageRunner(Batched(silent_rounds=0, attempts_per_round=1), pipeline_config.kafka)
