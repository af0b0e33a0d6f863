"""What the export-stage integration tests watch: a condition over time, and the group's commit."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import TopicPartition
from radstream.streams.kafka.consumer import group_consumer
from radstream.streams.kafka.settings import KafkaSettings
from radstream.streams.kafka.topics import STUDY_RESULTS


def wait_until(what: str, check: Callable[[], Any], timeout_s: float = 60.0) -> Any:
    """The first truthy value of `check()`, polled every 0.2 s; AssertionError naming `what` on timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def committed_offset(settings: KafkaSettings, target: str) -> int:
    """The offset `radstream-export-<target>` has committed on study.results partition 0."""
    consumer = group_consumer(settings, settings.group(f"radstream-export-{target}"))
    try:
        return consumer.committed([TopicPartition(settings.topic(STUDY_RESULTS), 0)], timeout=10)[0].offset
    finally:
        consumer.close()
