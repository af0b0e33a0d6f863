"""The attributes a security review saw survive `dicom deidentify` (issue 17), the retain options,
and dciodvfy on a de-identified real radiograph. Each survivor test fails on the hand-written table."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian
from radstream.services.deidentify import (
    BASIC_PROFILE,
    RetainOptions,
    UIDRemapper,
    deidentify_dataset,
    deidentify_paths,
)
from radstream.services.demo import real_radiographs

KEY = UIDRemapper(b"survivor-key")
ANNOTATION_TEXT = "Jane Doe MRN 4471923 left hip"
TELECOM = "tel:+44-20-7946-0958 jane.doe@example.org"
REASON = "Fall at home, husband John Doe reports"
CAPTURE_DATE, ARRIVAL_DATE, FRAME_DATETIME = "20230517", "20230518", "20230519083011.250000"
STUDY_UID = "1.2.826.0.1.3680043.8.498.70000000000000001"


def survivor_instance() -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = DigitalXRayImageStorageForPresentation
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.70000000000000002"
    ds.StudyInstanceUID = STUDY_UID
    ds.Modality, ds.BodyPartExamined, ds.Manufacturer = "DX", "CHEST", "ACME"
    ds.PatientName, ds.PatientAge, ds.PatientSex, ds.PatientWeight = "Doe^Jane", "063Y", "F", "71"
    ds.InstitutionName, ds.DeviceSerialNumber, ds.StationName = "Saint Elsewhere", "SN-99812", "XR-ROOM-3"
    ds.StudyDate, ds.AcquisitionDate = "20230517", "20230517"
    text = Dataset()
    text.UnformattedTextValue = ANNOTATION_TEXT
    text.BoundingBoxAnnotationUnits = "PIXEL"
    text.BoundingBoxTopLeftHandCorner = [10.0, 10.0]
    text.BoundingBoxBottomRightHandCorner = [200.0, 40.0]
    text.BoundingBoxTextHorizontalJustification = "LEFT"
    annotation = Dataset()
    annotation.GraphicLayer = "LAYER1"
    annotation.TextObjectSequence = Sequence([text])
    ds.GraphicAnnotationSequence = Sequence([annotation])
    ds.PatientTelecomInformation = TELECOM
    ds.ReasonForVisit = REASON
    ds.DateOfSecondaryCapture = CAPTURE_DATE
    ds.StudyArrivalDate = ARRIVAL_DATE
    content = Dataset()
    content.FrameAcquisitionDateTime = FRAME_DATETIME
    frame = Dataset()
    frame.FrameContentSequence = Sequence([content])
    ds.PerFrameFunctionalGroupsSequence = Sequence([frame])
    return ds


@pytest.fixture
def deidentified() -> tuple[Dataset, bytes]:
    ds = deidentify_dataset(survivor_instance(), KEY)
    path_bytes = _encoded(ds)
    return ds, path_bytes


def _encoded(ds: Dataset) -> bytes:
    from io import BytesIO

    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_the_fixture_carries_every_survivor() -> None:
    data = _encoded(survivor_instance())
    for value in (ANNOTATION_TEXT, TELECOM, REASON, CAPTURE_DATE, ARRIVAL_DATE, FRAME_DATETIME):
        assert value.encode() in data


def test_text_inside_graphic_annotation_sequence_is_replaced(deidentified: tuple[Dataset, bytes]) -> None:
    ds, data = deidentified
    assert ANNOTATION_TEXT.encode() not in data
    text = ds.GraphicAnnotationSequence[0].TextObjectSequence[0]  # D: items kept, text dummied
    assert text.UnformattedTextValue == "ANONYMIZED"
    assert list(text.BoundingBoxBottomRightHandCorner) == [200.0, 40.0] and text.BoundingBoxAnnotationUnits == "PIXEL"


def test_patient_telecom_information_is_removed(deidentified: tuple[Dataset, bytes]) -> None:
    ds, data = deidentified
    assert "PatientTelecomInformation" not in ds and TELECOM.encode() not in data


def test_reason_for_visit_is_removed(deidentified: tuple[Dataset, bytes]) -> None:
    ds, data = deidentified
    assert "ReasonForVisit" not in ds and REASON.encode() not in data


def test_date_of_secondary_capture_and_study_arrival_date_are_removed(deidentified: tuple[Dataset, bytes]) -> None:
    ds, data = deidentified
    assert "DateOfSecondaryCapture" not in ds and "StudyArrivalDate" not in ds
    assert CAPTURE_DATE.encode() not in data and ARRIVAL_DATE.encode() not in data


def test_a_nested_frame_acquisition_datetime_is_replaced(deidentified: tuple[Dataset, bytes]) -> None:
    ds, data = deidentified
    content = ds.PerFrameFunctionalGroupsSequence[0].FrameContentSequence[0]
    assert content.FrameAcquisitionDateTime == "19000101000000"  # D in Table E.1-1
    assert FRAME_DATETIME[:8].encode() not in data


def test_unlisted_free_text_and_dates_are_removed_at_any_depth() -> None:
    ds = survivor_instance()
    item = Dataset()
    item.StudyUpdateDateTime = "20230517101010"  # DT
    item.ProtocolPlanningInformation = "unlisted free text about Jane Doe"  # UT
    item.CodeValue = "T-D3000"  # SH: kept
    ds.AnatomicRegionsInStudyCodeSequence = Sequence([item])  # an unlisted sequence: kept, cleaned inside
    unlisted = ("StudyUpdateDateTime", "ProtocolPlanningInformation", "AnatomicRegionsInStudyCodeSequence")
    assert not any(tag_for_keyword(keyword) in BASIC_PROFILE for keyword in unlisted)
    out = deidentify_dataset(ds, KEY)
    assert out.AnatomicRegionsInStudyCodeSequence[0].CodeValue == "T-D3000"
    data = _encoded(out)
    assert b"20230517101010" not in data and b"unlisted free text" not in data


def test_retain_options_keep_their_columns_and_are_coded() -> None:
    options = RetainOptions(retain_uids=True, retain_device_identity=True, retain_institution_identity=True,
                            retain_patient_characteristics=True, retain_full_dates=True)
    ds = deidentify_dataset(survivor_instance(), None, options)
    assert ds.StudyInstanceUID == STUDY_UID
    assert (ds.DeviceSerialNumber, ds.StationName, ds.InstitutionName) == ("SN-99812", "XR-ROOM-3", "Saint Elsewhere")
    assert (ds.PatientAge, ds.PatientSex, str(ds.PatientWeight)) == ("063Y", "F", "71")
    assert ds.AcquisitionDate == "20230517" and ds.StudyArrivalDate == ARRIVAL_DATE
    assert ds.LongitudinalTemporalInformationModified == "UNMODIFIED"
    codes = [item.CodeValue for item in ds.DeidentificationMethodCodeSequence]
    assert codes == ["113100", "113110", "113109", "113112", "113108", "113106"]
    assert ds.PatientName == "" and "ReasonForVisit" not in ds  # the basic profile still applies
    assert all(len(value) <= 64 for value in ds.DeidentificationMethod)


def test_without_options_nothing_is_retained() -> None:
    ds = deidentify_dataset(survivor_instance(), KEY)
    assert ds.StudyInstanceUID != STUDY_UID and ds.DeviceSerialNumber == "ANONYMIZED"
    assert "PatientAge" not in ds and ds.PatientSex == "" and ds.AcquisitionDate == ""
    assert [item.CodeValue for item in ds.DeidentificationMethodCodeSequence] == ["113100"]
    assert ds.LongitudinalTemporalInformationModified == "REMOVED"
    with pytest.raises(ValueError, match="key"):
        deidentify_dataset(survivor_instance(), None)


def _dciodvfy_errors(path: Path) -> set[str]:
    result = subprocess.run(["dciodvfy", str(path)], check=False, capture_output=True, text=True, timeout=60)
    lines = (result.stdout + result.stderr).splitlines()
    return {re.sub(r"\s+", " ", line).strip() for line in lines if line.startswith("Error")}


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (Debian dicom3tools) is not installed")
def test_a_deidentified_real_radiograph_has_no_new_dciodvfy_errors(tmp_path: Path) -> None:
    source = next(p for p in real_radiographs() if p.name == "RG1_UNCR.dcm")
    out = tmp_path / "rg1.dcm"
    assert deidentify_paths(source, out, KEY) == (1, [])
    before, after = _dciodvfy_errors(source), _dciodvfy_errors(out)
    assert after <= before, f"new dciodvfy errors: {sorted(after - before)}"
    original = pydicom.dcmread(source)
    data = out.read_bytes()
    for keyword in ("PatientName", "PatientID", "InstitutionName", "StationName", "StudyDate", "ImageComments"):
        value = str(original.get(keyword, "")).strip()
        assert value and value.encode() not in data, keyword


def test_every_pydicom_test_file_is_written_or_refused_in_one_line(tmp_path: Path, caplog) -> None:
    """pydicom's own odd files (no File Meta, UN sequences, big endian, truncated): no traceback,
    and no warning that repeats an original value (pydicom's validation is off meanwhile)."""
    import logging
    import warnings

    from pydicom.data import get_testdata_files

    sources = tmp_path / "in"
    sources.mkdir()
    for n, path in enumerate(p for p in get_testdata_files() if p.endswith(".dcm")):
        shutil.copy(path, sources / f"{n:03d}_{Path(path).name}")
    caplog.set_level(logging.WARNING)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        written, errors = deidentify_paths(sources, tmp_path / "out", KEY)
    total = len(list(sources.iterdir()))
    assert written + len(errors) == total and written >= 0.9 * total
    assert all("\n" not in line and line.startswith(str(sources)) for line in errors)
    emitted = [str(w.message) for w in caught] + [r.getMessage() for r in caplog.records]
    assert not [m for m in emitted if "Invalid value" in m]
