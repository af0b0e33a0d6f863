"""EventPublisher.close(): a command's producer destroyed before its broker stops prints nothing.

`bench --chaos` and `bench --stat` printed librdkafka's disconnect and refused-reconnect lines
on the terminal at the end of every run, because their producer outlived the stack's broker.
The check runs in a child process because librdkafka writes those lines to fd 2 itself.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

CHILD = """
import sys, time
from radstream.services.broker import EmbeddedBroker
from radstream.streams.kafka.settings import KafkaSettings
from radstream.streams.kafka.producer import EventPublisher
broker = EmbeddedBroker().start()
publisher = EventPublisher(KafkaSettings(bootstrap=broker.bootstrap))
publisher.send_raw("publisher-close", None, b"v")
publisher.flush(10)
if sys.argv[1] == "close":
    publisher.close()
broker.stop()
time.sleep(1.5)  # librdkafka retries the bootstrap connection within this time
print("end")
"""


@pytest.mark.parametrize("mode", ["keep", "close"])
def test_closed_publisher_prints_nothing_when_its_broker_goes(mode: str) -> None:
    run = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "end"
    librdkafka_lines = [line for line in run.stderr.splitlines() if "|FAIL|rdkafka#producer" in line]
    if mode == "keep":  # the control: without close() the lines are there, so the check can fail
        assert librdkafka_lines
    else:
        assert librdkafka_lines == []
