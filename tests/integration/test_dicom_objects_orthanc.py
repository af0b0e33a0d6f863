"""The SR and GSPS of a result, stored into a real PACS (Orthanc) beside RG1's own images, are filed
under the same patient and the same study: one Orthanc patient, one study, a CR, an SR and a PR series.
A redelivery adds no instance; a newer version adds one SR and one GSPS per image to the same two
series. Objects go in over Orthanc's REST upload: the C-STORE and STOW-RS edges, and the round trip
through the pipeline, are tested with `export dicom` / `export stow`."""

from __future__ import annotations

import shutil
import subprocess
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from radstream.domain.dicom.patient import PatientContext
from radstream.services.demo import real_radiographs
from radstream.services.export.dicom_objects import dicom_objects, sr_reference

from tests.unit.services.gateway.gateway_records import fused_box, study_result

pytestmark = pytest.mark.integration


def _upload(orthanc, objects: list[Dataset]) -> None:
    for ds in objects:
        buffer = BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        answer = orthanc.upload(buffer.getvalue())
        assert answer["Status"] in ("Success", "AlreadyStored"), answer


def test_orthanc_files_sr_and_gsps_with_their_images(orthanc, tmp_path: Path) -> None:
    paths = [p for p in real_radiographs() if p.name.startswith("RG1")]
    for path in paths:
        orthanc.upload(path.read_bytes())
    originals = {str(ds.SOPInstanceUID): ds for ds in (pydicom.dcmread(p, stop_before_pixels=True) for p in paths)}
    first = next(iter(originals.values()))
    result = study_result(study=str(first.StudyInstanceUID), sops=list(originals),
                          boxes=[fused_box([400.0, 500.0, 700.0, 820.0])], key="rg1-v1")
    for image in result["images"]:
        image["series_uid"] = str(first.SeriesInstanceUID)
    context = PatientContext.from_dataset(first)
    v1 = dicom_objects(result, context, originals)
    _upload(orthanc, v1)
    _upload(orthanc, dicom_objects(result, context, originals))  # a redelivery

    [patient] = orthanc.rest("GET", "/patients")
    assert orthanc.rest("GET", f"/patients/{patient}")["MainDicomTags"]["PatientID"] == "9RG1"
    [study] = orthanc.studies()
    assert orthanc.study_uid(study) == first.StudyInstanceUID
    series = {s["MainDicomTags"]["Modality"]: s for s in orthanc.rest("GET", f"/studies/{study}/series")}
    assert sorted(series) == ["CR", "PR", "SR"]
    assert [len(series[m]["Instances"]) for m in ("CR", "SR", "PR")] == [2, 1, 2]  # nothing duplicated

    v2 = dicom_objects({**result, "idempotency_key": "rg1-v2"}, context, originals, predecessor=sr_reference(v1[0]))
    _upload(orthanc, v2)
    assert orthanc.studies() == [study] and len(orthanc.rest("GET", "/patients")) == 1
    series = {s["MainDicomTags"]["Modality"]: s for s in orthanc.rest("GET", f"/studies/{study}/series")}
    assert sorted(series) == ["CR", "PR", "SR"]
    assert [len(series[m]["Instances"]) for m in ("CR", "SR", "PR")] == [2, 2, 4]

    # what Orthanc gives back is what was built, and dciodvfy still finds no error in it
    stored = pydicom.dcmread(BytesIO(orthanc.instance_file(v2[0].SOPInstanceUID)))
    assert stored.PredecessorDocumentsSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[0] \
        .ReferencedSOPInstanceUID == v1[0].SOPInstanceUID
    if shutil.which("dciodvfy"):
        for ds in v2:
            path = tmp_path / f"{ds.SOPInstanceUID}.dcm"
            path.write_bytes(orthanc.instance_file(ds.SOPInstanceUID))
            run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60, check=False)
            assert [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")] == []
