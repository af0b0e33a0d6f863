"""A study result as a DICOM Comprehensive 3D SR, TID 1500 "Imaging Measurement Report" (pure).

One measurement group per finding: the finding type as a code, the fused box as a closed
SCOORD POLYLINE on the referenced image (original-image pixel columns/rows, as the result
gives them), the calibrated probability (DCM 122157 "Probability", its method saying
"calibrated"), the rule id and version as the group's algorithm identification (TID 4019,
parameters: the thresholds that fired and the config version), and the contributing models
as qualitative evaluations. An image that failed QC gets a group that says "not analysable"
with each reason as text, and an analysed image without findings one that says "no finding".
The device observer names the pipeline and every model version.

The bus carries no patient identity (domain/dicom/metadata.py). Given the PatientContext
read back from an original instance (the export edges, `radstream sr` when the blob is
there), the SR carries the patient and study modules of its images, so a PACS files it
under the same patient and study (D-022); without one they stay empty (type 2).
The SR's SOP Instance UID is derived from the result's idempotency key (a redelivery
rebuilds the same instance; a newer version is a new one, naming the earlier SR in its
PredecessorDocumentsSequence), its Series Instance UID from the study: every version of a
study's SR is one series.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import highdicom as hd
import numpy as np
from highdicom.sr import CodedConcept
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import Comprehensive3DSRStorage
from radstream.domain.dicom.patient import PatientContext
from radstream.domain.dicom.uids import DEFAULT_UID_ROOT, derived_uid

# Local codes (PS3.16 8.2: a "99" prefix marks a private coding scheme).
SCHEME = "99RADSTREAM"
# The findings the rules may name, as standard codes; any other label becomes a local code.
FINDING_CODES: dict[str, CodedConcept] = {
    "nodule": CodedConcept("27925004", "SCT", "Nodule"),
}
# The SOP class of an image the result does not name (results before sop_class_uid was carried).
SOP_CLASS_BY_MODALITY = {
    "CR": "1.2.840.10008.5.1.4.1.1.1",  # Computed Radiography Image Storage
    "DX": "1.2.840.10008.5.1.4.1.1.1.1",  # Digital X-Ray Image Storage - For Presentation
}
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
CALIBRATED = CodedConcept("calibrated-probability", SCHEME, "Calibrated probability (manifest calibration)")
CONTRIBUTING_MODEL = CodedConcept("contributing-model", SCHEME, "Contributing model")
NOT_ANALYSABLE = CodedConcept("not-analysable", SCHEME, "Not analysable")
NO_FINDING = CodedConcept("no-finding", SCHEME, "No finding (no rule fired)")
NOT_FOR_CLINICAL_USE = "NOT FOR CLINICAL USE: demo models trained on synthetic phantoms"


class ReportError(ValueError):
    """A result that cannot become an SR (not final, no images, another study's patient)."""


@dataclass(frozen=True)
class Predecessor:
    """The earlier SR a newer version replaces, as its PredecessorDocumentsSequence names it."""

    sop_class_uid: str
    sop_instance_uid: str
    series_uid: str
    study_uid: str


def sr_reference(ds: Dataset) -> Predecessor:
    """The Predecessor that names a built (or stored) SR."""
    return Predecessor(str(ds.SOPClassUID), str(ds.SOPInstanceUID), str(ds.SeriesInstanceUID),
                       str(ds.StudyInstanceUID))


def earlier_sr(study_uid: str, idempotency_key: str, uid_root: str = DEFAULT_UID_ROOT) -> Predecessor:
    """The Predecessor of the SR built for an earlier result version, from its key alone (the UIDs are
    derived, so an export edge needs to remember only the key it sent last)."""
    return Predecessor(Comprehensive3DSRStorage, derived_uid("sr", idempotency_key, uid_root),
                       derived_uid("sr-series", study_uid, uid_root), study_uid)


def finding_code(label: str) -> CodedConcept:
    return FINDING_CODES.get(label.lower()) or CodedConcept(label, SCHEME, label)


def finding_key(image: dict, finding: dict) -> str:
    """What identifies a finding across versions: its finding_id (or, in older results, image, rule, box)."""
    return finding.get("finding_id") or f"{image['sop_uid']}/{finding['rule_id']}/{finding.get('box')}"


def finding_uid(image: dict, finding: dict, uid_root: str = DEFAULT_UID_ROOT) -> str:
    """The finding's Tracking UID: the SR's measurement group and the GSPS graphic of one finding share it."""
    return derived_uid("finding", finding_key(image, finding), uid_root)


def structured_report(result: dict[str, Any], not_for_clinical_use: bool = False, series_number: int = 9001, *,
                      context: PatientContext | None = None, uid_root: str = DEFAULT_UID_ROOT,
                      predecessor: Predecessor | None = None) -> hd.sr.Comprehensive3DSR:
    """The TID 1500 SR of one final StudyResult; `not_for_clinical_use` marks demo-model output,
    `context` the patient and study to file it under, `predecessor` the SR version it replaces."""
    if not result.get("final"):
        raise ReportError(f"study {result['study_uid']}: only a final result becomes an SR (this is an update)")
    if not result["images"]:
        raise ReportError(f"study {result['study_uid']}: the result has no images")
    if context is not None and context.study_uid != result["study_uid"]:
        raise ReportError(f"study {result['study_uid']}: the patient context is of study {context.study_uid}")
    if predecessor is not None and predecessor.study_uid != result["study_uid"]:
        raise ReportError(f"study {result['study_uid']}: the predecessor SR is of study {predecessor.study_uid}")
    warning = NOT_FOR_CLINICAL_USE if not_for_clinical_use else None
    groups: list[Any] = []
    for image in result["images"]:
        source = _source(image)
        if image["status"] == "NOT_ANALYSABLE":
            groups.append(_not_analysable_group(image, source, warning, uid_root))
            continue
        for finding in image["findings"]:
            groups.append(_finding_group(result, image, finding, source, warning, uid_root))
        if not image["findings"]:  # analysed and clear: said, so a reader knows the image was read
            groups.append(_no_finding_group(image, source, warning, uid_root))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=_device_observer(result, warning, uid_root)),
        procedure_reported=codes.SCT.ImagingProcedure,
        imaging_measurements=groups,
    )
    key = result["idempotency_key"]
    sr = hd.sr.Comprehensive3DSR(
        evidence=[_evidence(result, image, context) for image in result["images"]],
        content=report[0],
        series_instance_uid=derived_uid("sr-series", result["study_uid"], uid_root),
        series_number=series_number,
        sop_instance_uid=derived_uid("sr", key, uid_root),
        instance_number=1,
        previous_versions=[_predecessor(predecessor)] if predecessor else None,
        manufacturer="radstream",
        is_complete=True,
        series_description="radstream AI findings" + (" (NOT FOR CLINICAL USE)" if warning else ""),
    )
    created = dt.datetime.fromtimestamp(result["created_at"] / 1000, tz=dt.UTC)
    sr.ContentDate, sr.ContentTime = created.strftime("%Y%m%d"), created.strftime("%H%M%S.%f")
    sr.TimezoneOffsetFromUTC = "+0000"
    return sr


def _source(image: dict) -> dict[str, Any]:
    sop_class = image.get("sop_class_uid") or SOP_CLASS_BY_MODALITY.get(image.get("modality") or "", SECONDARY_CAPTURE)
    # DICOM frame numbers start at 1; frame 0 of a multi-frame image is frame 1 when the caller knows the
    # image has frames (`number_of_frames`, from the original header), else the whole single-frame image
    multi_frame = image["frame"] or (image.get("number_of_frames") or 1) > 1
    frames = [image["frame"] + 1] if multi_frame else None
    return {"sop_class": sop_class, "sop_uid": image["sop_uid"], "frames": frames}


def _evidence(result: dict, image: dict, context: PatientContext | None) -> Dataset:
    """What highdicom copies the study and patient modules from: the context's, or UIDs only."""
    ds = Dataset()
    (context or PatientContext(study_uid=result["study_uid"])).apply_to(ds)
    ds.SeriesInstanceUID = image["series_uid"]
    ds.SOPInstanceUID = image["sop_uid"]
    ds.SOPClassUID = _source(image)["sop_class"]
    return ds


def _predecessor(predecessor: Predecessor) -> Dataset:
    """What highdicom builds the PredecessorDocumentsSequence from."""
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = predecessor.sop_class_uid, predecessor.sop_instance_uid
    ds.SeriesInstanceUID, ds.StudyInstanceUID = predecessor.series_uid, predecessor.study_uid
    return ds


def _device_observer(result: dict, warning: str | None, uid_root: str) -> hd.sr.ObserverContext:
    models = ", ".join(f"{name} v{version}" for name, version in sorted(result["model_versions"].items()))
    return hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=derived_uid("device", result.get("site") or "", uid_root),
            name="radstream" + (" (not for clinical use)" if warning else ""),
            manufacturer_name="radstream",
            model_name=_long_string(f"{models}; config v{result['config_version']}"),
        ),
    )


def _finding_group(result: dict, image: dict, finding: dict, source: dict, warning: str | None,
                   uid_root: str) -> Any:
    thresholds = [f"{k} {v:g}" for k, v in sorted(finding["thresholds"].items())]
    algorithm = hd.sr.AlgorithmIdentification(
        name=_long_string(f"radstream rule {finding['rule_id']}"), version=finding["rule_version"],
        parameters=[_long_string(p) for p in (*thresholds, f"config_version {result['config_version']}")])
    probability = hd.sr.Measurement(
        name=codes.DCM.Probability, value=float(finding["confidence"]), unit=codes.UCUM.NoUnits,
        method=CALIBRATED)
    models = _contributing_models(image, finding)
    evaluations = [hd.sr.QualitativeEvaluation(
        CONTRIBUTING_MODEL,
        CodedConcept(name, SCHEME, _long_string(f"{name} v{result['model_versions'].get(name, '?')}")))
        for name in models]
    tracking = hd.sr.TrackingIdentifier(uid=finding_uid(image, finding, uid_root),
                                        identifier=_long_string(finding_key(image, finding)))
    common = {"tracking_identifier": tracking, "finding_type": finding_code(finding["label"]),
              "algorithm_id": algorithm, "measurements": [probability],
              "qualitative_evaluations": evaluations or None}
    if finding.get("box"):
        x1, y1, x2, y2 = (float(v) for v in finding["box"])
        region = hd.sr.ImageRegion(
            graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
            graphic_data=np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2], [x1, y1]]),
            source_image=hd.sr.SourceImageForRegion(source["sop_class"], source["sop_uid"], source["frames"]))
        group = hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(referenced_region=region, **common)
    else:  # a classifier rule: the finding is about the whole image
        group = hd.sr.MeasurementsAndQualitativeEvaluations(
            source_images=[hd.sr.SourceImageForMeasurementGroup(source["sop_class"], source["sop_uid"],
                                                                 source["frames"])], **common)
    inputs = "; ".join(f"{k} = {v:.4f}" for k, v in sorted(finding["inputs"].items()))
    _comment(group, f"rule {finding['rule_id']} v{finding['rule_version']} read: {inputs}")
    if warning:
        _comment(group, warning)
    return group


def _not_analysable_group(image: dict, source: dict, warning: str | None, uid_root: str) -> Any:
    tracking = hd.sr.TrackingIdentifier(
        uid=derived_uid("qc", f"{image['sop_uid']}/{image['frame']}", uid_root),
        identifier=f"not analysable: {image['sop_uid']}" + (f" frame {image['frame'] + 1}" if image["frame"] else ""))
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking, finding_type=NOT_ANALYSABLE,
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(codes.DCM.ImageQuality,
                                                             codes.DCM.UnusableQualityRendersImageUnusable)],
        source_images=[hd.sr.SourceImageForMeasurementGroup(source["sop_class"], source["sop_uid"], source["frames"])])
    for flag in image["qc_flags"] or ["no reason given"]:
        _comment(group, f"not analysable: {flag}")
    if warning:
        _comment(group, warning)
    return group


def _no_finding_group(image: dict, source: dict, warning: str | None, uid_root: str) -> Any:
    tracking = hd.sr.TrackingIdentifier(
        uid=derived_uid("no-finding", f"{image['sop_uid']}/{image['frame']}", uid_root),
        identifier=f"no finding: {image['sop_uid']}" + (f" frame {image['frame'] + 1}" if image["frame"] else ""))
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking, finding_type=NO_FINDING,
        source_images=[hd.sr.SourceImageForMeasurementGroup(source["sop_class"], source["sop_uid"], source["frames"])])
    if warning:
        _comment(group, warning)
    return group


def _contributing_models(image: dict, finding: dict) -> list[str]:
    """The detectors behind the finding's fused box, or the classifiers its rule read."""
    if finding.get("box"):
        for box in image["fused_boxes"]:
            if box["label"] == finding["label"] and list(box["box"]) == list(finding["box"]):
                return sorted({s["model"] for s in box["sources"]})
    return sorted({name.split("/")[0] for name in finding["inputs"] if "/" in name and not name.startswith("fused")})


def _comment(group: Any, text: str) -> None:
    """A TEXT "Comment" (DCM 121106) inside a measurement group's container."""
    group[0].ContentSequence.append(hd.sr.TextContentItem(
        name=codes.DCM.Comment, value=text[:1024], relationship_type=hd.sr.RelationshipTypeValues.CONTAINS))


def _long_string(text: str) -> str:
    """LO holds 64 characters."""
    return text if len(text) <= 64 else text[:61] + "..."


def made_by_demo_models(model_versions: dict[str, str], manifests: dict[str, Any]) -> bool:
    """True when any model behind the result is marked not for clinical use in its manifest, or is
    not in the registry at all (unknown provenance is treated the same way)."""
    return any(name not in manifests or manifests[name].not_for_clinical_use for name in model_versions)
