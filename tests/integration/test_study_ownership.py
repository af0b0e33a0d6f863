"""A study belongs to its first site, on the real broker with every stage running (issue 17's site flip).

Image 1 of a study arrives from SITE_A; image 2 of the same Study Instance UID arrives claiming
SITE_B. Image 2 must land on the qc stage's dead-letter topic with `site_conflict`, and every
result of the study must stay SITE_A's, with image 1 only. On the old main the second image was
merged into the study.
"""

from __future__ import annotations

import time

import pytest

from radstream.services.publish import arrival_event, read_instance
from radstream.services.synthetic.studies import write_synthetic_study
from radstream.streams.blobstore import open_blob_store
from radstream.streams.kafka.producer import EventPublisher
from radstream.streams.kafka.topics import DICOM_ARRIVED
from tests.plain_reader import PlainReader

pytestmark = pytest.mark.integration


def test_an_instance_from_another_site_is_dead_lettered_not_merged(stack, pipeline_config, tmp_path) -> None:
    settings = pipeline_config.kafka
    store = open_blob_store(pipeline_config.blob_url)
    first, second = (read_instance(p) for p in write_synthetic_study(tmp_path / "study", n_images=2, seed=951)
                     if p.suffix == ".dcm")
    assert first.study_uid == second.study_uid
    producer = EventPublisher(settings)
    dlq_topic, results_topic = settings.topic("findings.fused.dlq"), settings.topic("study.results")
    reader = PlainReader(settings.bootstrap, [dlq_topic, results_topic])

    def publish(inst, site: str) -> None:
        blob = store.put(inst.path.read_bytes(), "application/dicom")
        producer.send(DICOM_ARRIVED, inst.sop_uid, arrival_event(inst, blob, site, 2, int(time.time() * 1000)))
        producer.flush()

    try:
        publish(first, "SITE_A")
        assert reader.poll_until(lambda r: any(x["study_uid"] == first.study_uid for x in r[results_topic]),
                                 180, stack.poll), "no update for SITE_A's image"
        publish(second, "SITE_B")
        assert reader.poll_until(lambda r: len(r[dlq_topic]) >= 1, 180, stack.poll), "no dead letter for SITE_B's image"
        [dead] = reader.records[dlq_topic]
        assert (dead["error_code"], dead["stage"]) == ("site_conflict", "qc")
        assert reader.poll_until(lambda r: any(x["study_uid"] == first.study_uid and x["final"]
                                               for x in r[results_topic]), 60, stack.poll), "no final result"
        results = [x for x in reader.records[results_topic] if x["study_uid"] == first.study_uid]
        assert {x["site"] for x in results} == {"SITE_A"}
        assert all([i["sop_uid"] for i in x["images"]] == [first.sop_uid] for x in results)
    finally:
        reader.close()
