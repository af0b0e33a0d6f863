"""STOW-RS ingest (`radstream receiver --dicomweb-port N`) as a real process against the embedded broker.

The sender is Orthanc's own DICOMweb client (`POST /dicom-web/servers/{name}/stow`), and a
hand-built multipart/related request with a bad part, a part of another study, a part over the
size limit. A part is in the ReferencedSOPSequence only when its DicomArrived event is on the topic.
"""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pydicom
import pytest

from radstream.services.demo import real_radiographs
from tests.arrivals import arrivals_on_topic, blob_bytes, read_arrivals
from tests.fixtures.instances import instance_bytes
from tests.orthanc import OrthancError

pytestmark = pytest.mark.integration
TOKEN, SITE = "stow-s3cret", "SITE_A"


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "dicomweb-tokens"
    path.write_text(f"{TOKEN} {SITE}\n")
    return path


def multipart_related(parts: list[tuple[str, bytes]]) -> tuple[str, bytes]:
    """(Content-Type, body) of a multipart/related; type="application/dicom" request."""
    boundary = uuid.uuid4().hex
    body = b"".join(f"--{boundary}\r\nContent-Type: {ctype}\r\n\r\n".encode() + data + b"\r\n" for ctype, data in parts)
    return f'multipart/related; type="application/dicom"; boundary={boundary}', body + f"--{boundary}--\r\n".encode()


def post(url: str, body: bytes, content_type: str, token: str | None = TOKEN) -> tuple[int, dict, list[str]]:
    """(status, JSON answer, Warning headers)."""
    headers = {"Content-Type": content_type, "Accept": "application/dicom+json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read()), response.headers.get_all("Warning") or []
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        return exc.code, json.loads(raw) if raw else {}, exc.headers.get_all("Warning") or []


def response_dataset(answer: dict) -> pydicom.Dataset:
    return pydicom.Dataset.from_json(answer)


@pytest.mark.skipif(shutil.which("storescu") is None, reason="dcmtk's storescu is not installed (apt-get install dcmtk)")
def test_orthanc_stows_a_study_into_the_receiver(orthanc, receiver_factory, token_file, pipeline_config) -> None:
    rg1 = real_radiographs()[0]
    original = pydicom.dcmread(rg1, stop_before_pixels=True)
    receiver = receiver_factory(dicomweb=True, args=["--dicomweb-tokens", str(token_file)])
    orthanc.store_files([rg1])
    orthanc.add_dicomweb_server("radstream", receiver.stow_url, token=TOKEN)
    [study] = orthanc.studies()

    orthanc.rest("POST", "/dicom-web/servers/radstream/stow", {"Resources": [study]})  # synchronous; raises on failure

    sop = str(original.SOPInstanceUID)
    events = read_arrivals(pipeline_config, {sop}, 60)
    assert sop in events, receiver.log.read_text()[-2000:]
    assert events[sop]["site"] == SITE  # the token's one site
    assert events[sop]["study_uid"] == str(original.StudyInstanceUID)
    assert pydicom.dcmread(pydicom.filebase.DicomBytesIO(blob_bytes(events[sop]))).SOPInstanceUID == sop

    # Orthanc's client with a wrong token: refused, nothing new on the topic.
    orthanc.add_dicomweb_server("radstream-bad", receiver.stow_url, token="wrong")
    with pytest.raises(OrthancError):
        orthanc.rest("POST", "/dicom-web/servers/radstream-bad/stow", {"Resources": [study]})
    assert "answered 401" in receiver.log.read_text()
    assert [e["sop_uid"] for e in arrivals_on_topic(pipeline_config)] == [sop]


def test_a_bad_part_fails_alone_with_its_reason(receiver_factory, token_file, pipeline_config) -> None:
    receiver = receiver_factory(dicomweb=True, args=["--dicomweb-tokens", str(token_file)])
    rg1 = real_radiographs()[0]
    original = pydicom.dcmread(rg1, stop_before_pixels=True)
    study = str(original.StudyInstanceUID)
    other_study = instance_bytes()  # a valid instance of another study
    ctype, body = multipart_related([
        ("application/dicom", rg1.read_bytes()),
        ("application/dicom", b"this is not a DICOM file, only text" * 10),
        ("application/dicom", other_study),
    ])

    status, answer, warnings = post(f"{receiver.stow_url}/studies/{study}", body, ctype)

    assert status == 202, answer
    response = response_dataset(answer)
    assert [i.ReferencedSOPInstanceUID for i in response.ReferencedSOPSequence] == [str(original.SOPInstanceUID)]
    assert response.ReferencedSOPSequence[0].ReferencedSOPClassUID == str(original.SOPClassUID)
    reasons = [int(i.FailureReason) for i in response.FailedSOPSequence]
    assert reasons == [0xC000, 0xC409]  # cannot understand; of another study than the target URI's
    assert response.FailedSOPSequence[1].ReferencedSOPInstanceUID == str(pydicom.dcmread(pydicom.filebase.DicomBytesIO(other_study)).SOPInstanceUID)
    assert len(warnings) == 2 and "not a DICOM" in warnings[0] and "not " + study in warnings[1]

    events = arrivals_on_topic(pipeline_config)
    assert [e["sop_uid"] for e in events] == [str(original.SOPInstanceUID)]  # the refused parts published nothing


def test_auth_content_type_and_size_limits(receiver_factory, token_file, pipeline_config) -> None:
    receiver = receiver_factory(dicomweb=True, args=["--dicomweb-tokens", str(token_file)],
                                env={"RADSTREAM_STOW_MAX_PART_MB": "1", "RADSTREAM_STOW_MAX_REQUEST_MB": "4"})
    small = instance_bytes(size=32)
    ctype, body = multipart_related([("application/dicom", small)])
    url = f"{receiver.stow_url}/studies"

    assert post(url, body, ctype, token=None)[0] == 401
    assert post(url, body, ctype, token="wrong")[0] == 401
    assert post(url, body, "application/json")[0] == 415
    assert post(url, body, 'multipart/related; type="application/dicom+json"; boundary=x')[0] == 415

    # One part over the 1 MiB per-part limit fails alone (0xA700); the small one is stored.
    big = instance_bytes(size=1024)  # 2 MiB of pixels
    ctype, body = multipart_related([("application/dicom", big), ("application/dicom", small)])
    status, answer, _ = post(url, body, ctype)
    assert status == 202, answer
    response = response_dataset(answer)
    assert [int(i.FailureReason) for i in response.FailedSOPSequence] == [0xA700]
    assert len(response.ReferencedSOPSequence) == 1

    # Over the 4 MiB per-request limit: 413 from the Content-Length, before any part is read.
    rg1 = real_radiographs()[0].read_bytes()  # 7 MiB
    ctype, body = multipart_related([("application/dicom", small), ("application/dicom", rg1)])
    status, answer, _ = post(url, body, ctype)
    assert status == 413, answer

    # All parts failed: 409.
    ctype, body = multipart_related([("application/dicom", b"junk")])
    assert post(url, body, ctype)[0] == 409

    events = arrivals_on_topic(pipeline_config)
    assert [e["sop_uid"] for e in events] == [str(pydicom.dcmread(pydicom.filebase.DicomBytesIO(small)).SOPInstanceUID)]
