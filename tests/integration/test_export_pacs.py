"""`radstream export dicom` and `export stow` against a real PACS (Orthanc), as OS processes on the real broker.

The round trip: storescu sends RG1 into Orthanc, Orthanc pushes it to the receiver, the pipeline
runs, `export dicom` stores the result back: the same patient and study in Orthanc now hold an SR
and a PR series, QIDO-RS finds them, dciodvfy finds no error in what Orthanc returns. A
redelivery adds nothing; kill -9 of the export stage in the middle of a run of newer versions
loses none of them, and each SR names the one before it.

The failures: Orthanc down -> nothing committed, nothing dead-lettered, /healthz 503 after
--unhealthy-after, then delivered once it is back; an original gone -> DLQ original_missing; a
refusal -> DLQ with the DIMSE status. Orthanc 1.10 answers success even to instances its Lua
filter drops, so the refusing peer is a pynetdicom Storage SCP that answers 0xA900 (a real DICOM
peer, not a mock of the sender). `export stow` stores into Orthanc's DICOMweb STOW-RS.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from confluent_kafka import TopicPartition
from pynetdicom import AE, AllStoragePresentationContexts, evt
from radstream.services.broker import free_port
from radstream.services.demo import real_radiographs
from radstream.services.export.dicom_objects import earlier_sr
from radstream.services.results import study_results
from radstream.streams.blobstore import open_blob_store
from radstream.streams.kafka.consumer import group_consumer
from radstream.streams.kafka.producer import EventPublisher
from radstream.streams.kafka.reader import read_events
from radstream.streams.kafka.topics import STUDY_RESULTS, create_topics, dlq

from tests.unit.services.gateway.gateway_records import fused_box, study_result

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("storescu") is None, reason="dcmtk's storescu is not installed (apt-get install dcmtk)"),
]


# --- helpers --------------------------------------------------------------------------------------

class Export:
    """One `radstream export <target>` process with its /healthz port and log."""

    def __init__(self, env: dict[str, str], log: Path, *args: str, unhealthy_after: float = 300.0) -> None:
        self.health_port = free_port()
        self.log = log
        command = [sys.executable, "-m", "radstream.services.cli", "export", *args,
                   "--health-port", str(self.health_port), "--unhealthy-after", str(unhealthy_after), "--timeout", "5"]
        with log.open("ab") as out:
            self.proc = subprocess.Popen(command, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)

    def health(self) -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=5) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())
        except OSError:
            return 0, {}

    def wait(self, what: str, check: Callable[[], object], timeout_s: float = 90, poll: Callable[[], None] | None = None):
        deadline = time.monotonic() + timeout_s
        while not (found := check()):
            assert self.proc.poll() is None, f"export exited: {self.log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"{what} within {timeout_s} s: {self.log.read_text()[-3000:]}"
            if poll:
                poll()
            time.sleep(0.2)
        return found

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def series_counts(orthanc, study_uid: str) -> dict[str, int]:
    """Modality -> instances in the Orthanc study with this Study Instance UID."""
    found = [r for r in orthanc.rest("POST", "/tools/lookup", study_uid) if r["Type"] == "Study"]
    if not found:
        return {}
    counts: dict[str, int] = {}
    for series in orthanc.rest("GET", f"/studies/{found[0]['ID']}/series"):
        modality = series["MainDicomTags"]["Modality"]
        counts[modality] = counts.get(modality, 0) + len(series["Instances"])
    return counts


def holds(orthanc, sop_uid: str) -> bool:
    return any(r["Type"] == "Instance" for r in orthanc.rest("POST", "/tools/lookup", sop_uid))


def committed(settings, stage: str) -> int:
    """The committed offset of partition 0 of study.results for the stage's group (-1001: none)."""
    consumer = group_consumer(settings, settings.group(f"radstream-{stage}"))
    try:
        return consumer.committed([TopicPartition(settings.topic(STUDY_RESULTS), 0)], timeout=10)[0].offset
    finally:
        consumer.close()


def dead_letters(settings) -> list[dict]:
    return [record for _, record in read_events(settings, dlq(STUDY_RESULTS))]


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "radstream.services.cli", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120, check=False)


def rg_result(store, prefix: str, key: str) -> dict:
    """A final result on the two instances of a pydicom-data radiograph, their originals in the blob store."""
    paths = [p for p in real_radiographs() if p.name.startswith(prefix)]
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]
    result = study_result(study=str(headers[0].StudyInstanceUID), sops=[str(h.SOPInstanceUID) for h in headers],
                          boxes=[fused_box([400.0, 500.0, 700.0, 820.0], score=0.8)], key=key)
    for image, header, path in zip(result["images"], headers, paths):
        image.update(series_uid=str(header.SeriesInstanceUID), sop_class_uid=str(header.SOPClassUID),
                     source=store.put(path.read_bytes(), "application/dicom"))
    return result


def dciodvfy_errors(data: bytes, path: Path) -> list[str]:
    path.write_bytes(data)
    run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60, check=False)
    return [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")]


# --- the round trip ---------------------------------------------------------------------------------

def test_round_trip_redelivery_and_kill_9(stack, orthanc, receiver_factory, pipeline_config, pipeline_env,
                                          tmp_path: Path) -> None:
    settings = pipeline_config.kafka
    rg1 = [pydicom.dcmread(p, stop_before_pixels=True) for p in real_radiographs()[:2]]  # RG1_UNCR, RG1_J2KR
    study = str(rg1[0].StudyInstanceUID)
    receiver = receiver_factory()
    orthanc.store_files(real_radiographs()[:2])  # 1. a modality sends RG1 into the PACS
    orthanc.add_modality("radstream", receiver.ae_title, receiver.port)
    [orthanc_study] = orthanc.studies()
    job = orthanc.rest("POST", "/modalities/radstream/store", orthanc_study)  # 2. the PACS pushes it to radstream
    assert job["FailedInstancesCount"] == 0 and job["InstancesCount"] == 2, job

    deadline = time.monotonic() + 240  # 3. the pipeline runs
    while not (finals := list(study_results(settings, study=study))):
        assert time.monotonic() < deadline, f"no final result for {study}; logs in {stack.logs}"
        stack.poll()
        time.sleep(2)
    [result] = finals

    export = Export(pipeline_env, tmp_path / "export-dicom.log", "dicom", "--to", f"{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}")
    try:  # 4. export dicom stores the result back
        export.wait("SR and PR in Orthanc", lambda: series_counts(orthanc, study).get("PR") == 2, poll=stack.poll)
        # 5. same patient, same study: the images' CR series, one SR, one GSPS per image
        assert len(orthanc.rest("GET", "/patients")) == 1 and orthanc.studies() == [orthanc_study]
        assert series_counts(orthanc, study) == {"CR": 2, "SR": 1, "PR": 2}
        for modality in ("SR", "PR"):
            found = orthanc.rest("GET", f"/dicom-web/studies/{study}/series?Modality={modality}")
            assert len(found) == 1, f"QIDO-RS {modality}: {found}"
        sr_uid = earlier_sr(study, result["idempotency_key"]).sop_instance_uid
        stored = {sop: orthanc.instance_file(sop) for sop in
                  (i["00080018"]["Value"][0] for i in orthanc.rest("GET", f"/dicom-web/studies/{study}/instances")
                   if i["00080060"]["Value"][0] in ("SR", "PR"))}
        assert sr_uid in stored
        sr = pydicom.dcmread(BytesIO(stored[sr_uid]))
        assert (sr.PatientID, sr.PatientName, sr.StudyInstanceUID) == (rg1[0].PatientID, rg1[0].PatientName, study)
        if shutil.which("dciodvfy"):
            for sop, data in stored.items():
                assert dciodvfy_errors(data, tmp_path / f"{sop}.dcm") == [], sop

        # a second delivery of the same result creates no second instance
        publisher = EventPublisher(settings)
        publisher.send(STUDY_RESULTS, study, result)
        publisher.flush()
        export.wait("the redelivery exported", lambda: export.health()[1].get("exported") == 2)
        assert series_counts(orthanc, study) == {"CR": 2, "SR": 1, "PR": 2}

        # kill -9 in the middle of a run of newer versions: none is lost, each SR names the one before
        keys = [f"{result['idempotency_key']}-v{n}" for n in range(2, 10)]
        for key in keys:
            publisher.send(STUDY_RESULTS, study, {**result, "idempotency_key": key})
        publisher.flush()
        export.wait("a newer version stored", lambda: series_counts(orthanc, study).get("SR", 0) >= 2, timeout_s=60)
        os.kill(export.proc.pid, signal.SIGKILL)
        export.proc.wait(10)
        at_kill = series_counts(orthanc, study)["SR"]
        assert at_kill < 1 + len(keys), "the kill came after the run: nothing tested"
    finally:
        export.stop()
    export = Export(pipeline_env, tmp_path / "export-dicom.log", "dicom", "--to", f"{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}")
    try:
        export.wait("every version in Orthanc after the restart",
                    lambda: series_counts(orthanc, study).get("PR") == 2 * (1 + len(keys)), timeout_s=120)  # GSPS go last
        assert series_counts(orthanc, study) == {"CR": 2, "SR": 1 + len(keys), "PR": 2 * (1 + len(keys))}
        chain = [result["idempotency_key"], *keys]
        for before, after in itertools.pairwise(chain):
            sr = pydicom.dcmread(BytesIO(orthanc.instance_file(earlier_sr(study, after).sop_instance_uid)))
            named = sr.PredecessorDocumentsSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
            assert named.ReferencedSOPInstanceUID == earlier_sr(study, before).sop_instance_uid, after
        assert dead_letters(settings) == []
    finally:
        export.stop()


# --- failures, the DLQ, STOW-RS -------------------------------------------------------------------------

def test_down_refused_missing_and_stow(orthanc_factory, pipeline_config, pipeline_env, tmp_path: Path) -> None:
    settings = pipeline_config.kafka
    create_topics(settings, 1)
    store = open_blob_store(pipeline_config.blob_url)
    publisher = EventPublisher(settings)
    pacs = orthanc_factory()
    pacs.stop()  # the PACS is down
    down = rg_result(store, "RG1", "rg1-a")
    study = down["study_uid"]
    publisher.send(STUDY_RESULTS, study, down)
    publisher.flush()

    export = Export(pipeline_env, tmp_path / "export-dicom.log", "dicom", "--to", f"{pacs.aet}@127.0.0.1:{pacs.dicom_port}",
                    unhealthy_after=2)
    try:
        _, body = export.wait("unhealthy while the PACS is down", lambda: (h := export.health())[0] == 503 and h)
        assert body["healthy"] is False and "unreachable" in body["unanswered_reason"], body
        assert committed(settings, "export-dicom") < 0 and dead_letters(settings) == []

        pacs.restart()  # back up: delivered, healthy, committed
        export.wait("delivered once the PACS is back", lambda: series_counts(pacs, study).get("PR") == 2, timeout_s=90)
        export.wait("healthy again", lambda: export.health()[0] == 200)
        assert series_counts(pacs, study) == {"SR": 1, "PR": 2}
        assert holds(pacs, earlier_sr(study, "rg1-a").sop_instance_uid)
        export.wait("committed", lambda: committed(settings, "export-dicom") == 1)

        gone = rg_result(store, "RG3", "rg3-gone")  # its originals are deleted from the blob store
        for image in gone["images"]:
            Path(image["source"]["uri"].removeprefix("file://")).unlink()
        publisher.send(STUDY_RESULTS, gone["study_uid"], gone)
        publisher.flush()
        export.wait("original_missing dead-lettered", lambda: dead_letters(settings))
    finally:
        export.stop()
    [missing] = dead_letters(settings)
    assert (missing["stage"], missing["error_code"]) == ("export-dicom", "original_missing"), missing
    assert "cannot read the patient" in missing["error_message"] and "blob not found" in missing["error_message"]

    # a peer that refuses: 0xA900, into the DLQ with the status and its meaning
    refuser = AE(ae_title="REFUSER")
    refuser.supported_contexts = AllStoragePresentationContexts
    scp_port = free_port()
    server = refuser.start_server(("127.0.0.1", scp_port), block=False,
                                  evt_handlers=[(evt.EVT_C_STORE, lambda event: 0xA900)])
    refused = rg_result(store, "RG1", "rg1-refused")
    publisher.send(STUDY_RESULTS, study, refused)
    publisher.flush()
    export = Export(pipeline_env, tmp_path / "export-dicom.log", "dicom", "--to", f"REFUSER@127.0.0.1:{scp_port}")
    try:
        export.wait("the refusal dead-lettered", lambda: len(dead_letters(settings)) == 2)
    finally:
        export.stop()
        server.shutdown()
    record = dead_letters(settings)[1]
    assert (record["stage"], record["error_code"]) == ("export-dicom", "dimse_refused"), record
    assert "0xA900 Error: Data Set does not match SOP Class" in record["error_message"]
    listed = cli(pipeline_env, "dlq", "list", "--stage", "export-dicom")
    assert listed.returncode == 0, listed.stderr
    assert "original_missing" in listed.stdout and "dimse_refused" in listed.stdout

    # export stow into another Orthanc's DICOMweb: its own group reads every result from the start
    web = orthanc_factory()
    stow = Export(pipeline_env, tmp_path / "export-stow.log", "stow", "--url", web.dicomweb_url, "--allow-http")
    try:
        stow.wait("both results stored by STOW-RS", lambda: series_counts(web, study).get("SR") == 2)
        stow.wait("its original_missing dead-lettered", lambda: len(dead_letters(settings)) == 3)
    finally:
        stow.stop()
    assert series_counts(web, study) == {"SR": 2, "PR": 4}
    sr = pydicom.dcmread(BytesIO(web.instance_file(earlier_sr(study, "rg1-refused").sop_instance_uid)))
    assert sr.PatientID == "9RG1"
    assert sr.PredecessorDocumentsSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[0] \
        .ReferencedSOPInstanceUID == earlier_sr(study, "rg1-a").sop_instance_uid
    listed = cli(pipeline_env, "dlq", "list", "--stage", "export-stow")
    assert listed.returncode == 0 and listed.stdout.count("\n") == 1 and "original_missing" in listed.stdout, listed

    # a replay for export-stow is skipped by the others (the PACS export-dicom stage would store it again)
    replayed = cli(pipeline_env, "dlq", "replay", "--stage", "export-stow")
    assert replayed.returncode == 0 and "replayed 1 dead letter(s) of export-stow" in replayed.stdout, replayed
    export = Export(pipeline_env, tmp_path / "export-dicom.log", "dicom", "--to", f"{pacs.aet}@127.0.0.1:{pacs.dicom_port}")
    try:
        export.wait("the replay read", lambda: committed(settings, "export-dicom") == 4)
    finally:
        export.stop()
    assert len(dead_letters(settings)) == 3, "export-dicom skipped the replay meant for export-stow"
