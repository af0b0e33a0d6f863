"""The FHIR transaction Bundle, every resource validated with fhir.resources (R4B models), and the
HTTP shell against a small recording server (tests/fhir_server.py: no FHIR server package can be
installed here)."""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.observation import Observation
from radstream.domain.dicom.patient import PatientContext
from radstream.domain.errors import PermanentError, TransientError
from radstream.services.broker import free_port
from radstream.services.export.fhir import FhirExport, operation_outcome_text, shown_url
from radstream.services.export.fhir_bundle import (
    FhirMappingError,
    patient_system,
    transaction_bundle,
)
from radstream.streams.blobstore import FileBlobStore

from tests.fhir_server import REJECT_TEXT, start_fhir_server
from tests.unit.services.gateway.gateway_records import fused_box, study_result

CONTEXT = PatientContext(study_uid="1.2.826.0.1.3680043.10.1", patient_id="9RG1", issuer_of_patient_id="1.2.840.99",
                         study_date="20040826", accession_number="ACC42")


def _result(key: str = "res-v1") -> dict:
    result = study_result(boxes=[fused_box([10, 20, 110.5, 140], score=0.87)], sops=["1.2.3.1", "1.2.3.2"], key=key)
    result["images"][1].update(status="NOT_ANALYSABLE", qc_flags=["underexposed", "rotated"], findings=[],
                               fused_boxes=[], body_part="HAND")
    result["created_at"] = 1796300000000  # a redelivery carries the same record
    return result


def _component(observation, code: str):
    return next(c for c in observation.component if c.code.coding[0].code == code)


def test_the_bundle_validates_and_carries_report_and_observations() -> None:
    bundle = transaction_bundle(_result(), CONTEXT)
    assert Bundle.model_validate(bundle).type == "transaction"
    report_entry, finding_entry, gated_entry = bundle["entry"]
    report = DiagnosticReport.model_validate(report_entry["resource"])
    assert report.status == "final" and report.code.coding[0].code == "18748-4"
    assert (report.identifier[0].system, report.identifier[0].value) == ("urn:radstream:result", "res-v1")
    assert unquote(report.subject.reference) == "Patient?identifier=urn:oid:1.2.840.99|9RG1"
    assert report.imagingStudy[0].identifier.system == "urn:dicom:uid"
    assert report.imagingStudy[0].identifier.value == f"urn:oid:{CONTEXT.study_uid}"
    assert report.basedOn[0].identifier.value == "ACC42" and report.basedOn[0].identifier.type.coding[0].code == "ACSN"
    assert [r.reference for r in report.result] == [finding_entry["fullUrl"], gated_entry["fullUrl"]]
    assert str(report.effectiveDateTime) == "2004-08-26"
    assert "1 finding(s) on 2 image(s), 1 not analysable" in report.conclusion

    finding = Observation.model_validate(finding_entry["resource"])
    assert finding.code.coding[0].system == "http://snomed.info/sct" and finding.code.coding[0].code == "27925004"
    assert finding.bodySite.coding[0].code == "816094009" and finding.bodySite.text == "CHEST"
    assert float(_component(finding, "122157").valueQuantity.value) == 0.87
    rule = _component(finding, "rule").valueCodeableConcept.coding[0]
    assert (rule.code, rule.version) == ("nodule-detected", "1")
    columns, rows = _component(finding, "box-columns").valueRange, _component(finding, "box-rows").valueRange
    assert (float(columns.low.value), float(columns.high.value)) == (10.0, 110.5)
    assert (float(rows.low.value), float(rows.high.value)) == (20.0, 140.0)
    assert rows.low.code == "{pixel}"
    assert finding.derivedFrom[1].identifier.value == "urn:oid:1.2.3.1"
    assert "detector-a v1.0.0" in finding.device.display and finding.note is None

    gated = Observation.model_validate(gated_entry["resource"])
    assert gated.code.coding[0].code == "not-analysable" and gated.valueCodeableConcept.coding[0].code == "111235"
    assert gated.valueCodeableConcept.text == "underexposed; rotated"
    assert gated.bodySite.coding[0].code == "85562004", "HAND -> SNOMED CT Hand"


def test_every_entry_is_a_conditional_create_on_its_identifier() -> None:
    bundle = transaction_bundle(_result(), CONTEXT)
    for entry in bundle["entry"]:
        request, resource = entry["request"], entry["resource"]
        assert request["method"] == "POST" and request["url"] == resource["resourceType"]
        ident = resource["identifier"][0]
        query = unquote(request["ifNoneExist"])
        escaped = ident["value"].replace(",", "\\,")
        assert query == f"identifier={ident['system']}|{escaped}"
        assert entry["fullUrl"].startswith("urn:uuid:")


def test_redelivery_is_the_same_bundle_and_a_new_version_new_identifiers() -> None:
    first = transaction_bundle(_result("res-v1"), CONTEXT)
    assert transaction_bundle(_result("res-v1"), CONTEXT) == first
    newer = transaction_bundle(_result("res-v2"), CONTEXT)
    assert {e["fullUrl"] for e in newer["entry"]}.isdisjoint({e["fullUrl"] for e in first["entry"]})


def test_demo_models_are_said_not_for_clinical_use() -> None:
    bundle = transaction_bundle(_result(), CONTEXT, not_for_clinical_use=True)
    assert "NOT FOR CLINICAL USE" in bundle["entry"][0]["resource"]["conclusion"]
    for entry in bundle["entry"][1:]:
        assert entry["resource"]["note"] == [{"text": "NOT FOR CLINICAL USE: demo models trained on synthetic phantoms"}]


def test_patient_identifier_system() -> None:
    assert patient_system(CONTEXT) == "urn:oid:1.2.840.99"
    assert patient_system(PatientContext(study_uid="1", issuer_of_patient_id="https://mrn.example/h")) == \
        "https://mrn.example/h"
    plain = PatientContext(study_uid=CONTEXT.study_uid, patient_id="P|1", issuer_of_patient_id="HOSPITAL A")
    assert patient_system(plain) is None
    bundle = transaction_bundle(_result(), plain)
    assert unquote(bundle["entry"][0]["resource"]["subject"]["reference"]) == "Patient?identifier=P\\|1"
    assert patient_system(plain, "urn:oid:1.2.3") == "urn:oid:1.2.3"


def test_an_anonymous_original_or_an_update_is_not_sent() -> None:
    with pytest.raises(FhirMappingError, match="no Patient ID") as err:
        transaction_bundle(_result(), PatientContext(study_uid=CONTEXT.study_uid))
    assert err.value.code == "fhir_unmappable"
    with pytest.raises(FhirMappingError, match="only a final result"):
        transaction_bundle({**_result(), "final": False}, CONTEXT)


def test_a_value_r4_refuses_is_a_permanent_mapping_error() -> None:
    result = _result()
    result["images"][0]["findings"][0]["confidence"] = float("nan")
    with pytest.raises(FhirMappingError, match="does not validate as FHIR R4"):
        transaction_bundle(result, CONTEXT)


# -- the HTTP shell -------------------------------------------------------------------------------
@pytest.fixture
def server():
    running = start_fhir_server()
    yield running
    running.stop()


def _stage(tmp_path, url: str, token: str | None = "t0ken") -> FhirExport:
    return FhirExport(FileBlobStore(tmp_path), url, token=token, timeout_s=5)


def test_2xx_commits_and_a_redelivery_creates_nothing_new(tmp_path, server) -> None:
    stage = _stage(tmp_path, server.url)
    stage.send(_result(), CONTEXT)
    stage.send(_result(), CONTEXT)
    assert server.invalid == [] and len(server.requests) == 2
    assert server.requests[0]["bundle"] == server.requests[1]["bundle"]
    assert server.requests[0]["headers"]["Authorization"] == "Bearer t0ken"
    assert server.requests[0]["headers"]["Content-Type"] == "application/fhir+json"
    assert sorted(server.stored) == ["DiagnosticReport/1", "Observation/2", "Observation/3"]


def test_4xx_is_a_refusal_with_the_operation_outcome(tmp_path, server) -> None:
    server.answer = "reject"
    with pytest.raises(PermanentError) as err:
        _stage(tmp_path, server.url).send(_result(), CONTEXT)
    assert err.value.code == "fhir_rejected" and "HTTP 422" in err.value.reason and REJECT_TEXT in err.value.reason


def test_5xx_and_no_server_are_no_answer(tmp_path, server) -> None:
    server.answer = "down"
    with pytest.raises(TransientError, match="HTTP 503.*restarting") as err:
        _stage(tmp_path, server.url).send(_result(), CONTEXT)
    assert err.value.code == "fhir_no_answer"
    with pytest.raises(TransientError, match="did not answer"):
        _stage(tmp_path, f"http://127.0.0.1:{free_port()}/fhir").send(_result(), CONTEXT)


def test_messages_show_no_credentials() -> None:
    assert shown_url("https://user:secret@ehr.example:8443/fhir?_format=json") == "https://ehr.example:8443/fhir"
    assert operation_outcome_text(b"<html>Bad gateway</html>") == "<html>Bad gateway</html>"
    assert operation_outcome_text(b'{"resourceType": "OperationOutcome", "issue": [{"severity": "error", '
                                  b'"code": "invalid", "details": {"text": "bad subject"}}]}') == \
        "error invalid: bad subject"
