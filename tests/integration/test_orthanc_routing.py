"""The Orthanc example in examples/orthanc/ really routes: a real Orthanc runs route-to-radstream.lua.

Orthanc is started with the example's own sections of `orthanc.json` (the peers, UserMetadata,
RadstreamRouting) and the example Lua file as it is; only the peers' host, ports and AE title
are set to this test's receiver, and the harness keeps its loopback ports, storage and a
StableAge of 2 s. storescu sends RG1 into Orthanc as a modality would; nobody asks Orthanc to
forward: OnStableStudy does, and the arrivals on `dicom.arrived` show it. A result stored back
into the study (an SR) and a late image then make the study stable again: only the late image
goes.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

import pydicom
import pytest
from pydicom.uid import BasicTextSRStorage, generate_uid
from radstream.services.demo import real_radiographs

from tests.arrivals import arrivals_on_topic, read_arrivals
from tests.fixtures.instances import instance_dataset

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("storescu") is None, reason="dcmtk's storescu is not installed (apt-get install dcmtk)"),
]
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "orthanc"
SCRIPT = EXAMPLES / "route-to-radstream.lua"


def example_config(receiver, via: str | None = None) -> dict[str, Any]:
    """orthanc_factory's arguments from examples/orthanc/orthanc.json, pointed at this test's receiver."""
    example = json.loads((EXAMPLES / "orthanc.json").read_text())
    assert [Path(p).name for p in example["LuaScripts"]] == [SCRIPT.name]  # the config loads this very script
    routing = dict(example["RadstreamRouting"])
    target = routing["Target"]
    modality = {**example["DicomModalities"][target], "AET": receiver.ae_title, "Host": "127.0.0.1",
                "Port": receiver.port}
    server = dict(example["DicomWeb"]["Servers"][target])
    if receiver.dicomweb_port is not None:
        url = urlparse(server["Url"])
        server["Url"] = urlunparse(url._replace(netloc=f"127.0.0.1:{receiver.dicomweb_port}"))
    if via is not None:
        routing["Via"] = via
    return {"modalities": {target: modality}, "servers": {target: server}, "lua_scripts": [SCRIPT],
            "extra": {"UserMetadata": example["UserMetadata"], "RadstreamRouting": routing}}


def stow_token() -> str:
    """The bearer token the example configures for its DICOMweb server (`Bearer CHANGE-ME-...`)."""
    example = json.loads((EXAMPLES / "orthanc.json").read_text())
    target = example["RadstreamRouting"]["Target"]
    return example["DicomWeb"]["Servers"][target]["HttpHeaders"]["Authorization"].split(" ", 1)[1]


def wait_for_log(orthanc, text: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in orthanc.log:
        assert time.monotonic() < deadline, f"Orthanc never logged {text!r}: {orthanc.log[-3000:]}"
        time.sleep(0.2)


def forwarded_mark(orthanc, sop_uid: str) -> bytes:
    [found] = [r for r in orthanc.rest("POST", "/tools/lookup", sop_uid) if r["Type"] == "Instance"]
    return orthanc.rest("GET", f"/instances/{found['ID']}/metadata/RadstreamForwarded")


def part10(ds: pydicom.Dataset) -> bytes:
    buffer = pydicom.filebase.DicomBytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_the_example_script_forwards_each_stable_study_by_c_store(orthanc_factory, receiver_factory,
                                                                   pipeline_config) -> None:
    rg1 = [pydicom.dcmread(p) for p in real_radiographs()[:2]]  # RG1_UNCR, RG1_J2KR: one study
    study, sops = str(rg1[0].StudyInstanceUID), {str(ds.SOPInstanceUID) for ds in rg1}
    receiver = receiver_factory()
    orthanc = orthanc_factory(**example_config(receiver))

    orthanc.store_files(real_radiographs()[:2])  # a modality sends; nothing else is asked of Orthanc

    events = read_arrivals(pipeline_config, sops, 60)
    assert sops <= set(events), f"{orthanc.log[-3000:]}\n{receiver.log.read_text()[-2000:]}"
    assert {(e["site"], e["study_uid"]) for e in events.values()} == {("SITE_ORTHANC", study)}  # C-STORE from Orthanc: its peer's site
    wait_for_log(orthanc, f"radstream: study {study}: forwarded 2 instance(s) to radstream by dicom")
    assert {forwarded_mark(orthanc, sop) for sop in sops} == {b"dicom:radstream"}

    # radstream's SR comes back into the study, and a late image arrives: stable again, only the image goes.
    sr = instance_dataset(study_uid=study, PatientID=rg1[0].PatientID, PatientName=rg1[0].PatientName,
                          Modality="SR")
    for keyword in ("PixelData", "Rows", "Columns", "SamplesPerPixel", "PhotometricInterpretation",
                    "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation"):
        delattr(sr, keyword)
    sr.SOPClassUID = sr.file_meta.MediaStorageSOPClassUID = BasicTextSRStorage
    late = rg1[0].copy()
    late.SOPInstanceUID = late.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    orthanc.upload(part10(sr))
    orthanc.upload(part10(late))

    wait_for_log(orthanc, f"radstream: study {study}: forwarded 1 instance(s) to radstream by dicom")
    arrived = [e["sop_uid"] for e in arrivals_on_topic(pipeline_config, settle_s=2)]
    assert sorted(arrived) == sorted(sops | {str(late.SOPInstanceUID)})  # no SR, no second copy of the first two
    assert str(sr.SOPInstanceUID) not in arrived


def test_the_example_script_forwards_by_stow_rs(orthanc_factory, receiver_factory, pipeline_config,
                                                tmp_path: Path) -> None:
    tokens = tmp_path / "dicomweb-tokens"
    tokens.write_text(f"{stow_token()} ORTHANC_WEB\n")
    receiver = receiver_factory(dicomweb=True, args=["--dicomweb-tokens", str(tokens)])
    orthanc = orthanc_factory(**example_config(receiver, via="dicomweb"))
    rg1 = pydicom.dcmread(real_radiographs()[0], stop_before_pixels=True)
    sop = str(rg1.SOPInstanceUID)

    orthanc.store_files(real_radiographs()[:1])

    events = read_arrivals(pipeline_config, {sop}, 60)
    assert sop in events, f"{orthanc.log[-3000:]}\n{receiver.log.read_text()[-2000:]}"
    assert events[sop]["site"] == "ORTHANC_WEB"  # the token's site: it came by STOW-RS
    wait_for_log(orthanc, f"radstream: study {rg1.StudyInstanceUID}: forwarded 1 instance(s) to radstream by dicomweb")
    assert forwarded_mark(orthanc, sop) == b"dicomweb:radstream"
