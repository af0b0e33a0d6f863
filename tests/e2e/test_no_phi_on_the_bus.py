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
    ds.BodyPartExamined = "CHEST DOE JOHANNA"  # a name where a code belongs: decoded, the value dropped
    block = ds.private_block(0x0011, "RADSTREAM TEST", create=True)
    block.add_new(0x01, "LO", PRIVATE)
    ds.save_as(path)


def _add_phi_where_a_code_belongs(path) -> None:
    """The review's probe: a name as Photometric Interpretation (rejected) and as Body Part (dropped)."""
    ds = pydicom.dcmread(path)
    ds.PhotometricInterpretation = BAD_PHOTOMETRIC
    ds.BodyPartExamined = "CHEST DOE JOHANNA"
    ds.save_as(path)


BAD_PHOTOMETRIC = "DOE^JOHANNA"


def test_no_phi_value_appears_in_any_message_on_any_topic(stack, pipeline_config, tmp_path) -> None:
    files = write_synthetic_study(tmp_path / "phi", n_images=2, seed=4242)
    for f in files:
        _add_phi(f)
    rejected = write_synthetic_study(tmp_path / "phi-rejected", n_images=1, seed=4343)
    for f in rejected:
        _add_phi_where_a_code_belongs(f)
    settings = pipeline_config.kafka
    studies, errors = publish(EventPublisher(settings), open_blob_store(pipeline_config.blob_url), files + rejected,
                              log=lambda m: None)
    assert not errors
    results, dlq = settings.topic("study.results"), settings.topic("dicom.arrived.dlq")
    reader = PlainReader(settings.bootstrap, [results, dlq])
    good = set(studies) - {pydicom.dcmread(rejected[0]).StudyInstanceUID}
    assert reader.poll_until(lambda r: {x["study_uid"] for x in r[results] if x["final"]} >= good
                             and any(d["error_code"] == "unsupported_photometric" for d in r[dlq]), 180, stack.poll)
    dead = next(d for d in reader.records[dlq] if d["error_code"] == "unsupported_photometric")
    reader.close()
    # the reason names the attribute, its VR and its length, never the value
    assert "PhotometricInterpretation (CS, 11 characters)" in dead["error_message"]
    assert "DOE" not in dead["error_message"] and "JOHANNA" not in dead["error_message"]

    lister = Consumer({"bootstrap.servers": settings.bootstrap, "group.id": "phi-audit"})
    topics = [t for t in lister.list_topics(timeout=10).topics if t.startswith(settings.topic_prefix)]
    lister.close()
    assert len(topics) >= 10
    records, ends = raw_records(settings.bootstrap, topics)
    blobs = [(key or b"") + (value or b"") + b"".join(v or b"" for _, v in headers)
             for _, _, _, key, value, headers in records]
    assert sum(ends.values()) > 0 and len(blobs) >= sum(ends.values()) - len(ends)
    needles = list(PHI.values()) + [NESTED, PRIVATE, "Johanna", "JOHANNA", "Elsewhere", "SYNTHETIC^PHANTOM"]
    leaks = [(n, i) for i, data in enumerate(blobs) for n in needles if n.encode() in data]
    assert leaks == [], f"PHI found on the bus: {leaks[:5]}"
    # The check can fail: the same search finds the PHI in the stored DICOM blob itself.
    assert PHI["PatientName"].encode() in files[0].read_bytes()
    assert BAD_PHOTOMETRIC.encode() in rejected[0].read_bytes()
