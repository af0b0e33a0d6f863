"""The STAT lane's consuming side: urgent messages first, by pause and resume (D-044).

A laned stage subscribes to its input topic and the topic's `.stat` twin. Whenever urgent
work is pending (see `StatFirst`), the routine partitions are paused and the routine messages
already in hand are sought back (they are read again later, so none is skipped or committed
early); the urgent ones are handled at once. Once nothing urgent is pending, the routine
partitions resume. An urgent study therefore waits for at most the batch
in hand, not for the routine backlog. The producing side is `topics.lane_of`, in the runtime.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from confluent_kafka import TopicPartition

log = logging.getLogger(__name__)


class Pausable(Protocol):
    """What the lane needs of the group consumer."""

    def assignment(self) -> list[TopicPartition]: ...
    def pause(self, partitions: list[TopicPartition]) -> None: ...
    def resume(self, partitions: list[TopicPartition]) -> None: ...
    def seek(self, partition: TopicPartition) -> None: ...
    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]: ...
    def get_watermark_offsets(self, partition: TopicPartition, timeout: float = ..., cached: bool = ...) -> Any: ...


class StatFirst:
    """Chooses, poll by poll, which messages the runner handles now (physical topic names).

    Urgent work is pending when a poll brought urgent messages, or when a `.stat` partition's
    fetch position is behind its high watermark (an urgent message is on its way, not yet in
    hand), or, for `settle_s` after an assignment, while a `.stat` partition has not been
    fetched yet (so a stage that starts behind a backlog does not handle routine work first
    only because the routine fetch answered first). Both come from the client's own fetch state:
    no request to the broker per poll.
    """

    def __init__(self, consumer: Pausable, routine_topic: str, stat_topic: str, settle_s: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.consumer = consumer
        self.routine_topic = routine_topic
        self.stat_topic = stat_topic
        self.settle_s = settle_s
        self.clock = clock
        self.paused = False
        self.urgent_seen = 0
        self._assigned_at = clock()
        self._stale = False

    def assigned(self) -> None:
        """Partitions moved: their fetch state starts unknown again, and newly assigned routine
        partitions are not paused yet, so the next poll applies the lane's state to all of them."""
        self._assigned_at = self.clock()
        self._stale = True

    def select(self, msgs: list[Any]) -> list[Any]:
        urgent = [m for m in msgs if m.topic() == self.stat_topic]
        if not urgent and not self._stat_pending():
            if self.paused or self._stale:
                self._resume()
            return msgs
        first: dict[int, int] = {}
        for m in msgs:
            if m.topic() != self.stat_topic:
                first[m.partition()] = min(first.get(m.partition(), m.offset()), m.offset())
        for partition, offset in first.items():  # read again after the urgent ones
            self.consumer.seek(TopicPartition(self.routine_topic, partition, offset))
        if not self.paused or self._stale:
            self._pause()
        self.urgent_seen += len(urgent)
        return urgent

    def _stat_pending(self) -> bool:
        stat = [TopicPartition(tp.topic, tp.partition) for tp in self.consumer.assignment()
                if tp.topic == self.stat_topic]
        if not stat:
            return False
        settling = self.clock() - self._assigned_at < self.settle_s
        for tp in self.consumer.position(stat):
            ends = self.consumer.get_watermark_offsets(tp, cached=True)
            high = ends[1] if ends else -1
            if high < 0 or tp.offset < 0:  # not fetched yet
                if settling:
                    return True
                continue
            if tp.offset < high:
                return True
        return False

    def _routine_assigned(self) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition) for tp in self.consumer.assignment()
                if tp.topic == self.routine_topic]

    def _pause(self) -> None:
        self.consumer.pause(self._routine_assigned())
        self.paused, self._stale = True, False
        log.debug("urgent messages: routine partitions of %s paused", self.routine_topic)

    def _resume(self) -> None:
        self.consumer.resume(self._routine_assigned())
        self.paused, self._stale = False, False
        log.debug("no urgent messages: routine partitions of %s resumed", self.routine_topic)
