"""A study result as a DICOM Comprehensive 3D SR, TID 1500 "Imaging Measurement Report" (pure).

One measurement group per finding: the finding type as a code, the fused box as a closed
SCOORD POLYLINE on the referenced image (original-image pixel columns/rows, as the result
gives them), the calibrated probability (DCM 122157 "Probability", its method saying
"calibrated"), the rule id and version as the group's algorithm identification (TID 4019,
parameters: the thresholds that fired and the config version), and the contributing models
as qualitative evaluations. An image that failed QC gets a group that says "not analysable"
with each reason as text. The device observer names the pipeline and every model version.

The bus carries no patient identity (domain/dicom/metadata.py), so the patient and study
descriptors (name, ID, birth date, sex, accession number, study date) are left empty: the
PACS merges them from the study the SR references by its Study Instance UID (D-016).
UIDs of the SR itself are derived from the result's idempotency key, so building the SR
of one result twice gives the same instance.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import highdicom as hd
import numpy as np
from highdicom.sr import CodedConcept
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

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
NOT_FOR_CLINICAL_USE = "NOT FOR CLINICAL USE: demo models trained on synthetic phantoms"


class ReportError(ValueError):
    """A result that cannot become an SR (not final, or no images)."""


def finding_code(label: str) -> CodedConcept:
    return FINDING_CODES.get(label.lower()) or CodedConcept(label, SCHEME, label)


def structured_report(result: dict[str, Any], not_for_clinical_use: bool = False,
                      series_number: int = 9001) -> hd.sr.Comprehensive3DSR:
    """The TID 1500 SR of one final StudyResult; `not_for_clinical_use` marks demo-model output."""
    if not result.get("final"):
        raise ReportError(f"study {result['study_uid']}: only a final result becomes an SR (this is an update)")
    if not result["images"]:
        raise ReportError(f"study {result['study_uid']}: the result has no images")
    warning = NOT_FOR_CLINICAL_USE if not_for_clinical_use else None
    groups: list[Any] = []
    for image in result["images"]:
        source = _source(image)
        if image["status"] == "NOT_ANALYSABLE":
            groups.append(_not_analysable_group(image, source, warning))
            continue
        for finding in image["findings"]:
            groups.append(_finding_group(result, image, finding, source, warning))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=_device_observer(result, warning)),
        procedure_reported=codes.SCT.ImagingProcedure,
        imaging_measurements=groups or None,
    )
    key = result["idempotency_key"]
    sr = hd.sr.Comprehensive3DSR(
        evidence=[_evidence(result, image) for image in result["images"]],
        content=report[0],
        series_instance_uid=generate_uid(entropy_srcs=["radstream-sr-series", result["study_uid"]]),
        series_number=series_number,
        sop_instance_uid=generate_uid(entropy_srcs=["radstream-sr", key]),
        instance_number=1,
        manufacturer="radstream",
        is_complete=True,
        series_description="radstream AI findings" + (" (NOT FOR CLINICAL USE)" if warning else ""),
    )
    created = dt.datetime.fromtimestamp(result["created_at"] / 1000, tz=dt.timezone.utc)
    sr.ContentDate, sr.ContentTime = created.strftime("%Y%m%d"), created.strftime("%H%M%S.%f")
    sr.TimezoneOffsetFromUTC = "+0000"
    return sr


def _source(image: dict) -> dict[str, Any]:
    sop_class = image.get("sop_class_uid") or SOP_CLASS_BY_MODALITY.get(image.get("modality") or "", SECONDARY_CAPTURE)
    frames = [image["frame"] + 1] if image["frame"] else None  # DICOM frame numbers start at 1
    return {"sop_class": sop_class, "sop_uid": image["sop_uid"], "frames": frames}


def _evidence(result: dict, image: dict) -> Dataset:
    """What highdicom copies the study and patient modules from: UIDs only, identity empty."""
    ds = Dataset()
    ds.StudyInstanceUID = result["study_uid"]
    ds.SeriesInstanceUID = image["series_uid"]
    ds.SOPInstanceUID = image["sop_uid"]
    ds.SOPClassUID = _source(image)["sop_class"]
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyID",
                    "StudyDate", "StudyTime", "ReferringPhysicianName"):
        setattr(ds, keyword, None)
    return ds


def _device_observer(result: dict, warning: str | None) -> hd.sr.ObserverContext:
    models = ", ".join(f"{name} v{version}" for name, version in sorted(result["model_versions"].items()))
    return hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(entropy_srcs=["radstream-device", result.get("site") or ""]),
            name="radstream" + (" (not for clinical use)" if warning else ""),
            manufacturer_name="radstream",
            model_name=_long_string(f"{models}; config v{result['config_version']}"),
        ),
    )


def _finding_group(result: dict, image: dict, finding: dict, source: dict, warning: str | None) -> Any:
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
    finding_id = finding.get("finding_id") or f"{image['sop_uid']}/{finding['rule_id']}/{finding.get('box')}"
    tracking = hd.sr.TrackingIdentifier(uid=generate_uid(entropy_srcs=["radstream-finding", finding_id]),
                                        identifier=_long_string(finding_id))
    common = dict(tracking_identifier=tracking, finding_type=finding_code(finding["label"]), algorithm_id=algorithm,
                  measurements=[probability], qualitative_evaluations=evaluations or None)
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


def _not_analysable_group(image: dict, source: dict, warning: str | None) -> Any:
    tracking = hd.sr.TrackingIdentifier(
        uid=generate_uid(entropy_srcs=["radstream-qc", image["sop_uid"], str(image["frame"])]),
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
