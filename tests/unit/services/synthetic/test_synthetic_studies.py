import json
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import ExplicitVRLittleEndian

from radstream.services.synthetic.studies import CR_IMAGE_STORAGE, write_synthetic_study


def test_study_reads_back_with_expected_tags(tmp_path: Path) -> None:
    paths = write_synthetic_study(tmp_path, n_images=3, seed=42)
    assert len(paths) == 3
    datasets = [pydicom.dcmread(p) for p in paths]
    assert len({ds.StudyInstanceUID for ds in datasets}) == 1
    assert len({ds.SeriesInstanceUID for ds in datasets}) == 1
    assert len({ds.SOPInstanceUID for ds in datasets}) == 3
    assert [ds.InstanceNumber for ds in datasets] == [1, 2, 3]
    for ds in datasets:
        assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert ds.SOPClassUID == CR_IMAGE_STORAGE == ds.file_meta.MediaStorageSOPClassUID
        assert ds.Modality == "CR" and ds.BodyPartExamined == "CHEST" and ds.ViewPosition == "PA"
        assert ds.Manufacturer == "radstream-synthetic"
        assert str(ds.PatientName) == "SYNTHETIC^PHANTOM^42" and ds.PatientID == "SYN-42"
        assert ds.PhotometricInterpretation == "MONOCHROME2"
        assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (16, 12, 11, 0)
        pixels = ds.pixel_array
        assert pixels.dtype == np.uint16 and pixels.shape == (ds.Rows, ds.Columns) and pixels.max() <= 4095


def test_given_study_uid_and_truth_sidecars(tmp_path: Path) -> None:
    paths = write_synthetic_study(tmp_path, n_images=6, seed=7, study_uid="1.2.826.0.1.3680043.8.498.1")
    assert {pydicom.dcmread(p).StudyInstanceUID for p in paths} == {"1.2.826.0.1.3680043.8.498.1"}
    for path in paths:
        truth = json.loads(path.with_suffix(".truth.json").read_text())
        assert len(truth["boxes"]) == len(truth["labels"])
        assert set(truth["labels"]) <= {"nodule"}
        for x1, y1, x2, y2 in truth["boxes"]:
            assert 0 <= x1 < x2 <= truth["columns"] and 0 <= y1 < y2 <= truth["rows"]


def test_same_seed_gives_same_pixels_but_fresh_uids(tmp_path: Path) -> None:
    a = pydicom.dcmread(write_synthetic_study(tmp_path / "a", 1, seed=5)[0])
    b = pydicom.dcmread(write_synthetic_study(tmp_path / "b", 1, seed=5)[0])
    np.testing.assert_array_equal(a.pixel_array, b.pixel_array)
    assert a.SOPInstanceUID != b.SOPInstanceUID
