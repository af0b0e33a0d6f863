"""A study result as one Grayscale Softcopy Presentation State per grayscale image (pure).

Any PACS viewer applies a GSPS, including viewers that cannot render a TID 1500 SR. Each
one references its original image and draws, on one graphic layer: every finding's box as
a closed POLYLINE in PIXEL units (original-image columns/rows, as the result gives them)
with its label and calibrated confidence as a text object anchored at the box, and, in
DISPLAY units at the top left, what is about the whole image (classifier findings, "no
finding", the not-for-clinical-use warning). An image that failed QC gets a text-only
GSPS saying it was not analysable and why (D-022): the radiologist sees that the AI did
not read it, rather than an image without marks that looks read and clear.

The display is the image's own: its VOI window (or VOI LUT) and modality LUT are copied,
and a MONOCHROME1 image gets an INVERSE presentation LUT, so applying the GSPS changes
only the marks. Patient and study come from the original header, which is what a PACS
files the GSPS by. UIDs are derived: the instance from the result's idempotency key and
the image ("gsps/<sop_uid>"), the series from the study (every version, one PR series).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from radstream.domain.dicom.uids import DEFAULT_UID_ROOT, derived_uid
from radstream.services.structured_report import (
    NOT_FOR_CLINICAL_USE,
    ReportError,
    finding_key,
    finding_uid,
)

LAYER = hd.pr.GraphicLayer(layer_name="RADSTREAM", order=1, description="radstream AI findings",
                           display_color=hd.color.CIELabColor(91.1, -48.1, -14.1))  # cyan: not an image grey
CONTENT_LABEL = "RADSTREAM_AI"  # CS: capitals, digits, underscore
LINE = 0.045  # the height of one DISPLAY-unit text line (fraction of the displayed area)


def presentation_states(result: dict[str, Any], originals: Mapping[str, Dataset], *,
                        uid_root: str = DEFAULT_UID_ROOT, not_for_clinical_use: bool = False,
                        series_number: int = 9002) -> list[hd.pr.GrayscaleSoftcopyPresentationState]:
    """One GSPS per SOP instance of the result (its frames' entries together), in result order.
    `originals` maps SOP Instance UID to the original's header (pixel data not needed)."""
    by_sop: dict[str, list[dict]] = {}
    for image in result["images"]:
        by_sop.setdefault(image["sop_uid"], []).append(image)
    missing = [sop for sop in by_sop if sop not in originals]
    if missing:
        raise ReportError(f"study {result['study_uid']}: no original header for image(s) {', '.join(missing)}")
    grey = [(sop, entries) for sop, entries in by_sop.items() if not is_colour(originals[sop])]
    return [_presentation_state(result, entries, originals[sop], number, uid_root, not_for_clinical_use,
                                series_number)
            for number, (sop, entries) in enumerate(grey, start=1)]


def is_colour(original: Dataset) -> bool:
    """A colour image takes a Color Softcopy Presentation State, not a grayscale one: it gets none
    (its findings are in the SR all the same, D-022)."""
    return int(original.get("SamplesPerPixel", 1)) != 1


def _presentation_state(result: dict, entries: list[dict], original: Dataset, number: int, uid_root: str,
                        not_for_clinical_use: bool, series_number: int) -> hd.pr.GrayscaleSoftcopyPresentationState:
    sop = entries[0]["sop_uid"]
    if str(original.get("StudyInstanceUID", "")) != result["study_uid"] or str(original.SOPInstanceUID) != sop:
        raise ReportError(f"study {result['study_uid']}: the original header given for {sop} is another instance")
    multi_frame = int(original.get("NumberOfFrames") or 1) > 1
    created = dt.datetime.fromtimestamp(result["created_at"] / 1000, tz=dt.UTC)
    try:
        annotations = [_annotation(entry, original, multi_frame, uid_root, not_for_clinical_use) for entry in entries]
        gsps = _build(result, original, sop, number, annotations, created, uid_root, not_for_clinical_use,
                      series_number)
    except (ValueError, TypeError, AttributeError, KeyError) as exc:  # highdicom on a header it cannot use
        raise ReportError(f"image {sop}: no presentation state from its header: {exc}") from None
    gsps.SeriesDescription = "radstream AI marks" + (" (NOT FOR CLINICAL USE)" if not_for_clinical_use else "")
    # General Series: Laterality is 2C (a paired body part): the image's; absent for a named body part
    # without one (a chest); empty, i.e. unknown, when the image names neither
    for keyword in ("BodyPartExamined", "Laterality"):
        if original.get(keyword):
            setattr(gsps, keyword, original.get(keyword))
    if not original.get("BodyPartExamined") and not original.get("Laterality"):
        gsps.Laterality = None
    gsps.PresentationCreationDate, gsps.PresentationCreationTime = created.strftime("%Y%m%d"), created.strftime("%H%M%S")
    return gsps


def _build(result: dict, original: Dataset, sop: str, number: int, annotations: list, created: dt.datetime,
           uid_root: str, not_for_clinical_use: bool, series_number: int) -> hd.pr.GrayscaleSoftcopyPresentationState:
    return hd.pr.GrayscaleSoftcopyPresentationState(
        referenced_images=[original],
        series_instance_uid=derived_uid("gsps-series", result["study_uid"], uid_root),
        series_number=series_number,
        sop_instance_uid=derived_uid(f"gsps/{sop}", result["idempotency_key"], uid_root),
        instance_number=number,
        manufacturer="radstream",
        manufacturer_model_name=_long_string(_models(result)),
        software_versions=f"config v{result['config_version']}",
        device_serial_number=_long_string(result.get("site") or "radstream"),
        content_label=CONTENT_LABEL,
        content_description=_long_string(
            f"radstream AI findings, result of {created:%Y-%m-%d %H:%M} UTC"
            + (" (NOT FOR CLINICAL USE)" if not_for_clinical_use else "")),
        graphic_annotations=annotations,
        graphic_layers=[LAYER],
        presentation_lut_transformation=hd.PresentationLUTTransformation(
            presentation_lut_shape=(hd.PresentationLUTShapeValues.INVERSE
                                    if original.get("PhotometricInterpretation") == "MONOCHROME1"
                                    else hd.PresentationLUTShapeValues.IDENTITY)),
    )


def _annotation(entry: dict, original: Dataset, multi_frame: bool, uid_root: str,
                not_for_clinical_use: bool) -> hd.pr.GraphicAnnotation:
    """The marks of one result image (one frame): boxes and their labels, then the whole-image lines."""
    columns, rows = float(original.Columns), float(original.Rows)
    graphics: list[hd.pr.GraphicObject] = []
    texts: list[hd.pr.TextObject] = []
    lines: list[str] = []
    if entry["status"] == "NOT_ANALYSABLE":
        lines += [f"radstream: NOT ANALYSABLE: {flag}" for flag in entry["qc_flags"] or ["no reason given"]]
    for finding in entry["findings"]:
        caption = f"{finding['label']} {float(finding['confidence']):.2f}"
        if not finding.get("box"):
            lines.append(f"radstream: {caption} (whole image, rule {finding['rule_id']})")
            continue
        x1, y1, x2, y2 = _clip(finding["box"], columns, rows)
        tracking = {"tracking_id": _long_string(finding_key(entry, finding)),
                        "tracking_uid": finding_uid(entry, finding, uid_root)}
        graphics.append(hd.pr.GraphicObject(
            graphic_type=hd.pr.GraphicTypeValues.POLYLINE, units=hd.pr.AnnotationUnitsValues.PIXEL,
            graphic_data=np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2], [x1, y1]]), **tracking))
        texts.append(hd.pr.TextObject(
            text_value=caption, units=hd.pr.AnnotationUnitsValues.PIXEL, anchor_point=(x1, y1),
            anchor_point_visible=False, **tracking))
    if entry["status"] == "ANALYSED" and not entry["findings"]:
        lines.append("radstream: no finding")
    if not_for_clinical_use:
        lines.append(NOT_FOR_CLINICAL_USE)
    for i, line in enumerate(lines[:20]):  # stays inside the displayed area
        top = 0.01 + i * LINE
        texts.append(hd.pr.TextObject(
            text_value=line, units=hd.pr.AnnotationUnitsValues.DISPLAY, bounding_box=(0.01, top, 0.99, top + LINE),
            text_justification=hd.pr.TextJustificationValues.LEFT))
    return hd.pr.GraphicAnnotation(
        referenced_images=[original], graphic_layer=LAYER,
        referenced_frame_number=entry["frame"] + 1 if multi_frame else None,
        graphic_objects=graphics or None, text_objects=texts or None)


def _clip(box: list[float], columns: float, rows: float) -> tuple[float, float, float, float]:
    """The box inside the image: PIXEL graphic data must lie in 0..Columns, 0..Rows."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return (min(max(x1, 0.0), columns), min(max(y1, 0.0), rows), min(max(x2, 0.0), columns),
            min(max(y2, 0.0), rows))


def _models(result: dict) -> str:
    return ", ".join(f"{name} v{version}" for name, version in sorted(result["model_versions"].items()))


def _long_string(text: str) -> str:
    """LO holds 64 characters."""
    return text if len(text) <= 64 else text[:61] + "..."
