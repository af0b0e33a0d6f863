"""A final study result as one FHIR R4 transaction Bundle (pure: result + PatientContext -> JSON).

One DiagnosticReport (status final) and one Observation per finding and per not-analysable
image. Every entry is a conditional create (`request.ifNoneExist` on its identifier), so a
redelivered result creates nothing new, while a newer version (another idempotency key,
other identifiers) is a new report. Entries reference each other by `urn:uuid:` fullUrls
derived from those identifiers: the same result always gives the same Bundle.

The patient is not created: the EHR owns it. Subject is a conditional reference
(`Patient?identifier=<system>|<Patient ID>`), resolved by the server in the transaction.
The study is a logical reference by identifier (`urn:dicom:uid`, `urn:oid:<Study UID>`), so
no ImagingStudy has to exist on the server. Each resource is validated with fhir.resources'
R4B models (R4B leaves DiagnosticReport, Observation and Bundle as R4 has them), then the
whole Bundle.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any
from urllib.parse import quote

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.observation import Observation
from pydantic import ValidationError
from pydicom.sr.codedict import codes
from radstream.domain.dicom.patient import PatientContext
from radstream.domain.errors import PermanentError

RESULT_SYSTEM = "urn:radstream:result"  # DiagnosticReport.identifier: the result's idempotency key
FINDING_SYSTEM = "urn:radstream:finding"  # Observation.identifier: <key>/<finding id or image>
LOCAL = "urn:radstream:code"  # radstream's own codes (the HL7 edge's 99RADSTREAM)
RULE_SYSTEM = "urn:radstream:rule"  # a rule id as a Coding, its version as Coding.version
DICOM_UID = "urn:dicom:uid"
SCT, LOINC, UCUM, DCM = "http://snomed.info/sct", "http://loinc.org", "http://unitsofmeasure.org", \
    "http://dicom.nema.org/resources/ontology/DCM"
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
REPORT_CODE = {"system": LOINC, "code": "18748-4", "display": "Diagnostic imaging study"}
FINDING_CODES = {"nodule": {"system": SCT, "code": "27925004", "display": "Nodule"}}
NOT_ANALYSABLE = {"system": LOCAL, "code": "not-analysable", "display": "Image not analysable"}
UNUSABLE = {"system": DCM, "code": "111235", "display": "Unusable - Quality renders image unusable"}
NOT_FOR_CLINICAL_USE = "NOT FOR CLINICAL USE: demo models trained on synthetic phantoms"
GENDER = {"M": "male", "F": "female", "O": "other"}
_OID = re.compile(r"^[0-2](\.(0|[1-9]\d*))+$")


class FhirMappingError(PermanentError):
    """A result that cannot become a valid transaction Bundle (no Patient ID, or a resource R4 refuses)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, code="fhir_unmappable")


def patient_system(context: PatientContext, configured: str | None = None) -> str | None:
    """The Patient identifier's system: the configured one, else the Issuer of Patient ID when it is
    an OID (`urn:oid:`) or a URI; None matches the Patient ID under any system."""
    if configured:
        return configured
    issuer = context.issuer_of_patient_id
    if _OID.match(issuer):
        return f"urn:oid:{issuer}"
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:\S+$", issuer):
        return issuer
    return None


def transaction_bundle(result: dict[str, Any], context: PatientContext, not_for_clinical_use: bool = False,
                       patient_identifier_system: str | None = None) -> dict[str, Any]:
    """The result's transaction Bundle as JSON-ready data, every resource validated (R4B models)."""
    study = result["study_uid"]
    if not result.get("final"):
        raise FhirMappingError(f"study {study}: only a final result is sent to FHIR (this is an update)")
    if not context.patient_id:
        raise FhirMappingError(f"study {study}: the original instance has no Patient ID to reference the Patient by")
    key = result["idempotency_key"]
    system = patient_system(context, patient_identifier_system)
    subject = {"reference": "Patient?identifier=" + _token(system, context.patient_id),
               "identifier": {k: v for k, v in (("system", system), ("value", context.patient_id)) if v}}
    imaging_study = {"type": "ImagingStudy", "identifier": {"system": DICOM_UID, "value": f"urn:oid:{study}"}}
    effective = _effective(context, result)
    issued = _instant(result["created_at"])
    warning = [{"text": NOT_FOR_CLINICAL_USE}] if not_for_clinical_use else []
    common = {"status": "final", "subject": subject, "effectiveDateTime": effective, "issued": issued}

    observations: list[tuple[str, dict]] = []
    for image in result["images"]:
        derived = [imaging_study, _image_reference(image)]
        if image["status"] == "NOT_ANALYSABLE":
            ident = f"{key}/not-analysable/{image['sop_uid']}#{image['frame']}"
            observations.append((ident, {
                "resourceType": "Observation", **common, "identifier": [{"system": FINDING_SYSTEM, "value": ident}],
                "category": [_imaging()], "code": {"coding": [NOT_ANALYSABLE]},
                "valueCodeableConcept": {"coding": [UNUSABLE], "text": "; ".join(image["qc_flags"]) or "no reason given"},
                "bodySite": _body_site(image), "derivedFrom": derived, "note": warning or None}))
            continue
        for finding in image["findings"]:
            ident = f"{key}/{finding.get('finding_id') or finding['rule_id']}"
            observations.append((ident, {
                "resourceType": "Observation", **common, "identifier": [{"system": FINDING_SYSTEM, "value": ident}],
                "category": [_imaging()], "code": {"coding": [finding_coding(finding["label"])],
                                                  "text": finding["label"]},
                "bodySite": _body_site(image), "derivedFrom": derived,
                "device": {"display": _models(result)},
                "component": _finding_components(finding), "note": warning or None}))

    report = {
        "resourceType": "DiagnosticReport", **common, "identifier": [{"system": RESULT_SYSTEM, "value": key}],
        "category": [{"coding": [{"system": V2_0074, "code": "RAD", "display": "Radiology"}]}],
        "code": {"coding": [REPORT_CODE]}, "imagingStudy": [imaging_study],
        "result": [{"reference": _full_url(ident)} for ident, _ in observations],
        "conclusion": _conclusion(result, not_for_clinical_use),
    }
    if context.accession_number:
        report["basedOn"] = [{"type": "ServiceRequest", "identifier": {
            "type": {"coding": [{"system": V2_0203, "code": "ACSN"}]}, "value": context.accession_number}}]
    entries = [_entry(key, RESULT_SYSTEM, _valid(DiagnosticReport, report, study))]
    entries += [_entry(ident, FINDING_SYSTEM, _valid(Observation, obs, study)) for ident, obs in observations]
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    _valid(Bundle, bundle, study)
    return bundle


def finding_coding(label: str) -> dict[str, str]:
    return FINDING_CODES.get(label.lower(), {"system": LOCAL, "code": label, "display": label})


def identifier_query(system: str, value: str) -> str:
    """`identifier=<system>|<value>` as ifNoneExist and search take it (escaped, percent-encoded)."""
    return "identifier=" + _token(system, value)


# -- pieces ---------------------------------------------------------------------------------------
def _entry(ident: str, system: str, resource: dict) -> dict:
    return {"fullUrl": _full_url(ident), "resource": resource,
            "request": {"method": "POST", "url": resource["resourceType"], "ifNoneExist": identifier_query(system, ident)}}


def _full_url(ident: str) -> str:
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, 'radstream:' + ident)}"


def _finding_components(finding: dict) -> list[dict]:
    components = [{
        "code": {"coding": [{"system": DCM, "code": codes.DCM.Probability.value, "display": "Probability"}],
                 "text": "calibrated confidence"},
        "valueQuantity": {"value": round(float(finding["confidence"]), 6), "system": UCUM, "code": "1", "unit": "1"},
    }, {
        "code": {"coding": [{"system": LOCAL, "code": "rule", "display": "Decision rule that fired"}]},
        "valueCodeableConcept": {"coding": [{"system": RULE_SYSTEM, "code": finding["rule_id"],
                                             "version": finding["rule_version"]}],
                                 "text": f"rule {finding['rule_id']} version {finding['rule_version']}"},
    }]
    if finding.get("box"):
        x1, y1, x2, y2 = (float(v) for v in finding["box"])
        for name, low, high in (("box-columns", x1, x2), ("box-rows", y1, y2)):
            what = "columns" if name == "box-columns" else "rows"
            components.append({
                "code": {"coding": [{"system": LOCAL, "code": name,
                                     "display": f"Bounding box {what} (pixels of the original image)"}]},
                "valueRange": {"low": _pixels(low), "high": _pixels(high)}})
    return components


def _pixels(value: float) -> dict:
    return {"value": round(value, 3), "system": UCUM, "code": "{pixel}", "unit": "pixel"}


def _image_reference(image: dict) -> dict:
    """The image, as a logical reference by its SOP Instance UID (R4 has no instance-level ImagingStudy reference)."""
    frame = f", frame {image['frame'] + 1}" if image["frame"] else ""
    return {"type": "Media", "identifier": {"system": DICOM_UID, "value": f"urn:oid:{image['sop_uid']}"},
            "display": f"SOP Instance {image['sop_uid']}{frame}"}


def _body_site(image: dict) -> dict | None:
    """DICOM Body Part Examined as SNOMED CT where pydicom's code dictionary names it (CHEST -> Chest)."""
    part = (image.get("body_part") or "").strip()
    if not part:
        return None
    try:
        code = getattr(codes.SCT, part.title())
    except AttributeError:
        return {"text": part}
    return {"coding": [{"system": SCT, "code": code.value, "display": code.meaning}], "text": part}


def _imaging() -> dict:
    return {"coding": [{"system": OBSERVATION_CATEGORY, "code": "imaging", "display": "Imaging"}]}


def _models(result: dict) -> str:
    models = ", ".join(f"{name} v{version}" for name, version in sorted(result["model_versions"].items()))
    return f"radstream ({models or 'no models'}; config v{result['config_version']})"


def _conclusion(result: dict, not_for_clinical_use: bool) -> str:
    findings = sum(len(img["findings"]) for img in result["images"] if img["status"] != "NOT_ANALYSABLE")
    gated = sum(1 for img in result["images"] if img["status"] == "NOT_ANALYSABLE")
    text = (f"radstream AI: {findings} finding(s) on {len(result['images'])} image(s), {gated} not analysable; "
            f"{_models(result)}")
    return text + (f". {NOT_FOR_CLINICAL_USE}" if not_for_clinical_use else "")


def _instant(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _effective(context: PatientContext, result: dict) -> str:
    """The study's date and time (DICOM DA + TM, no zone known: a FHIR dateTime needs one with a time,
    so the date alone then), else the result's creation time."""
    date = context.study_date
    if re.fullmatch(r"\d{8}", date):
        return f"{date[:4]}-{date[4:6]}-{date[6:]}"
    return _instant(result["created_at"])


def _token(system: str | None, value: str) -> str:
    """A token search value: `system|value` with FHIR's escapes (\\ | , $), percent-encoded (`|` too)."""
    def esc(text: str) -> str:
        for ch in "\\|,$":
            text = text.replace(ch, "\\" + ch)
        return quote(text, safe="")
    return (esc(system) + "%7C" if system else "") + esc(value)


def _valid(model: Any, data: dict, study: str) -> dict:
    """`data` checked by its fhir.resources model; returned as given (None members dropped)."""
    data = {k: v for k, v in data.items() if v is not None}
    try:
        model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise FhirMappingError(f"study {study}: the {model.__name__} does not validate as FHIR R4: "
                               f"{where}: {first['msg']}") from None
    return data
