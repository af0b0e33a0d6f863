"""The DICOM SR (TID 1500) of a study result: built from a result that went through the real fuse and
qc code and the Avro codec, written, read back by pydicom, highdicom and (when installed) dcmtk."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes

from radstream.services.structured_report import (
    NOT_FOR_CLINICAL_USE,
    ReportError,
    made_by_demo_models,
    structured_report,
)
from radstream.streams.codec import Codec
from radstream.domain.thresholds import ThresholdBook
from radstream.domain.rules import default_rules
from radstream.streams.stage import Inbound
from radstream.streams.stages.fuse import ExpectedModel, FuseStage
from radstream.streams.stages.qc import QcStage
from radstream.streams.state import MemoryStore
from tests.factories import inference_result

STUDY = "1.2.826.0.1.3680043.10.543.7"
CHEST, HAND = STUDY + ".1.1", STUDY + ".1.2"
DX_CLASS = "1.2.840.10008.5.1.4.1.1.1.1"
NODULE_A = {"label": "nodule", "score": 0.92, "box": [100.0, 120.0, 160.0, 190.0]}
NODULE_B = {"label": "nodule", "score": 0.88, "box": [102.0, 118.0, 158.0, 192.0]}


@pytest.fixture(scope="module")
def result() -> dict:
    """A final two-image study: a chest DX with a box two detectors agree on and a classifier finding,
    and a hand radiograph that qc gates; through fuse, qc and the StudyResult Avro round trip."""
    fuse = FuseStage([ExpectedModel("det-a", "detector"), ExpectedModel("det-b", "detector"),
                      ExpectedModel("cls", "classifier")],
                     default_rules({"det-a": {"nodule": 0.5}, "det-b": {"nodule": 0.5}}, {"cls": {"nodule": 0.5}}),
                     config=ThresholdBook(), state=MemoryStore())
    qc = QcStage(quiet_period_s=10.0, config=ThresholdBook(), state=MemoryStore())
    outputs = []
    for sop, meta in ((CHEST, {"modality": "DX", "sop_class_uid": DX_CLASS, "rows": 512, "columns": 512}),
                      (HAND, {"body_part": "HAND", "laterality": "L"})):
        for model, task, extra in (("det-a", "detector", {"detections": [NODULE_A]}),
                                   ("det-b", "detector", {"detections": [NODULE_B]}),
                                   ("cls", "classifier", {"classifications": {"nodule": 0.81}})):
            event = inference_result(model, task, sop=sop, study=STUDY, expected_instances=2, **extra)
            event["model"]["version"] = {"det-a": "3", "det-b": "1.2", "cls": "7"}[model]
            event["metadata"].update(meta)
            for fused in fuse.process(Inbound(event)):
                outputs += qc.process(Inbound(fused.value))
    final = outputs[-1].value
    assert final["final"] and final["completion"] == "expected_count_reached"
    codec = Codec()
    return codec.decode(codec.encode("StudyResult", final), expect="StudyResult")[1]


@pytest.fixture(scope="module")
def sr_file(result: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sr") / "study.dcm"
    structured_report(result, not_for_clinical_use=True).save_as(path, enforce_file_format=True)
    return path


def _items(node, out: list | None = None) -> list:
    """Every content item under `node`, depth first."""
    out = [] if out is None else out
    for item in getattr(node, "ContentSequence", []):
        out.append(item)
        _items(item, out)
    return out


def _name(item) -> str:
    return item.ConceptNameCodeSequence[0].CodeMeaning


def _groups(ds) -> list:
    return [i for i in _items(ds) if i.ValueType == "CONTAINER" and _name(i) == "Measurement Group"]


def test_the_sr_references_the_study_and_leaves_patient_identity_empty(result: dict, sr_file: Path) -> None:
    ds = pydicom.dcmread(sr_file)
    assert ds.SOPClassUID == pydicom.uid.Comprehensive3DSRStorage and ds.Modality == "SR"
    assert ds.StudyInstanceUID == STUDY
    assert ds.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    assert all(ds[k].value in (None, "") for k in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex",
                                                     "AccessionNumber"))
    evidence = ds.CurrentRequestedProcedureEvidenceSequence[0]
    assert evidence.StudyInstanceUID == STUDY
    refs = {(s.SeriesInstanceUID, r.ReferencedSOPInstanceUID, r.ReferencedSOPClassUID)
            for s in evidence.ReferencedSeriesSequence for r in s.ReferencedSOPSequence}
    series = result["images"][0]["series_uid"]
    # the DX image's own SOP class (carried in the result); the CR one falls back to the modality's class
    assert refs == {(series, CHEST, DX_CLASS), (series, HAND, "1.2.840.10008.5.1.4.1.1.1")}
    assert "NOT FOR CLINICAL USE" in ds.SeriesDescription


def test_each_finding_is_a_group_with_code_box_probability_rule_and_models(result: dict, sr_file: Path) -> None:
    ds = pydicom.dcmread(sr_file)
    chest = next(img for img in result["images"] if img["sop_uid"] == CHEST)
    assert sorted(f["rule_id"] for f in chest["findings"]) == ["nodule-detected", "nodule-suspected"]
    groups = [_items(g) for g in _groups(ds)]
    assert len(groups) == 3  # two findings and one not-analysable image
    by_rule = {}
    for items in groups:
        names = [i.TextValue for i in items if i.ValueType == "TEXT" and _name(i) == "Algorithm Name"]
        if names:
            by_rule[names[0].removeprefix("radstream rule ")] = items
    assert set(by_rule) == {"nodule-detected", "nodule-suspected"}
    for rule_id, items in by_rule.items():
        finding = next(f for f in chest["findings"] if f["rule_id"] == rule_id)
        coded = {_name(i): i.ConceptCodeSequence[0] for i in items if i.ValueType == "CODE"}
        assert (coded["Finding"].CodeValue, coded["Finding"].CodingSchemeDesignator) == ("27925004", "SCT")
        (prob,) = [i for i in items if i.ValueType == "NUM" and _name(i) == "Probability"]
        assert float(prob.MeasuredValueSequence[0].NumericValue) == pytest.approx(finding["confidence"], abs=1e-6)
        (method,) = [i for i in _items(prob) if _name(i) == "Measurement Method"]
        assert method.ConceptCodeSequence[0].CodeMeaning.startswith("Calibrated probability")
        texts = {_name(i): i.TextValue for i in items if i.ValueType == "TEXT"}
        assert texts["Algorithm Version"] == finding["rule_version"]
        assert texts["Tracking Identifier"] == finding["finding_id"]
        params = [i.TextValue for i in items if i.ValueType == "TEXT" and _name(i) == "Algorithm Parameters"]
        assert f"config_version {result['config_version']}" in params
        assert any(p.startswith(next(iter(finding["thresholds"]))) for p in params)
        comments = [i.TextValue for i in items if i.ValueType == "TEXT" and _name(i) == "Comment"]
        assert NOT_FOR_CLINICAL_USE in comments
        models = sorted(i.ConceptCodeSequence[0].CodeMeaning for i in items
                        if i.ValueType == "CODE" and _name(i) == "Contributing model")
        scoords = [i for i in items if i.ValueType == "SCOORD"]
        if rule_id == "nodule-detected":
            assert models == ["det-a v3", "det-b v1.2"]  # both detectors behind the fused box
            (scoord,) = scoords
            x1, y1, x2, y2 = finding["box"]
            assert scoord.GraphicType == "POLYLINE"
            assert np.allclose(np.array(scoord.GraphicData, dtype=float).reshape(-1, 2),
                               [[x1, y1], [x2, y1], [x2, y2], [x1, y2], [x1, y1]], atol=1e-3)
            assert scoord.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == CHEST
        else:
            assert models == ["cls v7"] and scoords == []  # a classifier finding is about the whole image
            (image,) = [i for i in items if i.ValueType == "IMAGE"]
            assert image.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == CHEST


def test_a_gated_image_is_not_analysable_with_its_reason(result: dict, sr_file: Path) -> None:
    hand = next(img for img in result["images"] if img["sop_uid"] == HAND)
    assert hand["status"] == "NOT_ANALYSABLE" and hand["findings"] == []
    ds = pydicom.dcmread(sr_file)
    (items,) = [_items(g) for g in _groups(ds)
                if any(i.ValueType == "IMAGE" and i.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == HAND
                       for i in _items(g))]
    coded = {_name(i): i.ConceptCodeSequence[0].CodeMeaning for i in items if i.ValueType == "CODE"}
    assert coded == {"Finding": "Not analysable", "Image Quality": "Unusable - Quality renders image unusable"}
    comments = [i.TextValue for i in items if i.ValueType == "TEXT" and _name(i) == "Comment"]
    assert f"not analysable: {hand['qc_flags'][0]}" in comments
    assert "body part HAND is outside the models' applicability (CHEST)" in hand["qc_flags"][0]


def test_the_device_observer_names_every_model_version_and_the_config(result: dict, sr_file: Path) -> None:
    ds = pydicom.dcmread(sr_file)
    texts = {_name(i): i.TextValue for i in ds.ContentSequence if i.ValueType == "TEXT"}
    assert texts["Device Observer Name"] == "radstream (not for clinical use)"
    assert texts["Device Observer Model Name"] == f"cls v7, det-a v3, det-b v1.2; config v{result['config_version']}"
    observer = {_name(i): i.ConceptCodeSequence[0].CodeMeaning for i in ds.ContentSequence if i.ValueType == "CODE"}
    assert observer["Observer Type"] == "Device"


def test_highdicom_parses_the_report_back(sr_file: Path) -> None:
    sr = hd.sr.srread(sr_file)
    planar = sr.content.get_planar_roi_measurement_groups()
    assert len(planar) == 1
    (group,) = planar
    assert group.finding_type == codes.SCT.Nodule
    assert group.roi.graphic_type == hd.sr.GraphicTypeValues.POLYLINE
    assert 0.5 <= group.get_measurements(name=codes.DCM.Probability)[0].value <= 1.0
    assert len(sr.content.get_image_measurement_groups()) == 2  # the classifier finding and the gated image


def test_the_same_result_gives_the_same_instance_and_updates_are_refused(result: dict) -> None:
    first, again = structured_report(result), structured_report(result)
    assert first.SOPInstanceUID == again.SOPInstanceUID and first.SeriesInstanceUID == again.SeriesInstanceUID
    assert "NOT FOR CLINICAL USE" not in first.SeriesDescription
    with pytest.raises(ReportError, match="only a final result"):
        structured_report({**result, "final": False})


def test_demo_models_or_unknown_models_mark_the_report() -> None:
    class Manifest:
        def __init__(self, flag: bool) -> None:
            self.not_for_clinical_use = flag

    cleared = {"a": Manifest(False), "demo": Manifest(True)}
    assert not made_by_demo_models({"a": "1"}, cleared)
    assert made_by_demo_models({"a": "1", "demo": "1"}, cleared)
    assert made_by_demo_models({"unknown": "1"}, cleared)


@pytest.mark.skipif(shutil.which("dsrdump") is None, reason="dcmtk is not installed (apt-get install dcmtk)")
def test_dcmtk_reads_the_report_without_complaint(sr_file: Path) -> None:
    run = subprocess.run(["dsrdump", "-Ee", "+Pu", str(sr_file)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "Comprehensive 3D SR Document" in run.stdout
    assert "W:" not in run.stderr and "E:" not in run.stderr, run.stderr
    assert '(27925004,SCT,"Nodule")' in run.stdout and "(POLYLINE," in run.stdout
    dump = subprocess.run(["dcmdump", str(sr_file)], capture_output=True, text=True, timeout=60)
    assert dump.returncode == 0 and "Comprehensive3DSRStorage" in dump.stdout
