"""`radstream sr --result`: the SR carries the patient of the original in the blob store when it is
there (D-022), and says in one line that it does not when it is gone. Real RG1 files, a real blob
store, the CLI as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pydicom
from radstream.services.demo import real_radiographs
from radstream.streams.blobstore import FileBlobStore

from tests.unit.services.gateway.gateway_records import fused_box, study_result


def _run(result: dict, tmp_path: Path, blobs: Path) -> subprocess.CompletedProcess:
    (tmp_path / "result.json").write_text(json.dumps(result), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADSTREAM_")}
    env.update(RADSTREAM_BLOB_URL=str(blobs), RADSTREAM_HOME=str(tmp_path / "home"))
    return subprocess.run([sys.executable, "-m", "radstream.services.cli", "sr", "--result",
                           str(tmp_path / "result.json"), "--out", str(tmp_path / "sr.dcm")],
                          capture_output=True, text=True, env=env, timeout=120, check=False)


def test_the_sr_carries_the_originals_patient_and_without_it_warns(tmp_path: Path) -> None:
    path = next(p for p in real_radiographs() if p.name == "RG1_UNCR.dcm")
    original = pydicom.dcmread(path, stop_before_pixels=True)
    store = FileBlobStore(tmp_path / "blobs")
    result = study_result(study=str(original.StudyInstanceUID), sops=[str(original.SOPInstanceUID)],
                          boxes=[fused_box([400.0, 500.0, 700.0, 820.0])])
    result["images"][0].update(series_uid=str(original.SeriesInstanceUID),
                               source=store.put(path.read_bytes(), "application/dicom"))

    run = _run(result, tmp_path, store.root)
    assert run.returncode == 0, run.stderr
    assert "patient from the original" in run.stdout and run.stderr == ""
    sr = pydicom.dcmread(tmp_path / "sr.dcm")
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyID", "StudyDate",
                    "StudyTime", "AccessionNumber", "ReferringPhysicianName", "StudyInstanceUID"):
        assert sr.get(keyword) == original.get(keyword), keyword

    digest = result["images"][0]["source"]["sha256"]
    (store.area_dir("raw") / digest[:2] / digest).unlink()  # retention removed the original
    run = _run(result, tmp_path, store.root)
    assert run.returncode == 0, run.stderr
    (warning,) = run.stderr.splitlines()  # one line, no traceback
    assert warning.startswith("warning: the SR carries no patient") and "blob not found" in warning
    sr = pydicom.dcmread(tmp_path / "sr.dcm")
    assert sr.StudyInstanceUID == original.StudyInstanceUID and sr.PatientName in (None, "")
