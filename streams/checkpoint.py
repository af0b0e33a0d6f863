"""The commit protocol: an input offset is committed only once everything it caused is durable.

A checkpoint, after a batch has been processed and its outputs and DLQ records produced:

1. Flush the producer. The broker must acknowledge every output and DLQ record of the
   batch (idempotent producer, acks=all). If one is not acknowledged: DeliveryFailed,
   nothing is committed, the process exits (D-009) and the batch is redelivered.
2. Produce the stateful stage's changelog writes and flush again, under the same rule.
   Outputs go first, so a crash between 1 and 2 can only repeat an output (it carries the
   same idempotency key), never lose one: the state never records as emitted an output
   that was not acknowledged.
3. Commit the input offsets (the next offset of each partition), asynchronously: the
   outputs are acknowledged, so a commit lost in a crash only means redelivery.

Timer outputs (`Stage.on_tick`) have no input offsets: their checkpoint is steps 1 and 2.

On revocation and at shutdown, `commit_sync` makes step 3's asynchronous commits of those
partitions land before the partitions move, so the next owner starts after what this
process finished. It commits only offsets that went through steps 1-3 and flushes nothing:
a batch whose outputs failed must not get its changelog written.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Protocol

from confluent_kafka import Message, TopicPartition

from radstream.streams.kafka.producer import AcknowledgedProducer, DeliveryFailed
from radstream.streams.state import ChangelogStore

log = logging.getLogger(__name__)

FLUSH_TIMEOUT_S = 30.0
SHUTDOWN_DRAIN_S = 10.0


class OffsetCommitter(Protocol):
    """The one thing a checkpoint needs from the group consumer."""

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> Any: ...


def last_offsets(msgs: Iterable[Message]) -> dict[int, int]:
    """partition -> the highest offset among `msgs`."""
    last: dict[int, int] = {}
    for m in msgs:
        last[m.partition()] = max(last.get(m.partition(), -1), m.offset())
    return last


class Checkpoint:
    """Runs the steps above for the stage's input topic (and any further ones it consumes, named
    in `commit`), with the stage's changelog (if it has one)."""

    def __init__(self, producer: AcknowledgedProducer, consumer: OffsetCommitter, input_topic: str,
                 state: ChangelogStore | None = None) -> None:
        self._producer = producer
        self._consumer = consumer
        self.input_topic = input_topic
        self.state = state
        self._committed: dict[tuple[str, int], int] = {}  # (topic, partition) -> next offset, as last committed

    def commit(self, processed: dict[int, int] | None = None, topic: str | None = None) -> None:
        """Steps 1-3 for `processed` (partition -> last offset handled, of `topic`, default the input
        topic); without it, steps 1 and 2."""
        try:  # 1. outputs and DLQ records
            self._producer.flush(FLUSH_TIMEOUT_S)
        except DeliveryFailed as exc:
            raise DeliveryFailed(f"outputs not acknowledged, not committing: {exc}") from None
        if self.state is not None and self.state.flush_to(self._producer):
            try:  # 2. the changelog
                self._producer.flush(FLUSH_TIMEOUT_S)
            except DeliveryFailed as exc:
                raise DeliveryFailed(f"changelog writes not acknowledged, not committing: {exc}") from None
        if not processed:
            return
        # 3. the input offsets
        offsets = [TopicPartition(topic or self.input_topic, p, o + 1) for p, o in processed.items()]
        self._consumer.commit(offsets=offsets, asynchronous=True)
        for tp in offsets:
            self._committed[(tp.topic, tp.partition)] = tp.offset

    def commit_sync(self, partitions: list[int] | None = None) -> None:
        """Make the asynchronous commits of these partitions (default: all) land; revocation and shutdown."""
        offsets = [TopicPartition(t, p, o) for (t, p), o in self._committed.items()
                   if partitions is None or p in partitions]
        if offsets:
            try:
                self._consumer.commit(offsets=offsets, asynchronous=False)
            except Exception as exc:  # the group moved on; the new owner re-reads from the last commit
                log.warning("final commit failed (%s); those messages will be redelivered", exc)
        for tp in offsets:
            self._committed.pop((tp.topic, tp.partition), None)

    def close(self) -> None:
        """At shutdown: let in-flight messages drain, then make the last commits land."""
        self._producer.drain(SHUTDOWN_DRAIN_S)
        self.commit_sync()
