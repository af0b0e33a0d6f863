"""Final study results whose images name a real original instance in the test's blob store,
as the receiver leaves them: what the export edges read the patient back from."""

from __future__ import annotations

from pathlib import Path

import pydicom
from radstream.streams.blobstore import open_blob_store
from radstream.streams.config import Config

from tests.unit.services.gateway.gateway_records import fused_box, study_result


def result_with_original(config: Config, dicom: Path, key: str, boxes: list[list[float]] | None = None) -> dict:
    """A final StudyResult for the study of `dicom`, its one image's `source` that file stored as a blob."""
    data = Path(dicom).read_bytes()
    ds = pydicom.dcmread(dicom, stop_before_pixels=True)
    ref = open_blob_store(config.blob_url).put(data, "application/dicom")
    result = study_result(study=ds.StudyInstanceUID, sops=[ds.SOPInstanceUID], key=key,
                          boxes=[fused_box(b) for b in (boxes or [[120, 140, 260, 300]])])
    image = result["images"][0]
    image.update(series_uid=ds.SeriesInstanceUID, sop_class_uid=ds.SOPClassUID, source=ref)
    return result
