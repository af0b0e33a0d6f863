"""Retry until answered: how a stage whose peer is down waits without losing or skipping anything.

The export edges send to a hospital system. When it does not answer (a transient error
after the runtime's quick retries), dead-lettering would skip the result, and sleeping
in the loop would get the consumer thrown out of its group. Instead the runner holds
the partition: it commits nothing from the unanswered message on, seeks the partition
back to it, pauses it, and resumes it after a bounded exponential backoff, while the
main loop keeps polling (group membership, other partitions, SIGTERM). After
`unhealthy_after_s` without an answer, /healthz turns unhealthy with the reason.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition
from radstream.domain.retry import RetryPolicy

log = logging.getLogger(__name__)


@dataclass
class _Hold:
    offset: int
    attempts: int
    resume_at: float


class PartitionHolds:
    """The partitions held for an unanswered message, and since when the peer has not answered.

    A hold is per (topic, partition): a laned stage (D-044) reads its input topic and its `.stat`
    twin, and an urgent message that waits must not move the routine partition of the same number.
    `topic` is the input topic, the default for every call that names none."""

    def __init__(self, consumer: Consumer, topic: str, backoff_s: float = 1.0, cap_s: float = 30.0,
                 unhealthy_after_s: float = 300.0) -> None:
        self._consumer = consumer
        self.topic = topic
        self.policy = RetryPolicy(max_attempts=math.inf, base_s=backoff_s, cap_s=cap_s)  # type: ignore[arg-type]
        self.unhealthy_after_s = unhealthy_after_s
        self._holds: dict[tuple[str, int], _Hold] = {}
        self._attempts: dict[tuple[str, int], int] = {}  # consecutive unanswered rounds, per partition
        self.unanswered_since: float | None = None
        self.last_reason = ""

    def hold(self, partition: int, offset: int, reason: str, topic: str | None = None) -> None:
        """Seek `partition` back to `offset` and pause it until its backoff has passed."""
        key = (topic or self.topic, partition)
        attempts = self._attempts.get(key, 0) + 1
        self._attempts[key] = attempts
        delay = self.policy.delay(min(attempts, 32))  # capped long before 2**n overflows
        tp = TopicPartition(key[0], partition, offset)
        self._consumer.pause([tp])
        self._consumer.seek(tp)
        self._holds[key] = _Hold(offset, attempts, time.monotonic() + delay)
        if self.unanswered_since is None:
            self.unanswered_since = time.time()
        self.last_reason = reason
        log.warning("no answer for %s[%d]@%d (round %d): %s; retrying in %.1fs, nothing committed",
                    key[0], partition, offset, attempts, reason, delay)

    def resume_due(self) -> None:
        """Resume the held partitions whose backoff has passed; they refetch from the held offset."""
        now = time.monotonic()
        due = [k for k, h in self._holds.items() if h.resume_at <= now]
        if due:
            self._consumer.resume([TopicPartition(t, p) for t, p in due])
            for k in due:
                del self._holds[k]

    def answered(self, partitions: set[int] | set[tuple[str, int]]) -> None:
        """Messages of these partitions (numbers of the input topic, or (topic, partition)) were
        answered: their backoff starts again from the first step."""
        for p in partitions:
            self._attempts.pop(p if isinstance(p, tuple) else (self.topic, p), None)
        if not self._attempts:
            self.unanswered_since = None
            self.last_reason = ""

    def drop(self, partitions: list[int]) -> None:
        """Revoked partitions (numbers, of every topic read): their new owner starts from the last
        commit, before the held message."""
        for key in [k for k in {*self._holds, *self._attempts} if k[1] in partitions]:
            self._holds.pop(key, None)
            self._attempts.pop(key, None)
        if not self._attempts:
            self.unanswered_since = None

    def is_held(self, partition: int, topic: str | None = None) -> bool:
        return (topic or self.topic, partition) in self._holds

    def health(self) -> dict[str, object]:
        """Fields for /healthz; `healthy` is False once the peer has been silent too long."""
        if self.unanswered_since is None:
            return {"unanswered_for_s": 0.0, "healthy": True}
        silent = time.time() - self.unanswered_since
        return {"unanswered_for_s": round(silent, 1), "unanswered_reason": self.last_reason,
                "held_partitions": sorted({p for _, p in self._holds}), "healthy": silent < self.unhealthy_after_s}
