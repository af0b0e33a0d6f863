"""`radstream blobs gc` on a real file blob store and the real broker: the raw DICOM of a final
study goes, a pending study's stays, a dead-lettered arrival's stays, derived blobs go by age,
an export group that has not consumed the result holds the raw blob, a raw/ blob no arrival
names stays however old, and --dry-run deletes nothing."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

from confluent_kafka import TopicPartition
from radstream.services.demo import real_radiographs
from radstream.streams.blobstore import open_blob_store
from radstream.streams.config import Config
from radstream.streams.kafka.consumer import group_consumer
from radstream.streams.kafka.producer import EventPublisher
from radstream.streams.kafka.reader import read_events
from radstream.streams.kafka.topics import (
    DICOM_ARRIVED,
    STUDY_RESULTS,
    create_topics,
    dlq,
)

DAY = 86400


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "radstream.services.cli", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120, check=False)


def _final_result(study: str) -> dict:
    return {"schema_version": 1, "idempotency_key": f"{study}-final", "study_uid": study, "site": "SITE-A",
            "final": True, "completion": "expected_count_reached", "expected_instances": 1, "images": [],
            "model_versions": {}, "created_at": int(time.time() * 1000), "config_version": 0, "stage_ms": {},
            "trace_id": None}


def test_gc_deletes_raw_of_final_studies_and_old_derived_blobs(pipeline_env: dict[str, str],
                                                               pipeline_config: Config) -> None:
    create_topics(pipeline_config.kafka, 1)
    rg1, rg1_j2k, rg3 = real_radiographs()[:3]  # RG1 twice (two instances, one study), RG3
    published = _cli(pipeline_env, "publish", str(rg1), str(rg1_j2k), str(rg3))
    assert published.returncode == 0, published.stderr
    messages = list(read_events(pipeline_config.kafka, DICOM_ARRIVED))
    by_study: dict[str, list] = {}
    for msg, a in messages:
        by_study.setdefault(a["study_uid"], []).append((msg, a))
    (final_study, two), (pending_study, one) = sorted(by_study.items(), key=lambda kv: -len(kv[1]))
    assert len(two) == 2 and len(one) == 1
    (kept_msg, dead_arrival), (_, final_arrival) = two
    arrivals = {final_study: final_arrival["blob"], pending_study: one[0][1]["blob"]}
    publisher = EventPublisher(pipeline_config.kafka)
    publisher.send(STUDY_RESULTS, final_study, _final_result(final_study))
    # one of the final study's arrivals waits in decode's DLQ: its raw blob stays for `dlq replay`
    publisher.send(dlq(DICOM_ARRIVED), None, {
        "schema_version": 1, "stage": "decode", "source_topic": kept_msg.topic(), "partition": kept_msg.partition(),
        "offset": kept_msg.offset(), "key": kept_msg.key(), "value": kept_msg.value(), "headers": [],
        "error_class": "PERMANENT", "error_code": "test", "error_message": "dead-lettered by the test",
        "attempts": 1, "failed_at": int(time.time() * 1000)})
    publisher.flush()

    store = open_blob_store(pipeline_config.blob_url)
    old_png = store.put(b"\x89PNG old display", "image/png", area="derived")
    new_png = store.put(b"\x89PNG new display", "image/png", area="derived")
    # a raw/ blob that no arrival names (its arrival aged out of the topic): kept, however old
    stray_raw = store.put(b"DICM raw of an arrival long gone", "application/dicom")
    assert store.area_of(arrivals[final_study]) == "raw" and store.is_derived(old_png)
    assert not store.is_derived(stray_raw)
    paths = {name: store._path(ref["uri"]) for name, ref in
             [("final_raw", arrivals[final_study]), ("pending_raw", arrivals[pending_study]),
              ("old_derived", old_png), ("new_derived", new_png), ("dead_lettered_raw", dead_arrival["blob"]),
              ("stray_raw", stray_raw)]}
    for name in ("old_derived", "stray_raw"):
        os.utime(paths[name], (time.time() - 40 * DAY, time.time() - 40 * DAY))

    dry = _cli(pipeline_env, "blobs", "gc", "--raw-after", "0s", "--derived-after", "30d", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would delete 1 raw and 1 derived blob(s)" in dry.stdout, dry.stdout
    assert all(p.exists() for p in paths.values())

    # an export target that has not consumed the final result holds its raw blob
    held = _cli(pipeline_env, "blobs", "gc", "--raw-after", "0s", "--derived-after", "30d", "--exported-by", "dicom")
    assert held.returncode == 0, held.stderr
    assert "deleted 0 raw and 1 derived" in held.stdout and "1 final but recent or not exported" in held.stdout
    assert paths["final_raw"].exists() and not paths["old_derived"].exists()

    # once the export group's committed offset is past the result, the raw blob goes
    kafka = pipeline_config.kafka
    topic = kafka.topic(STUDY_RESULTS)
    end = max(m.offset() for m, _ in read_events(kafka, STUDY_RESULTS)) + 1
    consumer = group_consumer(kafka, kafka.group("radstream-export-dicom"))
    consumer.commit(offsets=[TopicPartition(topic, 0, end)], asynchronous=False)
    consumer.close()
    done = _cli(pipeline_env, "blobs", "gc", "--raw-after", "0s", "--derived-after", "30d",
                "--require-exported", "radstream-export-dicom")
    assert done.returncode == 0, done.stderr
    assert "deleted 1 raw and 0 derived" in done.stdout, done.stdout
    assert not paths["final_raw"].exists()
    assert paths["pending_raw"].exists() and paths["new_derived"].exists() and paths["dead_lettered_raw"].exists()
    assert "1 of studies not final" in done.stdout and "1 dead-lettered" in done.stdout
    assert paths["stray_raw"].exists() and "1 named by no arrival" in done.stdout

    # a second run finds nothing left: the pending study and the recent derived blob stay
    again = _cli(pipeline_env, "blobs", "gc", "--raw-after", "72h")
    assert again.returncode == 0 and "deleted 0 raw and 0 derived" in again.stdout, again.stdout


def test_gc_refuses_a_bad_duration_in_one_line(pipeline_env: dict[str, str]) -> None:
    res = _cli(pipeline_env, "blobs", "gc", "--raw-after", "3 weeks")
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "not a duration" in res.stderr


def test_gc_refuses_a_group_that_is_not_an_export_group_in_one_line(pipeline_env: dict[str, str]) -> None:
    res = _cli(pipeline_env, "blobs", "gc", "--require-exported", "radstream-decode")
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "radstream-export-TARGET" in res.stderr


def test_gc_with_no_broker_is_one_line_and_deletes_nothing(tmp_path) -> None:
    with socket.socket() as s:  # a port nothing listens on: bound, then closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = open_blob_store(str(tmp_path))
    png = store.put(b"\x89PNG", "image/png", area="derived")
    os.utime(store._path(png["uri"]), (time.time() - 40 * DAY, time.time() - 40 * DAY))
    res = _cli({"RADSTREAM_BOOTSTRAP": f"127.0.0.1:{port}", "RADSTREAM_BLOB_URL": str(tmp_path)},
               "blobs", "gc", "--derived-after", "30d")
    assert res.returncode == 1 and res.stderr.strip().count("\n") == 0, res.stderr
    assert "cannot reach the broker" in res.stderr and store._path(png["uri"]).exists()
