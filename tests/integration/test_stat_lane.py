"""The STAT lane through a real decode stage process on the embedded broker (D-044).

A backlog of routine arrivals is queued, then one urgent arrival (its header says
RequestedProcedurePriority STAT); the decode stage starts afterwards, so both are waiting.
The urgent image must come out on image.decoded.stat ahead of most of the backlog, every
routine image must still come out once (pausing and seeking back skips nothing), and both
topics' offsets are committed. Order, not time, is asserted (the stage stamps each output).
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
from radstream.streams.kafka.topics import DICOM_ARRIVED, IMAGE_DECODED, create_topics, stat_twin
from confluent_kafka import TopicPartition

from radstream.streams.kafka.consumer import group_consumer
from tests.export_stage import wait_until

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
