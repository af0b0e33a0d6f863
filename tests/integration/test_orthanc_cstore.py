"""C-STORE ingest with a real PACS as the sender: storescu puts RG1 into Orthanc, and Orthanc pushes
the study to `radstream receiver` with its own REST API (`POST /modalities/{name}/store`), as a
routing rule in a hospital would. The arrival is on `dicom.arrived` with the calling AE ORTHANC.
"""

from __future__ import annotations

import hashlib
import shutil

import pydicom
import pytest

from radstream.services.demo import real_radiographs
from tests.arrivals import blob_bytes, read_arrivals

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("storescu") is None, reason="dcmtk's storescu is not installed (apt-get install dcmtk)"),
]


def test_orthanc_pushes_a_study_to_the_receiver(orthanc, receiver_factory, pipeline_config) -> None:
    rg1 = real_radiographs()[0]  # RG1_UNCR: a chest PA CR
    original = pydicom.dcmread(rg1)
    receiver = receiver_factory()
    orthanc.store_files([rg1])
    orthanc.add_modality("radstream", receiver.ae_title, receiver.port)
    orthanc.rest("POST", "/modalities/radstream/echo", {}, timeout_s=30)  # C-ECHO: an error status raises

    [study] = orthanc.studies()
    job = orthanc.rest("POST", "/modalities/radstream/store", study)  # synchronous: answers after the C-STORE
    assert job["FailedInstancesCount"] == 0 and job["InstancesCount"] == 1, job

    sop = str(original.SOPInstanceUID)
    events = read_arrivals(pipeline_config, {sop}, 60)
    assert sop in events, f"no DicomArrived for {sop}: {receiver.log.read_text()[-2000:]}"
    event = events[sop]
    assert event["site"] == "SITE_ORTHANC"  # the peers file's site for Orthanc's calling AE title
    assert event["study_uid"] == str(original.StudyInstanceUID) == orthanc.study_uid(study)
    assert event["series_uid"] == str(original.SeriesInstanceUID)
    data = blob_bytes(event)
    assert hashlib.sha256(data).hexdigest() == event["blob"]["sha256"]
    received = pydicom.dcmread(pydicom.filebase.DicomBytesIO(data))
    assert received.PixelData == original.PixelData and received.PatientID == original.PatientID
