"""Key/value state for the stateful stages (fuse, qc): the `StateStore` a stage is given.

Two implementations. `MemoryStore` is a dict, for the in-process pipeline and the unit
tests, where nothing has to outlive the process. `ChangelogStore` is what the runtime
needs: a dict per input partition, mirrored to a compacted changelog topic that is
co-partitioned with the input: the state for a key lives in the changelog partition
with the same number as the input partition that carried the key. On assignment, the
partition's state is rebuilt by reading its changelog to the end, before any input is
processed. Writes are buffered and produced only after the stage's outputs are
acknowledged (step 2 of streams/checkpoint.py). Its restore, drop and flush hooks are
for the runtime and the checkpoint; stages see only the protocol.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any, Protocol

from radstream.streams.kafka.consumer import standalone_consumer
from radstream.streams.kafka.producer import AcknowledgedProducer
from radstream.streams.kafka.reader import read_to_end
from radstream.streams.kafka.settings import KafkaSettings

log = logging.getLogger(__name__)


class StateStore(Protocol):
    """What a stateful stage may do with its state. Values are JSON-serialisable."""

    def get(self, key: str) -> Any | None: ...

    def put(self, key: str, value: Any) -> None: ...

    def delete(self, key: str) -> None: ...

    def items(self) -> Iterator[tuple[str, Any]]:
        """Every (key, value); the store may be changed while iterating."""
        ...

    def __len__(self) -> int: ...


class MemoryStore:
    """A StateStore that is a dict: nothing is kept beyond the process."""

    def __init__(self) -> None:
        self._entries: dict[str, Any] = {}

    def get(self, key: str) -> Any | None:
        return self._entries.get(key)

    def put(self, key: str, value: Any) -> None:
        self._entries[key] = value

    def delete(self, key: str) -> None:
        self._entries.pop(key, None)

    def items(self) -> Iterator[tuple[str, Any]]:
        yield from list(self._entries.items())

    def __len__(self) -> int:
        return len(self._entries)


class ChangelogStore:
    """A StateStore mirrored to a compacted changelog topic, per input partition."""

    def __init__(self, settings: KafkaSettings, changelog_topic: str) -> None:
        self._settings = settings
        self.topic = settings.topic(changelog_topic)
        self._parts: dict[int, dict[str, Any]] = {}
        self._dirty: dict[tuple[int, str], Any] = {}
        self.current_partition = 0

    # -- the stage-facing API ------------------------------------------------
    def get(self, key: str) -> Any | None:
        return self._parts.get(self._partition_of(key), {}).get(key)

    def put(self, key: str, value: Any) -> None:
        part = self._partition_of(key)
        self._parts.setdefault(part, {})[key] = value
        self._dirty[(part, key)] = value

    def delete(self, key: str) -> None:
        part = self._partition_of(key)
        if self._parts.get(part, {}).pop(key, None) is not None:
            self._dirty[(part, key)] = None

    def items(self) -> Iterator[tuple[str, Any]]:
        """Every (key, value) of the assigned partitions; safe to mutate while iterating."""
        for part in list(self._parts):
            for key, value in list(self._parts.get(part, {}).items()):
                self.current_partition = part
                yield key, value

    def __len__(self) -> int:
        return sum(len(p) for p in self._parts.values())

    # -- the runtime-facing API ----------------------------------------------
    def flush_to(self, producer: AcknowledgedProducer) -> int:
        """Produce buffered writes (tombstones for deletes). The caller flushes the producer."""
        for (part, key), value in self._dirty.items():
            data = None if value is None else json.dumps(value, separators=(",", ":")).encode()
            producer.produce(self.topic, key.encode(), data, partition=part)
        count = len(self._dirty)
        self._dirty.clear()
        return count

    def restore(self, partitions: list[int], timeout_s: float = 60.0) -> int:
        """Rebuild the given partitions from the changelog; returns records read."""
        consumer = standalone_consumer(self._settings)
        read = 0
        for part in partitions:
            self._parts[part] = {}
        try:
            for msg in read_to_end(consumer, self.topic, partitions, timeout_s):
                entries = self._parts[msg.partition()]
                key = msg.key().decode()
                if msg.value() is None:
                    entries.pop(key, None)
                else:
                    entries[key] = json.loads(msg.value())
                read += 1
        finally:
            consumer.close()
        log.info("restored %d changelog records for partitions %s of %s", read, partitions, self.topic)
        return read

    def drop(self, partitions: list[int]) -> None:
        for part in partitions:
            self._parts.pop(part, None)
            for dirty in [d for d in self._dirty if d[0] == part]:
                self._dirty.pop(dirty)

    def _partition_of(self, key: str) -> int:
        for part, entries in self._parts.items():
            if key in entries:
                return part
        return self.current_partition
