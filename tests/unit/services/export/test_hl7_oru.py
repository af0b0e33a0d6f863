"""The ORU^R01 mapping, checked by hl7apy's own STRICT parser and its 2.5.1 structure validation."""

from __future__ import annotations

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message
from radstream.domain.dicom.patient import PatientContext
from radstream.services.export.hl7_oru import (
    Hl7Parties,
    OruError,
    check_parties,
    message_control_id,
    oru_r01,
)

from tests.unit.services.gateway.gateway_records import fused_box, study_result

CONTEXT = PatientContext(
    study_uid="1.2.826.0.1.3680043.10.1", patient_name="O'Brien^Mary^Ann^Dr^Jr", patient_id="9RG1",
    issuer_of_patient_id="HOSP_A", birth_date="19400305", sex="F", study_date="20040826",
    study_time="185059.123456", accession_number="ACC42", referring_physician="Ward^Joe")


def _result(**kw) -> dict:
    result = study_result(boxes=[fused_box([10, 20, 110.5, 140], score=0.87), fused_box([300, 310, 340, 350])],
                          sops=["1.2.3.1", "1.2.3.2"], **kw)
    gated = result["images"][1]
    gated.update(status="NOT_ANALYSABLE", qc_flags=["underexposed", "rotated"], findings=[], fused_boxes=[])
    return result


def _parsed(er7: str):
    message = parse_message(er7, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
    assert message.validate() is True
    return message


def test_the_oru_validates_and_carries_the_patient_order_and_findings() -> None:
    result = _result()
    er7 = oru_r01(result, CONTEXT, Hl7Parties(sending_facility="RAD_A", receiving_application="RIS",
                                              receiving_facility="HOSP"))
    message = _parsed(er7)
    msh = message.msh
    assert msh.msh_9.to_er7() == "ORU^R01^ORU_R01" and msh.msh_12.to_er7() == "2.5.1"
    assert (msh.msh_3.to_er7(), msh.msh_4.to_er7(), msh.msh_5.to_er7(), msh.msh_6.to_er7()) == \
        ("RADSTREAM", "RAD_A", "RIS", "HOSP")
    assert msh.msh_10.to_er7() == message_control_id(result)

    patient_result = message.oru_r01_patient_result
    pid = patient_result.oru_r01_patient.pid
    assert pid.pid_3.to_er7() == "9RG1^^^HOSP_A^MR"
    assert pid.pid_5.to_er7() == "O'Brien^Mary^Ann^Jr^Dr", "DICOM Family^Given^Middle^Prefix^Suffix -> XPN order"
    assert (pid.pid_7.to_er7(), pid.pid_8.to_er7()) == ("19400305", "F")

    order = patient_result.oru_r01_order_observation
    obr = order.obr
    assert obr.obr_2.to_er7() == "ACC42" and obr.obr_18.to_er7() == "ACC42" and order.orc.orc_2.to_er7() == "ACC42"
    assert obr.obr_3.to_er7() == f"{CONTEXT.study_uid}^RADSTREAM" == order.orc.orc_3.to_er7()
    assert obr.obr_7.to_er7() == "20040826185059.1234", "the study date and time, fraction cut to 4 digits"
    assert obr.obr_16.to_er7() == "^Ward^Joe" and obr.obr_25.to_er7() == "F"
    assert not [s for s in order.children if s.name == "NTE"], "real models: no warning"

    obx = [group.obx for group in order.oru_r01_observation]
    assert [o.obx_2.to_er7() for o in obx] == ["TX", "NM", "NM", "TX"]
    summary, first, second, gated = obx
    assert summary.obx_3.to_er7().startswith("18782-3^")
    assert "2 finding(s) on 2 image(s), 1 not analysable" in summary.obx_5.to_er7()
    assert "detector-a v1.0.0, detector-b v2.1.0" in summary.obx_5.to_er7()
    assert first.obx_3.to_er7() == "27925004^Nodule^SCT"
    assert (first.obx_4.to_er7(), first.obx_5.to_er7(), second.obx_4.to_er7()) == ("1", "0.8700", "2")
    assert first.obx_6.to_er7().startswith("1^") and first.obx_6.to_er7().endswith("^UCUM")
    assert first.obx_17.to_er7() == "nodule-detected^rule nodule-detected version 1^99RADSTREAM"
    box_note = order.oru_r01_observation[1].nte.nte_3.to_er7()
    assert "10,20,110.5,140" in box_note and "image 1.2.3.1" in box_note
    assert gated.obx_3.to_er7() == "not-analysable^Image not analysable^99RADSTREAM"
    assert gated.obx_5.to_er7() == "not analysable: underexposed; rotated (image 1.2.3.2)"
    assert [o.obx_1.to_er7() for o in obx] == ["1", "2", "3", "4"]


def test_demo_models_add_a_not_for_clinical_use_note_under_obr() -> None:
    order = _parsed(oru_r01(_result(), CONTEXT, not_for_clinical_use=True)) \
        .oru_r01_patient_result.oru_r01_order_observation
    notes = [s.nte_3.to_er7() for s in order.children if s.name == "NTE"]
    assert notes == ["NOT FOR CLINICAL USE: demo models trained on synthetic phantoms"]


def test_redelivery_is_the_same_message_and_a_new_version_another_control_id() -> None:
    result = _result(key="res-v1")
    assert oru_r01(result, CONTEXT) == oru_r01(dict(result), CONTEXT)
    newer = {**result, "idempotency_key": "res-v2"}
    assert message_control_id(newer) != message_control_id(result)
    assert len(message_control_id(result)) == 20


def test_delimiters_in_values_are_escaped_not_structure() -> None:
    context = PatientContext(study_uid=CONTEXT.study_uid, patient_id="ID|1^x", patient_name="Smith&Jones^Ann~B")
    result = _result()
    result["images"][1]["qc_flags"] = ["cropped | left^edge"]
    message = _parsed(oru_r01(result, context))
    pid = message.oru_r01_patient_result.oru_r01_patient.pid
    assert pid.pid_3.cx_1.to_er7() == r"ID\F\1\S\x"
    assert pid.pid_5.xpn_1.to_er7() == r"Smith\T\Jones" and pid.pid_5.xpn_2.to_er7() == r"Ann\R\B"
    gated = message.oru_r01_patient_result.oru_r01_order_observation.oru_r01_observation[-1].obx
    assert r"cropped \F\ left\S\edge" in gated.obx_5.to_er7()


def test_non_ascii_names_travel_as_utf_8() -> None:
    context = PatientContext(study_uid=CONTEXT.study_uid, patient_id="P1", patient_name="Müller^Zoë=山田^太郎")
    er7 = oru_r01(_result(), context)
    assert _parsed(er7).msh.msh_18.to_er7() == "UNICODE UTF-8"
    assert _parsed(er7).oru_r01_patient_result.oru_r01_patient.pid.pid_5.to_er7() == "Müller^Zoë", \
        "the alphabetic group of the PN"


def test_an_anonymous_original_cannot_be_filed() -> None:
    with pytest.raises(OruError, match="no Patient ID") as err:
        oru_r01(_result(), PatientContext(study_uid=CONTEXT.study_uid))
    assert err.value.code == "hl7_unmappable" and not err.value.transient


def test_only_final_results_become_an_oru() -> None:
    with pytest.raises(OruError, match="only a final result"):
        oru_r01({**_result(), "final": False}, CONTEXT)


def test_unknown_sex_and_missing_study_time_have_defined_values() -> None:
    context = PatientContext(study_uid=CONTEXT.study_uid, patient_id="P1", sex="", study_date="")
    result = _result()
    message = _parsed(oru_r01(result, context))
    pid = message.oru_r01_patient_result.oru_r01_patient.pid
    assert pid.pid_8.to_er7() == "U" and pid.pid_5.to_er7() == "^^^^^^U"
    obr = message.oru_r01_patient_result.oru_r01_order_observation.obr
    assert obr.obr_7.to_er7() == message.msh.msh_7.to_er7(), "no study date: the result's own time"
    assert obr.obr_2.to_er7() == "", "no accession number, no placer order number"


def test_parties_that_2_5_1_refuses_fail_at_start_up() -> None:
    check_parties(Hl7Parties(sending_facility="RAD_A"))
    with pytest.raises(OruError, match="max length"):
        check_parties(Hl7Parties(sending_application="X" * 300))
