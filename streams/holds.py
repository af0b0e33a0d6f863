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
    """The partitions held for an unanswered message, and since when the peer has not answered."""

    def __init__(self, consumer: Consumer, topic: str, backoff_s: float = 1.0, cap_s: float = 30.0,
                 unhealthy_after_s: float = 300.0) -> None:
        self._consumer = consumer
        self.topic = topic
        self.policy = RetryPolicy(max_attempts=math.inf, base_s=backoff_s, cap_s=cap_s)  # type: ignore[arg-type]
        self.unhealthy_after_s = unhealthy_after_s
        self._holds: dict[int, _Hold] = {}
        self._attempts: dict[int, int] = {}  # consecutive unanswered rounds, per partition
        self.unanswered_since: float | None = None
        self.last_reason = ""

    def hold(self, partition: int, offset: int, reason: str) -> None:
        """Seek `partition` back to `offset` and pause it until its backoff has passed."""
        attempts = self._attempts.get(partition, 0) + 1
        self._attempts[partition] = attempts
        delay = self.policy.delay(min(attempts, 32))  # capped long before 2**n overflows
        tp = TopicPartition(self.topic, partition, offset)
        self._consumer.pause([tp])
        self._consumer.seek(tp)
        self._holds[partition] = _Hold(offset, attempts, time.monotonic() + delay)
        if self.unanswered_since is None:
            self.unanswered_since = time.time()
        self.last_reason = reason
        log.warning("no answer for %s[%d]@%d (round %d): %s; retrying in %.1fs, nothing committed",
                    self.topic, partition, offset, attempts, reason, delay)

    def resume_due(self) -> None:
        """Resume the held partitions whose backoff has passed; they refetch from the held offset."""
        now = time.monotonic()
        due = [p for p, h in self._holds.items() if h.resume_at <= now]
        if due:
            self._consumer.resume([TopicPartition(self.topic, p) for p in due])
            for p in due:
                del self._holds[p]

    def answered(self, partitions: set[int]) -> None:
        """Messages of these partitions were answered: their backoff starts again from the first step."""
        for p in partitions:
            self._attempts.pop(p, None)
        if not self._attempts:
            self.unanswered_since = None
            self.last_reason = ""

    def drop(self, partitions: list[int]) -> None:
        """Revoked partitions: their new owner starts from the last commit, before the held message."""
        for p in partitions:
            self._holds.pop(p, None)
            self._attempts.pop(p, None)
        if not self._attempts:
            self.unanswered_since = None

    def is_held(self, partition: int) -> bool:
        return partition in self._holds

    def health(self) -> dict[str, object]:
        """Fields for /healthz; `healthy` is False once the peer has been silent too long."""
        if self.unanswered_since is None:
            return {"unanswered_for_s": 0.0, "healthy": True}
        silent = time.time() - self.unanswered_since
        return {"unanswered_for_s": round(silent, 1), "unanswered_reason": self.last_reason,
                "held_partitions": sorted(self._holds), "healthy": silent < self.unhealthy_after_s}
