"""Write phantoms as real CR DICOM files, with ground-truth sidecars, for end-to-end tests.

The patient attributes are obviously fake but PHI-shaped, so de-identification
has something to strip.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID, generate_uid

from radstream.services.synthetic.phantoms import Phantom, make_phantom

CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
MANUFACTURER = "radstream-synthetic"


def _patient_and_study(ds: Dataset, seed: int, study_uid: str, series_uid: str) -> None:
    ds.PatientName = f"SYNTHETIC^PHANTOM^{seed}"
    ds.PatientID = f"SYN-{seed}"
    ds.PatientBirthDate = "19000101"
    ds.PatientSex = "O"
    ds.AccessionNumber = f"SYNACC{seed}"
    ds.ReferringPhysicianName = "SYNTHETIC^REFERRER"
    ds.InstitutionName = "radstream synthetic hospital"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = str(seed)
    ds.SeriesNumber = 1
    ds.StudyDescription = "SYNTHETIC CHEST PHANTOM - NOT A PATIENT"
    ds.Modality = "CR"
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = "PA"
    ds.Manufacturer = MANUFACTURER


def _pixel_module(ds: Dataset, image: np.ndarray) -> None:
    pixels = np.clip(np.round(image), 0, 4095).astype(np.uint16)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelSpacing = [0.35, 0.35]
    ds.WindowCenter = int(np.percentile(pixels, 50))
    ds.WindowWidth = max(1, int(np.percentile(pixels, 99.5) - np.percentile(pixels, 0.5)))
    ds.PixelData = pixels.tobytes()


def _write_instance(path: Path, phantom: Phantom, number: int, seed: int, study_uid: str, series_uid: str) -> None:
    sop_uid = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CR_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CR_IMAGE_STORAGE
    ds.SOPInstanceUID = sop_uid
    now = dt.datetime.now()
    ds.StudyDate = ds.ContentDate = now.strftime("%Y%m%d")
    ds.StudyTime = ds.ContentTime = now.strftime("%H%M%S")
    _patient_and_study(ds, seed, study_uid, series_uid)
    ds.InstanceNumber = number
    _pixel_module(ds, phantom.image)
    ds.save_as(path, enforce_file_format=True)


def write_synthetic_study(
    out_dir: Path, n_images: int, seed: int, study_uid: str | None = None
) -> list[Path]:
    """Write one study (one series) of `n_images` phantom radiographs plus `<stem>.truth.json` each."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 7])  # a stream the demo training never draws from
    study_uid = study_uid or generate_uid()
    series_uid = generate_uid()
    paths = []
    for number in range(1, n_images + 1):
        phantom = make_phantom(rng)
        path = out_dir / f"syn-{seed}-{number:04d}.dcm"
        _write_instance(path, phantom, number, seed, study_uid, series_uid)
        truth = {
            "boxes": phantom.boxes.round(2).tolist(),
            "labels": phantom.labels,
            "box_format": "x1,y1,x2,y2 pixels",
            "rows": int(phantom.image.shape[0]),
            "columns": int(phantom.image.shape[1]),
        }
        path.with_suffix(".truth.json").write_text(json.dumps(truth, indent=2) + "\n", encoding="utf-8")
        paths.append(path)
    return paths
