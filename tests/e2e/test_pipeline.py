"""End to end: the embedded broker and every stage as separate OS processes.

Real radiographs (pydicom-data RG1 and RG3, uncompressed and JPEG 2000 lossless),
synthetic studies, and poison inputs. Results are read with tests/plain_reader.py,
which uses only the .avsc files and fastavro.
"""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

import pydicom
import pytest

from radstream.models.registry import default_registry_dir, load_manifests
from radstream.services.synthetic.studies import write_synthetic_study
from radstream.services.demo import real_radiographs
from radstream.services.publish import arrival_event, publish, read_instance
from radstream.services.status import stage_statuses
from radstream.streams.blobstore import open_blob_store
from radstream.streams.kafka.producer import EventPublisher
from radstream.streams.kafka.topics import DICOM_ARRIVED
from tests.plain_reader import PlainReader

pytestmark = pytest.mark.integration


def _poison_inputs(store, tmp_path: Path) -> dict[str, tuple[bytes | None, str]]:
    """key -> (raw message value or None for a normal arrival event, expected DLQ code)."""
    rg1 = real_radiographs()[0].read_bytes()
    blobs = {
        "bad.random": (store.put(os.urandom(4096), "application/dicom"), "not_dicom"),
        "bad.truncated": (store.put(rg1[: len(rg1) // 2], "application/dicom"), None),
    }
    missing = store.put(b"will be deleted", "application/dicom")
    Path(missing["uri"][len("file://"):]).unlink()
    blobs["bad.missing"] = (missing, "blob_missing")
    return blobs


@pytest.mark.whole_ensemble
def test_every_arrival_yields_one_result_or_one_dlq_record(stack, pipeline_config, tmp_path) -> None:
    settings = pipeline_config.kafka
    store = open_blob_store(pipeline_config.blob_url)
    producer = EventPublisher(settings)

    poison = _poison_inputs(store, tmp_path)
    for key, (blob, _) in poison.items():
        inst = read_instance(real_radiographs()[0])
        event = arrival_event(inst, blob, "TEST", 1, 0)
        event.update(study_uid=f"{key}.study", sop_uid=key, arrived_at=event["arrived_at"] or 1)
        producer.send(DICOM_ARRIVED, key, event)
    producer.send_raw(settings.topic(DICOM_ARRIVED), b"bad.not-avro", b"this is not an Avro event")
    # A structured report: not an image, so skipped and counted (non-image policy "skip"), not DLQ noise.
    sr = Path(pydicom.__file__).parent / "data" / "test_files" / "test-SR.dcm"
    sr_event = arrival_event(read_instance(real_radiographs()[0]), store.put(sr.read_bytes(), "application/dicom"),
                             "TEST", 1, 1)
    sr_event.update(study_uid="skip.sr.study", sop_uid="skip.sr")
    producer.send(DICOM_ARRIVED, "skip.sr", sr_event)

    synthetic = [write_synthetic_study(tmp_path / f"syn{i}", n_images=2, seed=500 + i) for i in range(2)]
    studies, errors = publish(producer, store, real_radiographs() + [p for s in synthetic for p in s], log=lambda m: None)
    assert not errors and len(studies) == 4

    reader = PlainReader(settings.bootstrap, [settings.topic("study.results"), settings.topic("dicom.arrived.dlq")])
    results_topic, dlq_topic = settings.topic("study.results"), settings.topic("dicom.arrived.dlq")
    expected_dlq = set(poison) | {"bad.not-avro"}

    def done(records) -> bool:
        landed = {r["study_uid"] for r in records[results_topic] if r["final"]}
        dead = {r["key"].decode() for r in records[dlq_topic]}
        return set(studies) <= landed and expected_dlq <= dead

    ok = reader.poll_until(done, timeout_s=240, on_idle=stack.poll)
    reader.close()
    updates = [r for r in reader.records[results_topic] if not r["final"]]
    results = [r for r in reader.records[results_topic] if r["final"]]
    dead = reader.records[dlq_topic]
    assert ok, f"results for {len({r['study_uid'] for r in results})}/{len(studies)} studies, DLQ keys {[d['key'] for d in dead]}"

    # Exactly one final result per study (after dedupe by idempotency key), none for poison inputs.
    by_study: dict[str, set[str]] = {}
    for r in results:
        by_study.setdefault(r["study_uid"], set()).add(r["idempotency_key"])
    assert set(by_study) == set(studies)
    assert all(len(keys) == 1 for keys in by_study.values()), by_study
    # Every two-image study also gave an incremental update after its first image, never marked final.
    assert {u["study_uid"] for u in updates} == set(studies)
    assert all(u["completion"] == "in_progress" and len(u["images"]) == 1 for u in updates)

    # The real radiographs: RG1 (chest) analysed, RG3 (extremity) gated by the header check.
    rg = {read_instance(p).study_uid: read_instance(p) for p in real_radiographs()}
    shipped = {name: m.version for name, m in load_manifests(default_registry_dir()).items()}
    for r in results:
        assert r["model_versions"] == shipped and r["images"]  # the whole ensemble answered, by version
        if r["study_uid"] in rg:
            assert r["expected_instances"] == 2 and len(r["images"]) == 2
            body = {i["body_part"] for i in r["images"]}
            status = {i["status"] for i in r["images"]}
            assert status == ({"ANALYSED"} if body == {"CHEST"} else {"NOT_ANALYSABLE"})
        for image in r["images"]:
            assert {"decode", "preprocess", "fuse"} <= set(image["stage_ms"]), image["stage_ms"]

    # One DLQ record per poison input, with a clear reason and the original bytes.
    by_key = {d["key"].decode(): d for d in dead}
    assert set(by_key) == expected_dlq, sorted(by_key)
    assert by_key["bad.not-avro"]["value"] == b"this is not an Avro event"
    assert by_key["bad.not-avro"]["error_code"] == "not_avro"
    for key, (_, code) in poison.items():
        rec = by_key[key]
        assert rec["stage"] == "decode" and rec["error_class"] == "PERMANENT" and rec["error_message"]
        if code:
            assert rec["error_code"] == code, (key, rec["error_code"], rec["error_message"])

    # The SR was skipped with its reason counted in the decode stage's metrics, not dead-lettered.
    assert "skip.sr" not in by_key and "skip.sr.study" not in by_study
    decode = next(r for r in stage_statuses(stack.config.home / "run") if r["stage"] == "decode")
    with urllib.request.urlopen(decode["health_url"] + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    assert 'radstream_messages_skipped_total{reason="not_an_image",stage="decode"} 1.0' in text

    # Every stage survived every poison message.
    assert stack.supervisor is not None
    assert all(c.proc.poll() is None and c.restarts == 0 for c in stack.supervisor.children)
