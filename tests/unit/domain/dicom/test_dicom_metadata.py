"""The allow-list: required keys present, nothing identifying ever out."""

from __future__ import annotations

from io import BytesIO

import numpy as np
import pydicom

from radstream.domain.dicom.metadata import METADATA_KEYS, extract_metadata

from dicom_samples import image_dataset

PHI = {
    "PatientName": "CompressedSamples^RG1",
    "PatientID": "9RG1",
    "OtherPatientIDs": "26210",
    "PatientBirthDate": "19400305",
    "AccessionNumber": "exam Number",
    "InstitutionName": "Philips Medical Systems Hamburg",
    "InstitutionalDepartmentName": "Our Department",
    "ReferringPhysicianName": "ward",
    "StationName": "THORAVISION",
    "StudyID": "9RG1",
}


def test_rg1_has_the_required_keys_and_technical_values(rg1_uncr: bytes) -> None:
    metadata = extract_metadata(pydicom.dcmread(BytesIO(rg1_uncr)))
    assert set(metadata) == set(METADATA_KEYS)
    assert metadata["SOPInstanceUID"] == "1.3.6.1.4.1.5962.1.1.9.1.1.20040826185059.5457"
    assert metadata["Modality"] == "CR"
    assert metadata["ViewPosition"] == "PA"
    assert metadata["BodyPartExamined"] == "CHEST"
    assert metadata["PhotometricInterpretation"] == "MONOCHROME1"
    assert (metadata["Rows"], metadata["Columns"], metadata["BitsStored"]) == (1955, 1841, 15)
    assert (metadata["WindowCenter"], metadata["WindowWidth"]) == (15000.0, 30000.0)
    assert metadata["TransferSyntaxUID"] == "1.2.840.10008.1.2.1"
    # RG1 writes Pixel Spacing 0\0: unknown, not zero millimetres
    assert metadata["PixelSpacingSource"] is None and metadata["PixelSpacingRow"] is None


def test_rg1_phi_appears_in_no_value(rg1_uncr: bytes) -> None:
    ds = pydicom.dcmread(BytesIO(rg1_uncr))
    for keyword, value in PHI.items():
        assert str(ds.get(keyword)) == value, f"test premise: RG1 {keyword}"
    values = " | ".join(str(v) for v in extract_metadata(ds).values())
    for keyword, value in PHI.items():
        assert value not in values, f"{keyword} leaked"
    assert "CompressedSamples" not in values and "19400305" not in values


def test_only_scalars_and_no_phi_keys_whatever_the_dataset_holds() -> None:
    ds = image_dataset(np.zeros((2, 2), dtype=np.uint16), **PHI, PatientComments="free text", ImageComments="x")
    metadata = extract_metadata(ds)
    assert set(metadata) == set(METADATA_KEYS)
    assert not set(PHI) & set(metadata)
    assert all(v is None or isinstance(v, (str, int, float)) for v in metadata.values())


def test_imager_pixel_spacing_is_used_and_named_when_pixel_spacing_is_absent() -> None:
    ds = image_dataset(np.zeros((2, 2), dtype=np.uint16), ImagerPixelSpacing=[0.143, 0.15])
    metadata = extract_metadata(ds)
    assert metadata["PixelSpacingSource"] == "ImagerPixelSpacing"
    assert (metadata["PixelSpacingRow"], metadata["PixelSpacingColumn"]) == (0.143, 0.15)
    ds.PixelSpacing = [0.1, 0.2]
    assert extract_metadata(ds)["PixelSpacingSource"] == "PixelSpacing"


def test_first_window_and_malformed_values_become_none() -> None:
    ds = image_dataset(np.zeros((2, 2), dtype=np.uint16), WindowCenter=[40, 400], WindowWidth=[80, 2000])
    ds.NumberOfFrames = ""
    metadata = extract_metadata(ds)
    assert (metadata["WindowCenter"], metadata["WindowWidth"]) == (40.0, 80.0)
    assert metadata["NumberOfFrames"] is None
