"""The commit protocol of streams/checkpoint.py, step by step, and where it must stop.

The producer client and the consumer here are fakes, written below, on purpose: the point
is the order of produce, flush, changelog and commit, and what happens when a flush reports
an undelivered message, which a real broker does not do on cue. That the protocol holds
against the real broker, through kill -9 of the stateful stages, is
tests/integration/test_crash_recovery.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from radstream.streams.checkpoint import Checkpoint, last_offsets
from radstream.streams.kafka.producer import AcknowledgedProducer, DeliveryFailed
from radstream.streams.kafka.settings import KafkaSettings
from radstream.streams.state import ChangelogStore
from tests.kafka_fakes import FakeMessage

INPUT, OUTPUT, DLQ, CHANGELOG = "in", "out", "in.dlq", "radstream.fuse.changelog"


class FakeProducerClient:
    """Stands in for confluent_kafka.Producer. flush() delivers what is queued, calling each
    message's on_delivery: with an error for the topics in `fail`, and leaving `stuck`
    messages undelivered (flush's return value) as a timed-out flush would."""

    def __init__(self, journal: list, fail: set[str] = frozenset(), stuck: int = 0) -> None:
        self.journal, self.fail, self.stuck = journal, fail, stuck
        self.queued: list[tuple[str, Any]] = []

    def produce(self, topic: str, key: bytes | None = None, value: bytes | None = None,
                headers: list | None = None, partition: int | None = None, on_delivery: Any = None) -> None:
        self.journal.append(("produce", topic, key))
        self.queued.append((topic, on_delivery))

    def poll(self, timeout: float = 0) -> int:
        return 0

    def flush(self, timeout: float = 0) -> int:
        self.journal.append(("flush",))
        for topic, on_delivery in self.queued:
            err = KafkaError(KafkaError._MSG_TIMED_OUT) if topic in self.fail else None
            on_delivery(err, FakeMessage(topic))
        self.queued = []
        return self.stuck


class FakeConsumer:
    """Stands in for the group consumer: records commits, or fails the synchronous ones."""

    def __init__(self, journal: list, fail_sync: bool = False) -> None:
        self.journal, self.fail_sync = journal, fail_sync

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> None:
        if self.fail_sync and not asynchronous:
            raise KafkaException(KafkaError(KafkaError.REBALANCE_IN_PROGRESS))
        self.journal.append(("commit", sorted((tp.topic, tp.partition, tp.offset) for tp in offsets),
                             "async" if asynchronous else "sync"))


def _checkpoint(journal: list, stateful: bool = True, fail: set[str] = frozenset(), stuck: int = 0,
                fail_sync: bool = False) -> tuple[Checkpoint, AcknowledgedProducer, ChangelogStore | None]:
    producer = AcknowledgedProducer(FakeProducerClient(journal, fail, stuck))
    state = ChangelogStore(KafkaSettings(), CHANGELOG) if stateful else None
    return Checkpoint(producer, FakeConsumer(journal, fail_sync), INPUT, state), producer, state


def _batch(producer: AcknowledgedProducer, state: ChangelogStore | None, *keys: str) -> None:
    """What the runtime does before a checkpoint: produce the outputs; the stage writes state."""
    for key in keys:
        producer.produce(OUTPUT, key.encode(), b"v")
        if state is not None:
            state.put(key, {"emitted": True})


def test_outputs_are_acknowledged_then_the_changelog_then_the_offsets_are_committed() -> None:
    journal: list = []
    checkpoint, producer, state = _checkpoint(journal)
    _batch(producer, state, "a", "b")
    checkpoint.commit({0: 41, 2: 7})
    assert journal == [
        ("produce", OUTPUT, b"a"), ("produce", OUTPUT, b"b"),
        ("flush",),  # 1. outputs acknowledged
        ("produce", CHANGELOG, b"a"), ("produce", CHANGELOG, b"b"),
        ("flush",),  # 2. changelog acknowledged
        ("commit", [(INPUT, 0, 42), (INPUT, 2, 8)], "async"),  # 3. the next offset of each partition
    ]


def test_without_state_writes_there_is_one_flush_before_the_commit() -> None:
    for stateful in (False, True):
        journal: list = []
        checkpoint, producer, _ = _checkpoint(journal, stateful=stateful)
        _batch(producer, None, "a")
        checkpoint.commit({1: 0})
        assert journal == [("produce", OUTPUT, b"a"), ("flush",), ("commit", [(INPUT, 1, 1)], "async")]


@pytest.mark.parametrize("failing", [OUTPUT, DLQ])
def test_an_undelivered_output_or_dlq_record_stops_before_the_changelog_and_the_commit(failing: str) -> None:
    journal: list = []
    checkpoint, producer, state = _checkpoint(journal, fail={failing})
    _batch(producer, state, "a")
    producer.produce(DLQ, b"poison", b"record")
    with pytest.raises(DeliveryFailed, match=f"outputs not acknowledged, not committing: .*{failing}"):
        checkpoint.commit({0: 3})
    assert journal[-1] == ("flush",)
    assert not [e for e in journal if e[0] == "commit" or e[1:2] == (CHANGELOG,)]


def test_a_flush_that_times_out_with_messages_queued_commits_nothing() -> None:
    journal: list = []
    checkpoint, producer, state = _checkpoint(journal, stuck=1)
    _batch(producer, state, "a")
    with pytest.raises(DeliveryFailed, match="1 message"):
        checkpoint.commit({0: 3})
    assert [e[0] for e in journal] == ["produce", "flush"]


def test_an_undelivered_changelog_write_commits_nothing() -> None:
    journal: list = []
    checkpoint, producer, state = _checkpoint(journal, fail={CHANGELOG})
    _batch(producer, state, "a")
    with pytest.raises(DeliveryFailed, match="changelog writes not acknowledged"):
        checkpoint.commit({0: 3})
    assert [e[0] for e in journal] == ["produce", "flush", "produce", "flush"]


def test_timer_outputs_are_acknowledged_then_the_changelog_and_no_offset_is_committed() -> None:
    journal: list = []
    checkpoint, producer, state = _checkpoint(journal)
    _batch(producer, state, "partial")
    checkpoint.commit()
    assert journal == [("produce", OUTPUT, b"partial"), ("flush",), ("produce", CHANGELOG, b"partial"), ("flush",)]


def test_revocation_commits_synchronously_what_was_processed_in_the_revoked_partitions_only() -> None:
    journal: list = []
    checkpoint, producer, state = _checkpoint(journal)
    _batch(producer, state, "a")
    checkpoint.commit({0: 5, 1: 9})
    _batch(producer, state, "b")
    checkpoint.commit({0: 6})
    journal.clear()
    checkpoint.commit_sync([0])
    assert journal == [("commit", [(INPUT, 0, 7)], "sync")]  # the last checkpoint of partition 0; no flush
    checkpoint.commit_sync([0])
    assert len(journal) == 1  # landed once, not again
    checkpoint.close()  # shutdown: drain, then the rest
    assert journal[1:] == [("flush",), ("commit", [(INPUT, 1, 10)], "sync")]


def test_shutdown_after_a_failed_batch_commits_only_earlier_checkpoints_and_writes_no_changelog() -> None:
    journal: list = []
    client = FakeProducerClient(journal)
    producer = AcknowledgedProducer(client)
    state = ChangelogStore(KafkaSettings(), CHANGELOG)
    checkpoint = Checkpoint(producer, FakeConsumer(journal), INPUT, state)
    _batch(producer, state, "good")
    checkpoint.commit({0: 1})
    client.fail = {OUTPUT}
    _batch(producer, state, "lost")
    with pytest.raises(DeliveryFailed):
        checkpoint.commit({0: 2})
    journal.clear()
    # What the runtime does on its way out (run's finally), then the revocation when it leaves the group.
    checkpoint.close()
    checkpoint.commit_sync([0])
    state.drop([0])
    assert journal == [("flush",), ("commit", [(INPUT, 0, 2)], "sync")]  # after "good": "lost" is redelivered
    # "lost" is in the state as emitted, but its output was not acknowledged: that write never
    # reaches the changelog, or the redelivered input would be taken for a duplicate.
    assert state.flush_to(producer) == 0


def test_a_failed_synchronous_commit_is_logged_and_forgotten(caplog: pytest.LogCaptureFixture) -> None:
    journal: list = []
    checkpoint, producer, state = _checkpoint(journal, fail_sync=True)
    _batch(producer, state, "a")
    checkpoint.commit({0: 1})
    checkpoint.commit_sync([0])  # the group moved on: the new owner re-reads from the last commit
    assert "will be redelivered" in caplog.text
    journal.clear()
    checkpoint.close()
    assert journal == [("flush",)]


def test_last_offsets_is_the_highest_offset_per_partition() -> None:
    msgs = [FakeMessage(INPUT, 0, 4), FakeMessage(INPUT, 1, 2), FakeMessage(INPUT, 0, 3), FakeMessage(INPUT, 0, 9)]
    assert last_offsets(msgs) == {0: 9, 1: 2}


def test_a_delivery_failure_is_reported_once() -> None:
    journal: list = []
    client = FakeProducerClient(journal, fail={OUTPUT})
    producer = AcknowledgedProducer(client)
    producer.produce(OUTPUT, b"a", b"v")
    with pytest.raises(DeliveryFailed, match=r"broker did not acknowledge 1 message\(s\): out: "):
        producer.flush()
    client.fail = set()
    producer.produce(OUTPUT, b"b", b"v")
    producer.flush()  # judges only what came after


def test_a_full_local_queue_is_drained_and_the_message_produced_not_dropped() -> None:
    journal: list = []

    class FullOnce(FakeProducerClient):
        full = True

        def produce(self, topic: str, **kwargs: Any) -> None:
            if self.full:
                self.full = False
                raise BufferError("Local: Queue full")
            super().produce(topic, **kwargs)

        def poll(self, timeout: float = 0) -> int:
            self.journal.append(("poll", timeout))
            return 0

    AcknowledgedProducer(FullOnce(journal)).produce(OUTPUT, b"a", b"v")
    assert journal == [("poll", 0.1), ("produce", OUTPUT, b"a")]


def test_a_second_input_topic_is_committed_under_its_own_name_and_on_revocation() -> None:
    """A stage with `extra_input_topics` (the monitor): each topic's offsets go to that topic."""
    journal: list = []
    checkpoint, producer, state = _checkpoint(journal)
    _batch(producer, state, "a")
    checkpoint.commit({0: 4})
    checkpoint.commit({0: 2}, topic="overrides")
    assert [e for e in journal if e[0] == "commit"] == [("commit", [(INPUT, 0, 5)], "async"),
                                                       ("commit", [("overrides", 0, 3)], "async")]
    journal.clear()
    checkpoint.commit_sync([0])
    assert journal == [("commit", [(INPUT, 0, 5), ("overrides", 0, 3)], "sync")]


# -- a stateless stage: committed once acknowledged, without waiting (D-060) ---------------------

class AcknowledgingClient(FakeProducerClient):
    """As FakeProducerClient, but the broker's acknowledgements come when the test says
    (`ack`), and poll() serves the ones that have come, as the real client's poll does."""

    def __init__(self, journal: list, fail: set[str] = frozenset()) -> None:
        super().__init__(journal, fail)
        self.acked: list[tuple[str, Any]] = []

    def ack(self, *keys: bytes) -> None:
        """The broker acknowledges these keys' messages (all queued ones without keys)."""
        keep = []
        for topic, key, on_delivery in self.queued:
            (self.acked if not keys or key in keys else keep).append((topic, key, on_delivery))
        self.queued = keep

    def produce(self, topic: str, key: bytes | None = None, value: bytes | None = None,
                headers: list | None = None, partition: int | None = None, on_delivery: Any = None) -> None:
        self.journal.append(("produce", topic, key))
        self.queued.append((topic, key, on_delivery))

    def poll(self, timeout: float = 0) -> int:
        served, self.acked = self.acked, []
        for topic, _, on_delivery in served:
            on_delivery(KafkaError(KafkaError._MSG_TIMED_OUT) if topic in self.fail else None, FakeMessage(topic))
        return len(served)

    def flush(self, timeout: float = 0) -> int:
        self.journal.append(("flush",))
        self.ack()
        self.poll()
        return 0


def _deferred(journal: list, fail: set[str] = frozenset()) -> tuple[Checkpoint, AcknowledgedProducer, AcknowledgingClient]:
    client = AcknowledgingClient(journal, fail)
    producer = AcknowledgedProducer(client)
    return Checkpoint(producer, FakeConsumer(journal), INPUT), producer, client


def _commits(journal: list) -> list:
    return [e for e in journal if e[0] == "commit"]


def test_a_stateless_batch_is_committed_once_acknowledged_without_a_flush() -> None:
    journal: list = []
    checkpoint, producer, client = _deferred(journal)
    producer.produce(OUTPUT, b"a", b"v")
    checkpoint.commit_when_acknowledged({INPUT: {0: 41}})
    checkpoint.settle()
    assert _commits(journal) == [] and ("flush",) not in journal  # not acknowledged yet: nothing committed
    client.ack()
    checkpoint.settle()
    assert _commits(journal) == [("commit", [(INPUT, 0, 42)], "async")]
    checkpoint.settle()
    assert len(_commits(journal)) == 1  # committed once


def test_a_later_batch_acknowledged_first_waits_for_the_earlier_one() -> None:
    """Offsets are committed oldest batch first: a commit of batch 2's offset would also cover
    batch 1's message, whose output the broker has not acknowledged."""
    journal: list = []
    checkpoint, producer, client = _deferred(journal)
    producer.produce(OUTPUT, b"a", b"v")
    checkpoint.commit_when_acknowledged({INPUT: {0: 5}})
    producer.produce(OUTPUT, b"b", b"v")
    checkpoint.commit_when_acknowledged({INPUT: {0: 6}, "in.stat": {0: 2}})
    client.ack(b"b")
    checkpoint.settle()
    assert _commits(journal) == []
    client.ack(b"a")
    checkpoint.settle()
    assert _commits(journal) == [("commit", [(INPUT, 0, 7), ("in.stat", 0, 3)], "async")]


@pytest.mark.parametrize("failing", [OUTPUT, DLQ])
def test_a_refused_output_or_dlq_record_commits_nothing_from_its_batch_on(failing: str) -> None:
    journal: list = []
    checkpoint, producer, client = _deferred(journal, fail={failing})
    producer.produce("other", b"ok", b"v")
    checkpoint.commit_when_acknowledged({INPUT: {0: 1}})
    producer.produce(OUTPUT, b"a", b"v")
    producer.produce(DLQ, b"poison", b"record")
    checkpoint.commit_when_acknowledged({INPUT: {0: 2}})
    producer.produce("other", b"later", b"v")
    checkpoint.commit_when_acknowledged({INPUT: {0: 3}})
    client.ack()
    with pytest.raises(DeliveryFailed, match=f"outputs not acknowledged, not committing: .*{failing}"):
        checkpoint.settle()
    assert _commits(journal) == [("commit", [(INPUT, 0, 2)], "async")]  # only the batch before the refusal
    checkpoint.close()
    assert _commits(journal)[1:] == [("commit", [(INPUT, 0, 2)], "sync")]


def test_an_output_unacknowledged_past_the_flush_timeout_commits_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    import radstream.streams.checkpoint as checkpoint_module

    journal: list = []
    checkpoint, producer, _ = _deferred(journal)
    producer.produce(OUTPUT, b"a", b"v")
    checkpoint.commit_when_acknowledged({INPUT: {0: 1}})
    monkeypatch.setattr(checkpoint_module, "FLUSH_TIMEOUT_S", -1.0)
    with pytest.raises(DeliveryFailed, match="not committing"):
        checkpoint.settle()
    assert _commits(journal) == []


def test_revocation_waits_for_the_pending_batches_then_commits_synchronously() -> None:
    journal: list = []
    checkpoint, producer, _ = _deferred(journal)
    producer.produce(OUTPUT, b"a", b"v")
    checkpoint.commit_when_acknowledged({INPUT: {0: 5, 1: 9}})
    checkpoint.commit_sync([0])
    assert journal[1:] == [("flush",), ("commit", [(INPUT, 0, 6), (INPUT, 1, 10)], "async"),
                           ("commit", [(INPUT, 0, 6)], "sync")]


def test_a_lost_partitions_pending_offsets_are_not_committed() -> None:
    journal: list = []
    checkpoint, producer, client = _deferred(journal)
    producer.produce(OUTPUT, b"a", b"v")
    checkpoint.commit_when_acknowledged({INPUT: {0: 5, 1: 9}})
    checkpoint.forget([1])
    client.ack()
    checkpoint.settle()
    assert _commits(journal) == [("commit", [(INPUT, 0, 6)], "async")]


def test_many_unacknowledged_batches_make_the_stage_wait_for_them() -> None:
    from radstream.streams.checkpoint import MAX_PENDING

    journal: list = []
    checkpoint, producer, _ = _deferred(journal)
    for offset in range(MAX_PENDING + 1):
        producer.produce(OUTPUT, b"a", b"v")
        checkpoint.commit_when_acknowledged({INPUT: {0: offset}})
    assert journal[-2:] == [("flush",), ("commit", [(INPUT, 0, MAX_PENDING + 1)], "async")]


def test_a_stateful_stage_cannot_skip_the_wait() -> None:
    checkpoint, _, _ = _checkpoint([])
    with pytest.raises(TypeError, match="changelog"):
        checkpoint.commit_when_acknowledged({INPUT: {0: 1}})
