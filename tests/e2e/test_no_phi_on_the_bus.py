"""PHI stays off the bus: files carrying PHI in ordinary, nested and private elements go
through every stage, then every message on every topic (values, keys, headers) is searched."""

from __future__ import annotations

import pydicom
import pytest
from confluent_kafka import Consumer
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from radstream.services.synthetic.studies import write_synthetic_study
from radstream.services.publish import publish
from radstream.streams.blobstore import open_blob_store
from radstream.streams.kafka.producer import EventPublisher
from tests.plain_reader import PlainReader, raw_records

pytestmark = pytest.mark.integration

PHI = {
    "PatientName": "Doe^Johanna^Q",
    "PatientID": "MRN-8841-2271",
    "PatientBirthDate": "19620314",
    "AccessionNumber": "ACC77410032",
    "InstitutionName": "Saint Elsewhere General",
    "ReferringPhysicianName": "Kildare^James",
    "StudyDescription": "CHEST Doe Johanna follow-up",
}
NESTED = "NestedMRN-55120"
PRIVATE = "PrivateNote-Johanna-Doe-Ward7"


def _add_phi(path) -> None:
    ds = pydicom.dcmread(path)
    for keyword, value in PHI.items():
        setattr(ds, keyword, value)
    other = Dataset()
    other.PatientID = NESTED
    other.IssuerOfPatientID = "Saint Elsewhere"
    ds.OtherPatientIDsSequence = Sequence([other])
    block = ds.private_block(0x0011, "RADSTREAM TEST", create=True)
    block.add_new(0x01, "LO", PRIVATE)
    ds.save_as(path)


def test_no_phi_value_appears_in_any_message_on_any_topic(stack, pipeline_config, tmp_path) -> None:
    files = write_synthetic_study(tmp_path / "phi", n_images=2, seed=4242)
    for f in files:
        _add_phi(f)
    settings = pipeline_config.kafka
    studies, errors = publish(EventPublisher(settings), open_blob_store(pipeline_config.blob_url), files,
                              log=lambda m: None)
    assert not errors
    results = settings.topic("study.results")
    reader = PlainReader(settings.bootstrap, [results])
    assert reader.poll_until(lambda r: {x["study_uid"] for x in r[results] if x["final"]} >= set(studies), 180, stack.poll)
    reader.close()

    lister = Consumer({"bootstrap.servers": settings.bootstrap, "group.id": "phi-audit"})
    topics = [t for t in lister.list_topics(timeout=10).topics if t.startswith(settings.topic_prefix)]
    lister.close()
    assert len(topics) >= 10
    records, ends = raw_records(settings.bootstrap, topics)
    blobs = [(key or b"") + (value or b"") + b"".join(v or b"" for _, v in headers)
             for _, _, _, key, value, headers in records]
    assert sum(ends.values()) > 0 and len(blobs) >= sum(ends.values()) - len(ends)
    needles = list(PHI.values()) + [NESTED, PRIVATE, "Johanna", "Elsewhere", "SYNTHETIC^PHANTOM"]
    leaks = [(n, i) for i, data in enumerate(blobs) for n in needles if n.encode() in data]
    assert leaks == [], f"PHI found on the bus: {leaks[:5]}"
    # The check can fail: the same search finds the PHI in the stored DICOM blob itself.
    assert PHI["PatientName"].encode() in files[0].read_bytes()
