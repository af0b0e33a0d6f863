"""The export edges' one way to the patient: read it back from a result's original instance.

The bus carries no PHI, so the patient and study modules come from the blob store, where
the receiver keeps each original instance. A result whose originals are gone (or that
predates `source` in the contract) cannot be filed under its patient: that is a
permanent error with the reason, so the result lands in the DLQ and nothing is sent
under an empty patient.
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from radstream.domain.dicom.patient import PatientContext
from radstream.domain.errors import PermanentError, StageError
from radstream.streams.blobstore import BlobStore


class OriginalMissing(PermanentError):
    """No original instance of the study could be read from the blob store."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, code="original_missing")


def patient_context(store: BlobStore, result: dict[str, Any]) -> PatientContext:
    """The PatientContext of a StudyResult, from the first of its images whose original loads."""
    reasons: list[str] = []
    for image in result["images"]:
        ref = image.get("source")
        if not ref:
            reasons.append(f"image {image['sop_uid']} names no original instance")
            continue
        try:
            ds = pydicom.dcmread(BytesIO(store.get(ref)), stop_before_pixels=True)
        except StageError as exc:
            if exc.transient:
                raise
            reasons.append(exc.reason)
            continue
        except (InvalidDicomError, ValueError, EOFError) as exc:
            reasons.append(f"original of {image['sop_uid']} does not parse: {exc}")
            continue
        context = PatientContext.from_dataset(ds)
        if context.study_uid != result["study_uid"]:
            reasons.append(f"original of {image['sop_uid']} belongs to study {context.study_uid}")
            continue
        return context
    detail = "; ".join(reasons[:3]) or "the result has no images"
    raise OriginalMissing(f"study {result['study_uid']}: cannot read the patient from an original instance ({detail})")


def original_headers(store: BlobStore, result: dict[str, Any]) -> dict[str, Dataset]:
    """SOP Instance UID -> the header of each image's original (what dicom_objects references).
    OriginalMissing, naming the image, when any is absent or unreadable: no partial export."""
    headers: dict[str, Dataset] = {}
    for image in result["images"]:
        sop = image["sop_uid"]
        if sop in headers:
            continue  # the frames of one multi-frame instance
        ref = image.get("source")
        if not ref:
            raise OriginalMissing(f"study {result['study_uid']}: image {sop} names no original instance")
        try:
            ds = pydicom.dcmread(BytesIO(store.get(ref)), stop_before_pixels=True)
        except StageError as exc:
            if exc.transient:
                raise
            raise OriginalMissing(f"study {result['study_uid']}: original of {sop}: {exc.reason}") from None
        except (InvalidDicomError, ValueError, EOFError) as exc:
            raise OriginalMissing(f"study {result['study_uid']}: original of {sop} does not parse: {exc}") from None
        if str(ds.get("SOPInstanceUID", "")) != sop:
            raise OriginalMissing(f"study {result['study_uid']}: the blob named for {sop} holds another instance")
        headers[sop] = ds
    return headers
