"""A final study result as one HL7 v2.5.1 ORU^R01 message (pure: result + PatientContext -> ER7).

The message is built with hl7apy, element by element (hl7apy escapes the delimiters in
every value), then parsed back with hl7apy's STRICT validation and validated against the
2.5.1 ORU_R01 structure: what leaves here is a message a 2.5.1 receiver's parser accepts.

Layout (docs/integration.md has the table, result field -> segment and field):
- MSH: the sending and receiving application and facility, MSH-7 the result's creation
  time, MSH-10 a control id derived from the result's idempotency key (a redelivery sends
  the same id, so the receiver can drop the copy), MSH-18 UNICODE UTF-8.
- PID from the original instance: PID-3 Patient ID with its issuer as assigning authority,
  PID-5 name (DICOM PN order mapped to XPN order), PID-7 birth date, PID-8 sex.
- ORC/OBR: the accession number as placer order number (ORC-2, OBR-2) and OBR-18 (where
  IHE radiology carries it), the Study Instance UID as filler order number (ORC-3, OBR-3),
  OBR-7 the study date and time, OBR-16 the referring physician, OBR-25 "F".
- OBX 1 (TX, LOINC 18782-3): a one-line summary with the model versions.
- one OBX per finding: OBX-2 NM, OBX-3 the finding's code (SNOMED CT where radstream has
  one, else the label under the local 99RADSTREAM system), OBX-4 the finding's number,
  OBX-5 the calibrated confidence (UCUM "1"), OBX-17 the rule id and version; an NTE under
  it gives the box in pixels of the original image and the image's SOP Instance UID.
- one OBX per not-analysable image: OBX-2 TX, OBX-3 99RADSTREAM "not-analysable", OBX-5
  the reasons and the image.
- NTE under OBR: "not for clinical use" when demo models made the result.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from typing import Any

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Field, Message
from hl7apy.exceptions import HL7apyException
from hl7apy.factories import datatype_factory
from hl7apy.parser import parse_message
from radstream.domain.dicom.patient import PatientContext
from radstream.domain.errors import PermanentError

VERSION = "2.5.1"
LOCAL = "99RADSTREAM"  # a local coding system (HL7 table 0396: 99zzz)
SERVICE = ("18748-4", "Diagnostic imaging study", "LN")  # OBR-4
SUMMARY = ("18782-3", "Radiology Study observation (narrative)", "LN")
NOT_ANALYSABLE = ("not-analysable", "Image not analysable", LOCAL)
# The labels radstream has a standard code for (as in the SR, services/structured_report.py).
FINDING_CODES = {"nodule": ("27925004", "Nodule", "SCT")}
NOT_FOR_CLINICAL_USE = "NOT FOR CLINICAL USE: demo models trained on synthetic phantoms"
SEX = {"M": "M", "F": "F", "O": "O"}  # DICOM Patient's Sex -> HL7 table 0001; anything else is U
_BUILD = VALIDATION_LEVEL.TOLERANT  # built tolerant (OBX-5 "varies" takes a datatype), then checked STRICT
_DTM = re.compile(r"^\d{4}(\d{2}(\d{2}(\d{2}(\d{2}(\d{2}(\.\d{1,4})?)?)?)?)?)?([+-]\d{4})?$")


class OruError(PermanentError):
    """A result that cannot become a valid ORU^R01 (no Patient ID, or a value 2.5.1 refuses)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, code="hl7_unmappable")


@dataclass(frozen=True)
class Hl7Parties:
    """MSH-3 to MSH-6: who sends, who receives."""

    sending_application: str = "RADSTREAM"
    sending_facility: str = ""
    receiving_application: str = ""
    receiving_facility: str = ""


def message_control_id(result: dict[str, Any]) -> str:
    """MSH-10 (ST, 20 characters in 2.5.1): the same for every delivery of one result version."""
    return hashlib.sha256(result["idempotency_key"].encode()).hexdigest()[:20]


def oru_r01(result: dict[str, Any], context: PatientContext, parties: Hl7Parties | None = None,
            not_for_clinical_use: bool = False) -> str:
    """The ER7 text of the result's ORU^R01, segments separated by CR, validated against 2.5.1."""
    if not result.get("final"):
        raise OruError(f"study {result['study_uid']}: only a final result is sent as an ORU (this is an update)")
    if not context.patient_id:
        raise OruError(f"study {result['study_uid']}: the original instance has no Patient ID, "
                       "and an ORU cannot be filed without PID-3")
    try:
        er7 = _build(result, context, parties or Hl7Parties(), not_for_clinical_use)
    except HL7apyException as exc:  # a value hl7apy cannot even hold (the STRICT check comes after)
        raise OruError(f"study {result['study_uid']}: cannot build the ORU^R01: {exc}") from None
    return _validated(er7, result["study_uid"])


def _build(result: dict[str, Any], context: PatientContext, parties: Hl7Parties, not_for_clinical_use: bool) -> str:
    msg = Message("ORU_R01", version=VERSION, validation_level=_BUILD)
    _msh(msg, result, parties)
    patient_result = msg.add_group("ORU_R01_PATIENT_RESULT")
    _pid(patient_result.add_group("ORU_R01_PATIENT").pid, context)
    order = patient_result.add_group("ORU_R01_ORDER_OBSERVATION")
    observed = _observation_time(context, result)
    _orc(order.orc, context, parties)
    _obr(order.obr, context, parties, observed, _created(result))
    if not_for_clinical_use:
        _nte(order.add_segment("NTE"), 1, NOT_FOR_CLINICAL_USE)
    set_id = 1
    _obx(order, set_id, "TX", SUMMARY, _summary(result, not_for_clinical_use), observed)
    number = 0
    for image in result["images"]:
        if image["status"] == "NOT_ANALYSABLE":
            set_id += 1
            reasons = "; ".join(image["qc_flags"]) or "no reason given"
            _obx(order, set_id, "TX", NOT_ANALYSABLE, f"not analysable: {reasons} (image {_image(image)})", observed)
            continue
        for finding in image["findings"]:
            set_id += 1
            number += 1
            obx = _obx(order, set_id, "NM", finding_code(finding["label"]), f"{float(finding['confidence']):.4f}",
                       observed, sub_id=str(number), units=("1", "probability (calibrated)", "UCUM"))
            _put(obx.obx_17.ce_1, finding["rule_id"])
            _put(obx.obx_17.ce_2, f"rule {finding['rule_id']} version {finding['rule_version']}"[:199])
            _put(obx.obx_17.ce_3, LOCAL)
            _nte(obx.parent.add_segment("NTE"), 1, _where(image, finding))
    return msg.to_er7()


def check_parties(parties: Hl7Parties) -> None:
    """Fail at start-up, not once per result, when MSH-3 to MSH-6 would not validate."""
    probe = {"idempotency_key": "probe", "study_uid": "1.2.3", "site": "", "final": True, "images": [],
             "model_versions": {}, "config_version": 0, "created_at": 0}
    try:
        oru_r01(probe, PatientContext(study_uid="1.2.3", patient_id="probe"), parties)
    except OruError as exc:
        raise OruError(f"the MSH parties do not validate: {exc.reason.split(': ', 1)[-1]}") from None


def finding_code(label: str) -> tuple[str, str, str]:
    """OBX-3 of a finding: its standard code where radstream has one, else the label as a local code."""
    return FINDING_CODES.get(label.lower(), (label[:20], label[:199], LOCAL))


# -- segments ---------------------------------------------------------------------------------------
def _msh(msg: Message, result: dict, parties: Hl7Parties) -> None:
    msh = msg.msh
    _put(msh.msh_3.hd_1, parties.sending_application)
    if parties.sending_facility or result.get("site"):
        _put(msh.msh_4.hd_1, parties.sending_facility or result["site"])
    if parties.receiving_application:
        _put(msh.msh_5.hd_1, parties.receiving_application)
    if parties.receiving_facility:
        _put(msh.msh_6.hd_1, parties.receiving_facility)
    _put(msh.msh_7.ts_1, _created(result))
    msh.msh_9 = "ORU^R01^ORU_R01"
    _put(msh.msh_10, message_control_id(result))
    msh.msh_11 = "P"
    msh.msh_12 = VERSION
    _put(msh.msh_18, "UNICODE UTF-8")


def _pid(pid: Any, context: PatientContext) -> None:
    pid.pid_1 = "1"
    _put(pid.pid_3.cx_1, context.patient_id)
    if context.issuer_of_patient_id:
        _put(pid.pid_3.cx_4.hd_1, context.issuer_of_patient_id)
    _put(pid.pid_3.cx_5, "MR")
    family, given, middle, prefix, suffix = _person_name(context.patient_name)
    if not any((family, given, middle, prefix, suffix)):
        _put(pid.pid_5.xpn_7, "U")  # unspecified: PID-5 is required, the original has no name
    else:
        _xpn(pid.pid_5, family, given, middle, suffix, prefix)
    if re.fullmatch(r"\d{8}", context.birth_date):
        _put(pid.pid_7.ts_1, context.birth_date)
    _put(pid.pid_8, SEX.get(context.sex.upper(), "U"))


def _orc(orc: Any, context: PatientContext, parties: Hl7Parties) -> None:
    orc.orc_1 = "RE"  # observations to follow
    _order_numbers(orc.orc_2, orc.orc_3, context, parties)
    orc.orc_5 = "CM"  # order status: completed
    if context.referring_physician:
        _xcn(orc.orc_12, context.referring_physician)


def _obr(obr: Any, context: PatientContext, parties: Hl7Parties, observed: str, reported: str) -> None:
    obr.obr_1 = "1"
    _order_numbers(obr.obr_2, obr.obr_3, context, parties)
    _ce(obr.obr_4, SERVICE)
    _put(obr.obr_7.ts_1, observed)
    if context.referring_physician:
        _xcn(obr.obr_16, context.referring_physician)
    if context.accession_number:
        _put(obr.obr_18, context.accession_number)
    _put(obr.obr_22.ts_1, reported)
    obr.obr_24 = "RAD"
    obr.obr_25 = "F"


def _order_numbers(placer: Any, filler: Any, context: PatientContext, parties: Hl7Parties) -> None:
    """Placer: the accession number (the order the RIS knows); filler: the Study Instance UID."""
    if context.accession_number:
        _put(placer.ei_1, context.accession_number)
    _put(filler.ei_1, context.study_uid)
    _put(filler.ei_2, parties.sending_application[:20])


def _obx(order: Any, set_id: int, value_type: str, code: tuple[str, str, str], value: str, observed: str,
         sub_id: str = "", units: tuple[str, str, str] | None = None) -> Any:
    obx = order.add_group("ORU_R01_OBSERVATION").obx
    obx.obx_1 = str(set_id)
    obx.obx_2 = value_type
    _ce(obx.obx_3, code)
    if sub_id:
        _put(obx.obx_4, sub_id)
    field = Field("OBX_5", datatype=value_type, version=VERSION, validation_level=_BUILD)
    field.value = datatype_factory(value_type, value, version=VERSION, validation_level=_BUILD)
    obx.obx_5 = field
    if units:
        _ce(obx.obx_6, units)
    obx.obx_11 = "F"
    _put(obx.obx_14.ts_1, observed)
    return obx


def _nte(nte: Any, set_id: int, text: str) -> None:
    nte.nte_1 = str(set_id)
    nte.nte_2 = "L"  # source: ancillary (filler) department
    _put(nte.nte_3, text)


# -- values ---------------------------------------------------------------------------------------
def _summary(result: dict, not_for_clinical_use: bool) -> str:
    findings = sum(len(img["findings"]) for img in result["images"] if img["status"] != "NOT_ANALYSABLE")
    gated = sum(1 for img in result["images"] if img["status"] == "NOT_ANALYSABLE")
    models = ", ".join(f"{name} v{version}" for name, version in sorted(result["model_versions"].items()))
    text = (f"radstream AI: {findings} finding(s) on {len(result['images'])} image(s), {gated} not analysable; "
            f"models {models or 'none'}; config v{result['config_version']}")
    return text + (f". {NOT_FOR_CLINICAL_USE}" if not_for_clinical_use else "")


def _where(image: dict, finding: dict) -> str:
    """The finding's place: its box in pixels of the original image (x1,y1,x2,y2), or the whole image."""
    if finding.get("box"):
        x1, y1, x2, y2 = (float(v) for v in finding["box"])
        place = f"box (pixels, x1,y1,x2,y2 of the original image): {x1:g},{y1:g},{x2:g},{y2:g}"
    else:
        place = "whole image (a classifier finding)"
    return f"{place}; image {_image(image)}; finding {finding.get('finding_id') or finding['rule_id']}"


def _image(image: dict) -> str:
    return image["sop_uid"] + (f" frame {image['frame'] + 1}" if image["frame"] else "")


def _created(result: dict) -> str:
    created = dt.datetime.fromtimestamp(result["created_at"] / 1000, tz=dt.UTC)
    return created.strftime("%Y%m%d%H%M%S+0000")


def _observation_time(context: PatientContext, result: dict) -> str:
    """OBR-7: the study's date and time (DICOM DA + TM, fraction to 4 digits), else the result's time."""
    time = context.study_time.replace(":", "")
    whole, _, fraction = time.partition(".")
    value = context.study_date + whole + (f".{fraction[:4]}" if fraction and len(whole) == 6 else "")
    return value if context.study_date and _DTM.match(value) else _created(result)


def _person_name(pn: str) -> tuple[str, str, str, str, str]:
    """DICOM PN (alphabetic group): Family^Given^Middle^Prefix^Suffix."""
    parts = (pn.split("=")[0].split("^") + [""] * 5)[:5]
    return parts[0], parts[1], parts[2], parts[3], parts[4]


def _xpn(field: Any, family: str, given: str, middle: str, suffix: str, prefix: str) -> None:
    """XPN order: family^given^further given^suffix^prefix."""
    for component, value in (("xpn_2", given), ("xpn_3", middle), ("xpn_4", suffix), ("xpn_5", prefix)):
        if value:
            _put(getattr(field, component), value)
    if family:
        _put(field.xpn_1.fn_1, family)


def _xcn(field: Any, pn: str) -> None:
    family, given, middle, prefix, suffix = _person_name(pn)
    for component, value in (("xcn_3", given), ("xcn_4", middle), ("xcn_5", suffix), ("xcn_6", prefix)):
        if value:
            _put(getattr(field, component), value)
    if family:
        _put(field.xcn_2.fn_1, family)


def _ce(field: Any, code: tuple[str, str, str]) -> None:
    for component, value in zip(("ce_1", "ce_2", "ce_3"), code):
        _put(getattr(field, component), value)


def _put(element: Any, value: str) -> None:
    """One leaf (a field or a component) from plain text, as its own datatype: hl7apy escapes it."""
    element.value = datatype_factory(element.datatype, value, version=VERSION, validation_level=_BUILD)


def _validated(er7: str, study_uid: str) -> str:
    """Parse the message back STRICT and validate it against the 2.5.1 ORU_R01 structure."""
    try:
        parse_message(er7, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True).validate()
    except HL7apyException as exc:
        raise OruError(f"study {study_uid}: the ORU^R01 does not validate against HL7 {VERSION}: {exc}") from None
    return er7
