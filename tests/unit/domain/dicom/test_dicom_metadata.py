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


def test_allow_listed_text_is_checked_and_a_dropped_value_is_named_not_repeated() -> None:
    ds = image_dataset(np.zeros((2, 2), dtype=np.uint16), BodyPartExamined="CHEST DOE JOHANNA",
                       ViewPosition="DOE", Laterality="X", ImageLaterality="l", Modality="cr^doe",
                       Manufacturer="ACME " + "J" * 80, ManufacturerModelName="Zq7\x07Doe")
    metadata = extract_metadata(ds, ["BitsStored missing: set to HighBit + 1 = 12"])
    for keyword in ("BodyPartExamined", "ViewPosition", "Laterality", "ImageLaterality", "Modality",
                    "ManufacturerModelName"):
        assert metadata[keyword] is None, keyword
    assert metadata["Manufacturer"] == ("ACME " + "J" * 80)[:64]
    notes = metadata["Repairs"]
    assert notes.startswith("BitsStored missing")
    assert "BodyPartExamined (CS, 17 characters): not a code string, dropped" in notes
    assert "ViewPosition (CS, 3 characters): not a defined term, dropped" in notes
    assert "Manufacturer (LO, 85 characters): cut to 64" in notes
    for value in ("DOE", "Doe", "JOHANNA", "cr^doe", "Zq7"):
        assert value not in notes


def test_defined_terms_pass() -> None:
    ds = image_dataset(np.zeros((2, 2), dtype=np.uint16), BodyPartExamined="EXTREMITY", ViewPosition="AP",
                       Laterality="R", ImageLaterality="B", Modality="DX")
    metadata = extract_metadata(ds)
    assert (metadata["BodyPartExamined"], metadata["ViewPosition"], metadata["Laterality"],
            metadata["ImageLaterality"], metadata["Modality"]) == ("EXTREMITY", "AP", "R", "B", "DX")
    assert metadata["Repairs"] is None


def test_acquisition_dates_are_not_on_the_allow_list(rg1_uncr: bytes) -> None:
    ds = pydicom.dcmread(BytesIO(rg1_uncr))
    ds.AcquisitionDate, ds.AcquisitionTime = "19950926", "125130"
    metadata = extract_metadata(ds)
    assert "AcquisitionDate" not in metadata and "AcquisitionTime" not in metadata
    assert "19950926" not in " | ".join(str(v) for v in metadata.values())
