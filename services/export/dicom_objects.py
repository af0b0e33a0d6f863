"""What the DICOM export edges (C-STORE, STOW-RS) send for one final result (pure).

The TID 1500 SR first (services/structured_report.py), then one Grayscale Softcopy
Presentation State per grayscale image (services/presentation_state.py; a colour image has
its findings in the SR only). The SR carries the
PatientContext read back from an original instance; each GSPS the patient and study of
the original header it references; so the PACS files them all under the images' patient
and study. Every UID is derived (domain/dicom/uids.py): the same result version gives
the same instances, and a newer version new ones whose SR names the earlier SR in its
PredecessorDocumentsSequence.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydicom.dataset import Dataset
from radstream.domain.dicom.patient import PatientContext
from radstream.domain.dicom.uids import DEFAULT_UID_ROOT
from radstream.domain.errors import PermanentError
from radstream.services.export.patient_context import OriginalMissing
from radstream.services.presentation_state import presentation_states
from radstream.services.structured_report import (
    Predecessor,
    ReportError,
    earlier_sr,
    sr_reference,
    structured_report,
)

__all__ = ["NotReportable", "Predecessor", "dicom_objects", "earlier_sr", "sr_reference"]


class NotReportable(PermanentError):
    """A result that cannot become DICOM objects (not final, no images, headers of another study)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, code="not_reportable")


def dicom_objects(result: dict[str, Any], context: PatientContext, originals: Mapping[str, Dataset], *,
                  uid_root: str = DEFAULT_UID_ROOT, not_for_clinical_use: bool = False,
                  predecessor: Predecessor | None = None) -> list[Dataset]:
    """[SR, GSPS of each grayscale image in result order]. `originals` maps SOP Instance UID to the original
    instance's header (read with stop_before_pixels). OriginalMissing when an image has none,
    NotReportable when the result cannot be one (both permanent: the result goes to the DLQ)."""
    missing = sorted({image["sop_uid"] for image in result["images"]} - set(originals))
    if missing:
        raise OriginalMissing(f"study {result['study_uid']}: no original instance for image(s) {', '.join(missing)}")
    try:
        report = structured_report(_with_sop_classes(result, originals), not_for_clinical_use, context=context,
                                   uid_root=uid_root, predecessor=predecessor)
        states = presentation_states(result, originals, uid_root=uid_root, not_for_clinical_use=not_for_clinical_use)
    except ReportError as exc:
        raise NotReportable(str(exc)) from None
    return [report, *states]


def _with_sop_classes(result: dict[str, Any], originals: Mapping[str, Dataset]) -> dict[str, Any]:
    """The result with each image's SOP Class UID and frame count from its original, so SR and GSPS
    reference the same class and frames (results written before sop_class_uid was carried would fall
    back to the modality's class)."""
    images = [{**image, "sop_class_uid": str(originals[image["sop_uid"]].SOPClassUID),
               "number_of_frames": int(originals[image["sop_uid"]].get("NumberOfFrames") or 1)}
              for image in result["images"]]
    return {**result, "images": images}
