"""The STAT lane through real stage processes on the embedded broker (D-044, D-057).

A backlog of routine work is queued, then one urgent image; the stages start afterwards, so
both are waiting. The urgent image must come out on the next `.stat` twin ahead of most of
the backlog, every routine image must still come out once (pausing and seeking back skips
nothing), and both topics' offsets are committed. Order, not time, is asserted (the broker
stamps each output). Through decode (arrivals), and through fuse and qc (model outputs: the
two stateful stages read both topics' partition p into one state, range-assigned).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from radstream.services.publish import publish
from radstream.streams.blobstore import open_blob_store
from radstream.streams.config import Config
from radstream.streams.kafka.producer import EventPublisher
from radstream.streams.kafka.reader import read_events
from radstream.domain.keys import image_key
from radstream.streams.kafka.topics import (
    DICOM_ARRIVED,
    FINDINGS_FUSED,
    IMAGE_DECODED,
    INFERENCE_RESULTS,
    STUDY_RESULTS,
    create_topics,
    stat_twin,
)
from confluent_kafka import TopicPartition

from radstream.streams.kafka.consumer import group_consumer
from tests.export_stage import wait_until
from tests.factories import inference_result

pytestmark = pytest.mark.integration
BACKLOG = 40


def _committed(settings, group: str, topic: str) -> int:
    """The offsets `group` has committed on `topic`, summed over its 3 partitions."""
    consumer = group_consumer(settings, group)
    try:
        parts = consumer.committed([TopicPartition(settings.topic(topic), p) for p in range(3)], timeout=10)
        return sum(max(tp.offset, 0) for tp in parts)
    finally:
        consumer.close()


def _copies(folder: Path, n: int, priority: str | None = None) -> list[Path]:
    """MR_small (64 x 64) with fresh UIDs: one single-image study each."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        ds = pydicom.dcmread(pydicom.data.get_testdata_file("MR_small.dcm"))
        ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        if priority:
            ds.RequestedProcedurePriority = priority
        paths.append(folder / f"{i:03d}.dcm")
        ds.save_as(paths[-1])
    return paths


def test_an_urgent_arrival_overtakes_the_routine_backlog(pipeline_env: dict[str, str], tmp_path: Path) -> None:
    config = Config.from_env(env={**os.environ, **pipeline_env})
    settings = config.kafka
    create_topics(settings, 3)
    producer, store = EventPublisher(settings), open_blob_store(config.blob_url)
    routine, _ = publish(producer, store, _copies(tmp_path / "routine", BACKLOG), log=lambda m: None)
    [urgent], _ = publish(producer, store, _copies(tmp_path / "urgent", 1, priority="STAT"), log=lambda m: None)
    assert [r["study_uid"] for _, r in read_events(settings, stat_twin(DICOM_ARRIVED))] == [urgent]

    stage = subprocess.Popen([sys.executable, "-m", "radstream.services.cli", "stage", "decode"],
                             env={**os.environ, **pipeline_env, "RADSTREAM_GROUP_INSTANCE_ID": "stat-test-decode"},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until("every image decoded", lambda: len(list(read_events(settings, IMAGE_DECODED))) >= BACKLOG,
                   timeout_s=240)
        [(urgent_msg, urgent_out)] = list(read_events(settings, stat_twin(IMAGE_DECODED)))
        decoded = list(read_events(settings, IMAGE_DECODED))
        assert urgent_out["study_uid"] == urgent and urgent_out["priority"] == "stat"
        assert sorted(r["study_uid"] for _, r in decoded) == sorted(routine)  # each routine image once
        assert {r["priority"] for _, r in decoded} == {"routine"}
        before = sum(1 for m, _ in decoded if m.timestamp()[1] < urgent_msg.timestamp()[1])
        assert before < BACKLOG // 2, f"{before} of {BACKLOG} routine images went before the urgent one"
        group = settings.group("radstream-decode")
        wait_until("both lanes committed", lambda: _committed(settings, group, DICOM_ARRIVED) == BACKLOG
                   and _committed(settings, group, stat_twin(DICOM_ARRIVED)) == 1, timeout_s=60)
    finally:
        stage.terminate()
        stage.wait(60)


LEAN = {"demo-classifier": "classifier", "demo-frcnn": "detector", "demo-qc": "qc"}  # conftest's LEAN_MODELS


def _stage(name: str, pipeline_env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "radstream.services.cli", "stage", name],
                            env={**os.environ, **pipeline_env, "RADSTREAM_GROUP_INSTANCE_ID": f"stat-test-{name}"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_an_urgent_image_stays_urgent_through_fuse_and_qc(pipeline_env: dict[str, str]) -> None:
    """Every expected model's output of BACKLOG routine single-image studies on inference.results,
    then the urgent one's on inference.results.stat (infer's lane); fuse and qc start after."""
    settings = Config.from_env(env={**os.environ, **pipeline_env}).kafka
    assert set(pipeline_env["RADSTREAM_MODELS"].split(",")) == set(LEAN)
    create_topics(settings, 3)
    producer = EventPublisher(settings)

    def outputs_of(study: str, priority: str) -> None:
        sop = study + ".1"
        for model, task in LEAN.items():
            value = inference_result(model, task, sop=sop, study=study, priority=priority)
            producer.send(stat_twin(INFERENCE_RESULTS) if priority == "stat" else INFERENCE_RESULTS,
                          image_key(sop, 0), value)

    routine = [f"1.2.826.0.1.3680043.10.1.{i}" for i in range(BACKLOG)]
    urgent = "1.2.826.0.1.3680043.10.2.1"
    for study in routine:
        outputs_of(study, "routine")
    outputs_of(urgent, "stat")
    producer.flush()

    stages = [_stage("fuse", pipeline_env), _stage("qc", pipeline_env)]
    try:
        def finals() -> list:
            return [(m, r) for m, r in read_events(settings, STUDY_RESULTS) if r["final"]]

        wait_until("every study final", lambda: len(finals()) >= BACKLOG + 1, timeout_s=240)
        [(_, fused_urgent)] = list(read_events(settings, stat_twin(FINDINGS_FUSED)))
        fused = list(read_events(settings, FINDINGS_FUSED))
        assert fused_urgent["study_uid"] == urgent and fused_urgent["priority"] == "stat"
        assert not fused_urgent["missing_models"]  # joined on the twin's partition, every model there
        assert sorted(r["study_uid"] for _, r in fused) == sorted(routine)  # each routine image once
        assert {r["priority"] for _, r in fused} == {"routine"}
        results = finals()
        assert sorted(r["study_uid"] for _, r in results) == sorted([*routine, urgent])
        [urgent_at] = [m.timestamp()[1] for m, r in results if r["study_uid"] == urgent]
        before = sum(1 for m, r in results if r["study_uid"] != urgent and m.timestamp()[1] < urgent_at)
        assert before < BACKLOG // 2, f"{before} of {BACKLOG} routine studies were final before the urgent one"
        fuse_group, qc_group = settings.group("radstream-fuse"), settings.group("radstream-qc")
        wait_until("both lanes committed", lambda: (
            _committed(settings, fuse_group, INFERENCE_RESULTS) == BACKLOG * len(LEAN)
            and _committed(settings, fuse_group, stat_twin(INFERENCE_RESULTS)) == len(LEAN)
            and _committed(settings, qc_group, FINDINGS_FUSED) == BACKLOG
            and _committed(settings, qc_group, stat_twin(FINDINGS_FUSED)) == 1), timeout_s=60)
    finally:
        for stage in stages:
            stage.terminate()
        for stage in stages:
            stage.wait(60)
