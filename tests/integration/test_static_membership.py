"""Static group membership and the cooperative-sticky assignor against the embedded broker.

A stage process killed with SIGKILL and started again under the same `group.instance.id`
takes back the partitions it held, and the other member of the group keeps its own
throughout: no rebalance revokes them (what makes a restart quick on Apache Kafka, and, with
Tansu's pause of 3 s per join and sync phase, on the embedded broker too; D-043).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest

from radstream.streams.kafka.admin import admin_client
from radstream.streams.kafka.consumer import group_consumer
from radstream.streams.kafka.settings import KafkaSettings

pytestmark = pytest.mark.integration

# A group member in its own process, as a stage is: it prints each assignment as a JSON line.
MEMBER = """
import json, sys
from radstream.streams.kafka.consumer import group_consumer
from radstream.streams.kafka.settings import KafkaSettings
settings = KafkaSettings.from_env()
consumer = group_consumer(settings, sys.argv[1], static_member=True)
consumer.subscribe([sys.argv[2]], on_assign=lambda c, parts: print(json.dumps(sorted(p.partition for p in parts)),
                                                                   flush=True))
while True:
    consumer.poll(0.2)
"""


class Member:
    """`MEMBER` in a child process; its assignments arrive on a queue (read by a thread)."""

    def __init__(self, bootstrap: str, group: str, topic: str, instance: str) -> None:
        env = {**os.environ, "RADSTREAM_BOOTSTRAP": bootstrap, "RADSTREAM_GROUP_INSTANCE_ID": instance,
               "RADSTREAM_KAFKA_SESSION_TIMEOUT_MS": "60000", "RADSTREAM_KAFKA_HEARTBEAT_INTERVAL_MS": "500"}
        self.proc = subprocess.Popen([sys.executable, "-c", MEMBER, group, topic], env=env, stdout=subprocess.PIPE,
                                     text=True)
        self.assignments: queue.Queue[list[int]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.assignments.put(json.loads(line))

    def first_assignment(self, stayer, timeout_s: float = 90.0) -> list[int]:
        """The first non-empty assignment, polling the in-process member meanwhile."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            stayer.poll(0.2)
            try:
                parts = self.assignments.get_nowait()
            except queue.Empty:
                continue
            if parts:
                return parts
        raise AssertionError("the member was never assigned a partition")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


def test_a_killed_static_member_gets_its_partitions_back_and_the_other_keeps_its_own(broker) -> None:
    from confluent_kafka.admin import NewTopic

    topic, group = f"static-{uuid.uuid4().hex[:8]}", f"static-group-{uuid.uuid4().hex[:8]}"
    admin = admin_client(KafkaSettings(bootstrap=broker.bootstrap))
    admin.create_topics([NewTopic(topic, 3, 1)])[topic].result(30)
    # The session timeout (60 s) is longer than the whole test: the group can only hand the
    # partitions back through the instance id, never because the dead member's session ran out.
    settings = KafkaSettings(bootstrap=broker.bootstrap, group_instance_id="slot-b", session_timeout_ms=60000,
                             heartbeat_interval_ms=500)
    assert settings.consumer_config(group, static_member=True)["partition.assignment.strategy"] == "cooperative-sticky"
    stayer = group_consumer(settings, group, static_member=True)
    revoked: list[list[int]] = []
    held: set[int] = set()
    stayer.subscribe([topic], on_assign=lambda c, parts: held.update(p.partition for p in parts),
                     on_revoke=lambda c, parts: revoked.append(sorted(p.partition for p in parts)))
    first = Member(broker.bootstrap, group, topic, "slot-a")
    second = None
    try:
        before = first.first_assignment(stayer)
        for _ in range(30):  # settle: the stayer sees the final split
            stayer.poll(0.1)
        assert held and set(before) | held == {0, 1, 2} and not set(before) & held
        kept = set(held)
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(10)
        second = Member(broker.bootstrap, group, topic, "slot-a")
        after = second.first_assignment(stayer)
        for _ in range(20):
            stayer.poll(0.1)
        assert after == before, "the restarted slot holds what the killed process held"
        assert held == kept and not revoked, "the other member was never rebalanced"
    finally:
        first.stop()
        if second is not None:
            second.stop()
        stayer.close()
