"""An arrival whose blob is missing is dead-lettered; once the blob is back,
`radstream dlq replay --stage decode` re-produces it and the study result lands."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from radstream.services.synthetic.studies import write_synthetic_study
from radstream.services.dlq import REPLAYED_FROM
from radstream.services.publish import arrival_event, read_instance
from radstream.streams.blobstore import open_blob_store
from radstream.streams.kafka.producer import EventPublisher
from radstream.streams.kafka.reader import read_topic
from radstream.streams.kafka.topics import DICOM_ARRIVED
from tests.plain_reader import PlainReader

pytestmark = pytest.mark.integration


def _cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "radstream.services.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_replayed_dead_letter_completes_its_study(stack, pipeline_config, pipeline_env, tmp_path) -> None:
    settings = pipeline_config.kafka
    env = {**os.environ, **pipeline_env}
    store = open_blob_store(pipeline_config.blob_url)
    path = write_synthetic_study(tmp_path / "study", n_images=1, seed=950)[0]
    inst, data = read_instance(path), path.read_bytes()

    blob = store.put(data, "application/dicom")
    blob_file = Path(blob["uri"][len("file://"):])
    blob_file.unlink()  # the claim check points at nothing
    producer = EventPublisher(settings)
    producer.send(DICOM_ARRIVED, inst.sop_uid, arrival_event(inst, blob, "TEST", 1, int(time.time() * 1000)))
    producer.flush()

    dlq_topic, results_topic = settings.topic("dicom.arrived.dlq"), settings.topic("study.results")
    reader = PlainReader(settings.bootstrap, [dlq_topic, results_topic])
    try:
        assert reader.poll_until(lambda r: len(r[dlq_topic]) >= 1, 120, stack.poll), "no dead letter"
        dead = reader.records[dlq_topic][0]
        assert (dead["key"], dead["error_code"], dead["stage"]) == (inst.sop_uid.encode(), "blob_missing", "decode")

        listed = _cli(env, "dlq", "list", "--stage", "decode")
        assert listed.returncode == 0, listed.stderr
        assert "blob_missing" in listed.stdout and f"key={inst.sop_uid}" in listed.stdout

        later = _cli(env, "dlq", "replay", "--stage", "decode", "--since", str(dead["failed_at"] + 1))
        assert later.returncode == 0 and "replayed 0 dead letter(s)" in later.stdout, later.stdout + later.stderr

        dry = _cli(env, "dlq", "replay", "--stage", "decode", "--dry-run")
        assert dry.returncode == 0 and "would replay 1 dead letter(s)" in dry.stdout, dry.stdout + dry.stderr

        assert store.put(data, "application/dicom") == blob and blob_file.exists()  # same content, same address
        done = _cli(env, "dlq", "replay", "--stage", "decode")
        assert done.returncode == 0, done.stderr
        assert f"replayed {dlq_topic}@" in done.stdout and "replayed 1 dead letter(s)" in done.stdout

        landed = reader.poll_until(lambda r: any(x["study_uid"] == inst.study_uid and x["final"] for x in r[results_topic]),
                                   180, stack.poll)
        assert landed, f"no result for the replayed study; DLQ now {[d['error_code'] for d in reader.records[dlq_topic]]}"
    finally:
        reader.close()
    assert len(reader.records[dlq_topic]) == 1  # the replay did not fail again

    arrivals = list(read_topic(settings, DICOM_ARRIVED))
    replayed = [dict(m.headers() or []) for m in arrivals if REPLAYED_FROM in dict(m.headers() or [])]
    assert len(arrivals) == 2 and len(replayed) == 1
    assert re.fullmatch(rf"{re.escape(dlq_topic)}@\d+:\d+", replayed[0][REPLAYED_FROM].decode())
