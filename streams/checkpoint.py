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

A stateless stage (no changelog, so no step 2) need not wait in step 1 (D-060):
`commit_when_acknowledged` notes the batch's offsets with the producer's count of messages
sent so far, and `settle`, called by the runtime on every turn of its loop, commits them
once every message sent before that count is acknowledged, oldest batch first, so a later
batch never covers an earlier one's unacknowledged outputs. The same rule as step 1
otherwise: a refused message, or one not acknowledged within the flush timeout, raises
DeliveryFailed and commits nothing from that batch on (D-009). Revocation waits for the
pending batches of every partition before its synchronous commit; a lost partition's are
dropped; shutdown commits those acknowledged once in-flight messages have drained.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import Message, TopicPartition

from radstream.streams.kafka.producer import AcknowledgedProducer, DeliveryFailed
from radstream.streams.state import ChangelogStore

log = logging.getLogger(__name__)

FLUSH_TIMEOUT_S = 30.0
SHUTDOWN_DRAIN_S = 10.0
MAX_PENDING = 32  # batches awaiting acknowledgement before a stateless stage waits for them


class OffsetCommitter(Protocol):
    """The one thing a checkpoint needs from the group consumer."""

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> Any: ...


def last_offsets(msgs: Iterable[Message]) -> dict[int, int]:
    """partition -> the highest offset among `msgs`."""
    last: dict[int, int] = {}
    for m in msgs:
        last[m.partition()] = max(last.get(m.partition(), -1), m.offset())
    return last


@dataclass
class _Pending:
    """One stateless batch whose offsets wait for its outputs' acknowledgement."""

    mark: int  # the producer's `sent` after the batch's outputs and DLQ records
    since: float  # time.monotonic() when the batch was noted
    offsets: dict[str, dict[int, int]]  # topic -> partition -> last offset handled


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
        self._pending: list[_Pending] = []  # stateless batches not yet acknowledged, oldest first

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
        self._commit_async({topic or self.input_topic: processed})

    def _commit_async(self, processed: dict[str, dict[int, int]]) -> None:
        offsets = [TopicPartition(topic, p, o + 1) for topic, parts in processed.items() for p, o in parts.items()]
        if not offsets:
            return
        self._consumer.commit(offsets=offsets, asynchronous=True)
        for tp in offsets:
            self._committed[(tp.topic, tp.partition)] = tp.offset

    # -- stateless stages: commit once acknowledged, without waiting (D-060) --------------------
    def commit_when_acknowledged(self, processed: dict[str, dict[int, int]]) -> None:
        """Steps 1 and 3 for a stateless stage's batch (topic -> partition -> last offset
        handled), without waiting: committed by this or a later `settle` once acknowledged."""
        if self.state is not None:
            raise TypeError("a stateful stage writes its changelog after its outputs are acknowledged: use commit")
        self._pending.append(_Pending(self._producer.sent, time.monotonic(), processed))
        if len(self._pending) > MAX_PENDING:  # the broker lags far behind: wait for it
            self._wait_for_pending()
        else:
            self.settle()

    def settle(self, timed_out: bool = False) -> None:
        """Commit the pending batches whose outputs are acknowledged, oldest first. Raises
        DeliveryFailed, committing nothing from that batch on, when the oldest pending one has a
        refused message, or is unacknowledged after FLUSH_TIMEOUT_S (or `timed_out`: a wait
        for it ran out)."""
        if not self._pending:
            return
        self._producer.poll(0)  # serve the delivery reports that have come
        ready: dict[str, dict[int, int]] = {}
        while self._pending and self._producer.acknowledged(self._pending[0].mark):
            for topic, parts in self._pending.pop(0).offsets.items():
                mine = ready.setdefault(topic, {})
                for p, o in parts.items():
                    mine[p] = max(mine.get(p, -1), o)
        self._commit_async(ready)
        if not self._pending:
            return
        head = self._pending[0]
        if self._producer.failed(head.mark) or timed_out or time.monotonic() - head.since > FLUSH_TIMEOUT_S:
            self._pending.clear()
            try:
                self._producer.flush(0)  # raises with the broker's errors, and reports them once
            except DeliveryFailed as exc:
                raise DeliveryFailed(f"outputs not acknowledged, not committing: {exc}") from None
            raise DeliveryFailed(f"outputs not acknowledged within {FLUSH_TIMEOUT_S:g}s, not committing")

    def _wait_for_pending(self) -> None:
        """Wait (up to FLUSH_TIMEOUT_S) for every pending batch, then settle."""
        if self._pending:
            remaining = self._producer.drain(FLUSH_TIMEOUT_S)
            self.settle(timed_out=remaining > 0)

    def forget(self, partitions: list[int]) -> None:
        """Partitions lost to another member: their pending offsets are not committed."""
        for pending in self._pending:
            for parts in pending.offsets.values():
                for p in partitions:
                    parts.pop(p, None)

    def commit_sync(self, partitions: list[int] | None = None) -> None:
        """Make the asynchronous commits of these partitions (default: all) land; revocation and shutdown.
        A stateless stage's pending batches are waited for first (and commit nothing if refused)."""
        failure: DeliveryFailed | None = None
        try:
            self._wait_for_pending()
        except DeliveryFailed as exc:  # the acknowledged ones are committed below; then the stage exits (D-009)
            failure = exc
        offsets = [TopicPartition(t, p, o) for (t, p), o in self._committed.items()
                   if partitions is None or p in partitions]
        if offsets:
            try:
                self._consumer.commit(offsets=offsets, asynchronous=False)
            except Exception as exc:  # the group moved on; the new owner re-reads from the last commit
                log.warning("final commit failed (%s); those messages will be redelivered", exc)
        for tp in offsets:
            self._committed.pop((tp.topic, tp.partition), None)
        if failure is not None:
            raise failure

    def close(self) -> None:
        """At shutdown: let in-flight messages drain, then make the last commits land (of a
        stateless stage's pending batches, those acknowledged)."""
        self._producer.drain(SHUTDOWN_DRAIN_S)
        try:
            self.settle(timed_out=True)
        except DeliveryFailed as exc:
            log.warning("at shutdown: %s; those messages will be redelivered", exc)
        self.commit_sync()
