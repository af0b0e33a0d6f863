"""The embedded broker with `--durable` (Tansu's S3 engine, here on the session's SeaweedFS through
`s3://BUCKET/`; `--durable DIR` is the same engine on a SeaweedFS that radstream starts in DIR):
topics, their records (a compacted one too) and a group's committed offset survive a broker
restart; without --durable, `radstream up` says once, plainly, that it keeps nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from radstream.services.broker import free_port

pytestmark = pytest.mark.integration


def _cli(env: dict[str, str], *args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "radstream.services.cli", *args], env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def _start_broker(env: dict[str, str], bucket: str, port: int) -> subprocess.Popen:
    proc = _cli(env, "broker", "--port", str(port), "--durable", f"s3://{bucket}/")
    assert proc.stdout is not None
    line = proc.stdout.readline()  # printed once the broker answers
    assert "listening on" in line and f"topics kept in s3://{bucket}/" in line, line + _rest(proc)
    return proc


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)


def _rest(proc: subprocess.Popen) -> str:
    proc.kill()
    return proc.communicate()[0] or ""


def _read(bootstrap: str, topic: str, partitions: int, expected: int) -> list[bytes]:
    """The topic's records from the start, until `expected` of them came (or 30 s passed)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{time.time_ns()}", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    values, deadline = [], time.monotonic() + 30
    while len(values) < expected and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            values.append(m.value())
    c.close()
    return values


def test_topics_records_and_offsets_survive_a_restart_of_the_durable_broker(seaweedfs) -> None:
    env, bucket, port = seaweedfs.env(), seaweedfs.bucket(), free_port()
    bootstrap = f"127.0.0.1:{port}"
    proc = _start_broker(env, bucket, port)
    try:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for f in admin.create_topics([NewTopic("t.study.results", 3, 1),
                                      NewTopic("t.config.thresholds", 1, 1, config={"cleanup.policy": "compact"})]).values():
            f.result(20)
        producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
        for i in range(12):
            producer.produce("t.study.results", key=f"study-{i}".encode(), value=f"result-{i}".encode())
        for v in range(3):
            producer.produce("t.config.thresholds", key=b"global", value=f"version-{v}".encode())
        assert producer.flush(30) == 0
        group = Consumer({"bootstrap.servers": bootstrap, "group.id": "radstream-export-dicom", "enable.auto.commit": False})
        group.commit(offsets=[TopicPartition("t.study.results", 0, 2)], asynchronous=False)
        group.close()
    finally:
        _stop(proc)
    assert any(k.endswith(".batch") for k in seaweedfs.keys(bucket, "clusters/"))  # the records are objects

    port = free_port()  # a new broker process on another port: only the data carried over
    bootstrap = f"127.0.0.1:{port}"
    proc = _start_broker(env, bucket, port)
    try:
        topics = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=20).topics
        assert {"t.study.results", "t.config.thresholds"} <= set(topics)
        assert sorted(_read(bootstrap, "t.study.results", 3, 12)) == sorted(f"result-{i}".encode() for i in range(12))
        assert _read(bootstrap, "t.config.thresholds", 1, 3)[-1] == b"version-2"
        group = Consumer({"bootstrap.servers": bootstrap, "group.id": "radstream-export-dicom"})
        assert group.committed([TopicPartition("t.study.results", 0)], timeout=20)[0].offset == 2
        group.close()
    finally:
        _stop(proc)


def test_up_without_bootstrap_says_once_that_the_embedded_broker_keeps_nothing(tmp_path: Path) -> None:
    env = {"RADSTREAM_HOME": str(tmp_path / "home"), "RADSTREAM_BOOTSTRAP": "", "RADSTREAM_MODELS": "demo-qc"}
    proc = _cli(env, "up")
    assert proc.stdout is not None
    first = proc.stdout.readline()  # printed after up's SIGTERM handler is in place
    proc.send_signal(signal.SIGTERM)
    out = first + proc.communicate(timeout=120)[0]
    assert first.startswith("note: the embedded broker keeps everything in memory"), out
    assert out.count("keeps everything in memory") == 1


def test_durable_is_refused_with_a_real_kafka_in_one_line(tmp_path: Path) -> None:
    proc = _cli({"RADSTREAM_HOME": str(tmp_path)}, "up", "--bootstrap", "127.0.0.1:9", "--durable", str(tmp_path / "d"))
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode != 0 and out.strip().count("\n") == 0 and "--durable is for the embedded broker" in out
