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


# --- the whole stack: `radstream up --durable` stopped and started again ---------------------------

def _up_durable(env: dict[str, str], bucket: str) -> tuple[subprocess.Popen, str]:
    """`radstream up --durable s3://BUCKET/ --no-monitor`; returns it and its bootstrap once its topics are ready."""
    proc = _cli(env, "up", "--no-monitor", "--durable", f"s3://{bucket}/")
    assert proc.stdout is not None
    seen = []
    while not (seen and seen[-1].startswith("radstream up on ")):
        line = proc.stdout.readline()
        assert line, "".join(seen) + _rest(proc)
        seen.append(line)
    assert any(f"topics kept in s3://{bucket}/" in s for s in seen) and not any("in memory" in s for s in seen), seen
    return proc, seen[-1].split()[3]


def _stages_ready(home: Path, n: int, timeout_s: float = 120, version: int | None = None) -> list[dict]:
    """The `n` stages' status rows once each holds partitions (and, given `version`, applies it)."""
    from radstream.services.status import stage_statuses

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rows = [r for r in stage_statuses(home / "run") if r["health"].get("partitions")
                and (version is None or r["health"].get("config_version") == version)]
        if len(rows) == n:
            return rows
        time.sleep(0.3)
    raise AssertionError(f"{n} stages not ready in {timeout_s:.0f}s: {stage_statuses(home / 'run')}")


def _final(reader, topic: str, study: str, images: int, timeout_s: float = 120) -> dict:
    found = reader.poll_until(lambda rs: any(r["study_uid"] == study and r["final"] and len(r["images"]) == images
                                             for r in rs[topic]), timeout_s)
    assert found, [(r["study_uid"], r["final"], len(r["images"])) for r in reader.records[topic]]
    return next(r for r in reader.records[topic] if r["study_uid"] == study and r["final"] and len(r["images"]) == images)


def test_up_durable_keeps_thresholds_audit_overrides_and_changelogs_across_a_restart(seaweedfs, tmp_path: Path) -> None:
    """One lean stack (demo-qc only, no monitor) on `--durable s3://` (the session's SeaweedFS; `--durable
    DIR` is the same engine on a SeaweedFS of its own, which `bench --compare broker` runs): a pushed
    threshold version, its audit record, an override and a study pass through it; `up` is stopped
    and started again on the same bucket. Afterwards the stages apply the kept version, `thresholds
    history` still lists it, the override is still on its topic, and a second image of the same study
    comes out as a final result of both images: qc's study state came back from its changelog."""
    from radstream.domain.signatures import sign
    from radstream.services.publish import publish
    from radstream.services.signing import signing_key
    from radstream.services.synthetic.studies import write_synthetic_study
    from radstream.streams.blobstore import open_blob_store
    from radstream.streams.config import Config
    from radstream.streams.kafka.producer import EventPublisher
    from radstream.streams.kafka.topics import CHANGELOGS, FINDINGS_OVERRIDES
    from tests.conftest import FAST_GROUP_ENV
    from tests.plain_reader import PlainReader, raw_records

    bucket, home = seaweedfs.bucket(), tmp_path / "home"
    env = {**FAST_GROUP_ENV, **seaweedfs.env(), "RADSTREAM_HOME": str(home), "RADSTREAM_BOOTSTRAP": "",
           "RADSTREAM_MODELS": "demo-qc", "RADSTREAM_STUDY_QUIET_PERIOD_S": "2"}
    [first, second] = write_synthetic_study(tmp_path / "study", 2, seed=4242)
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    first.rename(tmp_path / "one" / first.name)
    second.rename(tmp_path / "two" / second.name)
    thresholds = tmp_path / "qc.yaml"
    thresholds.write_text("scope: global\nvalues: {model:demo-qc/rotated: 0.97}\n")

    up, bootstrap = _up_durable(env, bucket)
    try:
        config = Config.from_env(bootstrap, {**os.environ, **env})
        for row in _stages_ready(home, 5):  # the embedded broker's stages fetch with its wait (D-061)
            assert b"RADSTREAM_KAFKA_FETCH_WAIT_MAX_MS=20" in Path(f"/proc/{row['pid']}/environ").read_bytes().split(b"\0")
        pushed = _cli({**env, "RADSTREAM_BOOTSTRAP": bootstrap}, "thresholds", "push", str(thresholds),
                      "--reason", "durable check").communicate(timeout=120)[0]
        assert "pushed version 1" in pushed, pushed
        _stages_ready(home, 5, version=1)
        producer = EventPublisher(config.kafka)
        [study], _ = publish(producer, open_blob_store(config.blob_url), [tmp_path / "one"], log=lambda m: None)
        override = sign("FindingOverride", {"finding_id": "f-durable", "study_uid": study, "verdict": "CONFIRMED",
                                            "reason": "", "created_at": int(time.time() * 1000)},
                        signing_key(config, None))
        producer.send(FINDINGS_OVERRIDES, "f-durable", override)
        producer.flush()
        del producer
        topic = config.kafka.topic("study.results")
        reader = PlainReader(bootstrap, [topic])
        assert _final(reader, topic, study, 1)["config_version"] == 1
        reader.close()
    finally:
        _stop(up)

    up, bootstrap = _up_durable(env, bucket)  # a new broker process and new stages: only the bucket carried over
    try:
        config = Config.from_env(bootstrap, {**os.environ, **env})
        _stages_ready(home, 5, version=1)  # read back from the kept config topic
        history = _cli({**env, "RADSTREAM_BOOTSTRAP": bootstrap}, "thresholds", "history").communicate(timeout=120)[0]
        assert any(line.startswith("v1 ") and "durable check" in line for line in history.splitlines()), history
        kept = raw_records(bootstrap, [config.kafka.topic(FINDINGS_OVERRIDES), config.kafka.topic(CHANGELOGS["qc"])])[0]
        assert any(r[3] == b"f-durable" for r in kept), "the override did not survive the restart"
        assert any(r[0] == config.kafka.topic(CHANGELOGS["qc"]) for r in kept), "qc's changelog is empty"
        producer = EventPublisher(config.kafka)
        publish(producer, open_blob_store(config.blob_url), [tmp_path / "two"], log=lambda m: None)
        del producer
        topic = config.kafka.topic("study.results")
        reader = PlainReader(bootstrap, [topic])
        both = _final(reader, topic, study, 2)  # one image only, had qc forgotten the study
        assert {i["sop_uid"] for i in both["images"]} >= {i["sop_uid"] for i in _final(reader, topic, study, 1)["images"]}
        reader.close()
    finally:
        _stop(up)
