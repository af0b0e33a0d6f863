"""The SR and GSPS objects the DICOM export edges send, built for results on the real RG1 and RG3
radiographs (pydicom-data): every file written is checked by dciodvfy (dicom3tools), the patient
and study are the originals', UIDs are derived, and a newer version names its predecessor."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from radstream.domain.dicom.patient import KEYWORDS, PatientContext
from radstream.services.demo import real_radiographs
from radstream.services.export.dicom_objects import (
    NotReportable,
    Predecessor,
    dicom_objects,
    earlier_sr,
    sr_reference,
)
from radstream.services.export.patient_context import OriginalMissing, original_headers
from radstream.streams.blobstore import FileBlobStore

from tests.unit.services.gateway.gateway_records import fused_box, study_result

BOX = [400.0, 500.0, 700.0, 820.0]
# What dciodvfy may say about these objects, each looked at: the originals' own Referring Physician
# ("ward", a name without ^, read as the retired PN form), our private coding scheme (PS3.16 8.2), and
# an empty Laterality when the original names neither body part nor laterality (it is unknown).
KNOWN_WARNINGS = (re.compile(r"Retired Person Name form"),
                  re.compile(r"Unrecognized defined term <99RADSTREAM>"),
                  re.compile(r"only permitted to be empty when actually unknown.*attribute <Laterality>"))


def _headers(name: str) -> dict[str, Dataset]:
    """The UNCR and J2KR instances of one pydicom-data radiograph: one study, one series, two images."""
    paths = [p for p in real_radiographs() if p.name.startswith(name)]
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]
    return {str(ds.SOPInstanceUID): ds for ds in headers}


def _result(headers: dict[str, Dataset], key: str, boxes: list[dict] | None = None,
            gated_second: bool = False) -> dict:
    """A final StudyResult on those images (the gateway tests' builder, with the real UIDs)."""
    first = next(iter(headers.values()))
    result = study_result(study=str(first.StudyInstanceUID), sops=list(headers), boxes=boxes or [], key=key)
    for image in result["images"]:
        image["series_uid"] = str(first.SeriesInstanceUID)
        image["sop_class_uid"] = str(first.SOPClassUID)
    if gated_second:
        result["images"][1].update(status="NOT_ANALYSABLE", fused_boxes=[], findings=[],
                                   qc_flags=["pixel qc: image too dark to read"])
    return result


@pytest.fixture(scope="module")
def rg1() -> dict[str, Dataset]:
    return _headers("RG1")


@pytest.fixture(scope="module")
def rg1_result(rg1: dict[str, Dataset]) -> dict:
    """RG1: one image with a detected nodule and a whole-image classifier finding, one gated by qc."""
    result = _result(rg1, "rg1-v1", boxes=[fused_box(BOX, score=0.83)], gated_second=True)
    chest = result["images"][0]
    chest["findings"].append({"rule_id": "nodule-suspected", "rule_version": "2", "label": "nodule",
                              "confidence": 0.71, "box": None, "inputs": {"cls/nodule": 0.71},
                              "thresholds": {"rule:nodule-suspected/min_probability": 0.6},
                              "finding_id": "nodule-suspected@" + chest["sop_uid"]})
    return result


@pytest.fixture(scope="module")
def rg1_objects(rg1: dict[str, Dataset], rg1_result: dict) -> list[Dataset]:
    return dicom_objects(rg1_result, PatientContext.from_dataset(next(iter(rg1.values()))), rg1,
                         not_for_clinical_use=True)


def _dciodvfy(ds: Dataset, path: Path) -> list[str]:
    """dciodvfy's errors on `ds` written to `path`; every warning must be a known one."""
    ds.save_as(path, enforce_file_format=True)
    run = subprocess.run(["dciodvfy", str(path)], check=False, capture_output=True, text=True, timeout=60)
    lines = (run.stdout + run.stderr).splitlines()
    unknown = [line for line in lines if line.startswith("Warning")
               and not any(p.search(line) for p in KNOWN_WARNINGS)]
    assert unknown == [], unknown
    return [line for line in lines if line.startswith("Error")]


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dicom3tools is not installed (apt-get install dicom3tools)")
def test_dciodvfy_finds_no_error_in_any_object(rg1_objects: list[Dataset], tmp_path: Path) -> None:
    rg3 = _headers("RG3")
    # RG3: two analysed images, no finding on one, a box reaching past the image edge on the other
    rg3_result = _result(rg3, "rg3-v1", boxes=[fused_box([1500.0, 1600.0, 1900.0, 1800.0])])
    rg3_result["images"][1].update(findings=[], fused_boxes=[])
    rg3_objects = dicom_objects(rg3_result, PatientContext.from_dataset(next(iter(rg3.values()))), rg3)
    objects = [*rg1_objects, *rg3_objects]
    assert [ds.Modality for ds in objects] == ["SR", "PR", "PR", "SR", "PR", "PR"]
    for i, ds in enumerate(objects):
        assert _dciodvfy(ds, tmp_path / f"{i}-{ds.Modality}.dcm") == [], f"object {i} ({ds.Modality})"


def test_every_object_carries_the_originals_patient_and_study(rg1: dict[str, Dataset],
                                                              rg1_objects: list[Dataset]) -> None:
    original = next(iter(rg1.values()))
    assert original.PatientName == "CompressedSamples^RG1"  # a real identity, not an empty one
    for ds in rg1_objects:
        assert ds.StudyInstanceUID == original.StudyInstanceUID
        for keyword in KEYWORDS.values():
            assert ds.get(keyword) == original.get(keyword), f"{ds.Modality} {keyword}"


def test_the_sr_comes_first_and_each_image_has_a_gsps_referencing_it(rg1: dict[str, Dataset],
                                                                      rg1_objects: list[Dataset]) -> None:
    sr, *states = rg1_objects
    assert sr.SOPClassUID == pydicom.uid.Comprehensive3DSRStorage
    assert [s.SOPClassUID for s in states] == [pydicom.uid.GrayscaleSoftcopyPresentationStateStorage] * 2
    for state, (sop, original) in zip(states, rg1.items(), strict=True):
        (series,) = state.ReferencedSeriesSequence
        assert series.SeriesInstanceUID == original.SeriesInstanceUID
        assert [(r.ReferencedSOPClassUID, r.ReferencedSOPInstanceUID) for r in series.ReferencedImageSequence] == [
            (original.SOPClassUID, sop)]
        # the image's own display: its window, and INVERSE because RG1 is MONOCHROME1
        (voi,) = state.SoftcopyVOILUTSequence
        assert (float(voi.WindowCenter), float(voi.WindowWidth)) == (float(original.WindowCenter),
                                                                      float(original.WindowWidth))
        assert original.PhotometricInterpretation == "MONOCHROME1" and state.PresentationLUTShape == "INVERSE"
        assert state.ContentLabel == "RADSTREAM_AI" and "NOT FOR CLINICAL USE" in state.SeriesDescription
    assert len({s.SeriesInstanceUID for s in states}) == 1 and sr.SeriesInstanceUID != states[0].SeriesInstanceUID


def test_the_gsps_draws_the_box_and_writes_label_and_confidence(rg1_result: dict, rg1_objects: list[Dataset]) -> None:
    sr, chest, gated = rg1_objects
    (annotation,) = chest.GraphicAnnotationSequence
    assert annotation.GraphicLayer == "RADSTREAM"
    (box,) = annotation.GraphicObjectSequence
    x1, y1, x2, y2 = BOX
    assert (box.GraphicType, box.GraphicAnnotationUnits, box.GraphicFilled) == ("POLYLINE", "PIXEL", "N")
    assert np.allclose(np.array(box.GraphicData).reshape(-1, 2),
                       [[x1, y1], [x2, y1], [x2, y2], [x1, y2], [x1, y1]])
    texts = {t.UnformattedTextValue: t for t in annotation.TextObjectSequence}
    label = texts["nodule 0.83"]
    assert label.AnchorPointAnnotationUnits == "PIXEL" and list(label.AnchorPoint) == [x1, y1]
    assert "radstream: nodule 0.71 (whole image, rule nodule-suspected)" in texts
    assert any(t.startswith("NOT FOR CLINICAL USE") for t in texts)
    # the GSPS graphic and the SR's measurement group of one finding share its Tracking UID
    sr_tracking = {item.UID for item in _items(sr) if item.ValueType == "UIDREF"}
    assert box.TrackingUID == label.TrackingUID and box.TrackingUID in sr_tracking
    # the gated image: text only, saying why
    (gated_annotation,) = gated.GraphicAnnotationSequence
    assert "GraphicObjectSequence" not in gated_annotation
    assert next(t.UnformattedTextValue for t in gated_annotation.TextObjectSequence) == (
        f"radstream: NOT ANALYSABLE: {rg1_result['images'][1]['qc_flags'][0]}")


def test_a_redelivery_rebuilds_the_same_uids_and_a_new_version_new_ones(rg1: dict[str, Dataset], rg1_result: dict,
                                                                       rg1_objects: list[Dataset]) -> None:
    context = PatientContext.from_dataset(next(iter(rg1.values())))
    again = dicom_objects(rg1_result, context, rg1, not_for_clinical_use=True)
    assert [ds.SOPInstanceUID for ds in again] == [ds.SOPInstanceUID for ds in rg1_objects]
    assert [ds.SeriesInstanceUID for ds in again] == [ds.SeriesInstanceUID for ds in rg1_objects]
    newer = dicom_objects({**rg1_result, "idempotency_key": "rg1-v2"}, context, rg1)
    assert not {ds.SOPInstanceUID for ds in newer} & {ds.SOPInstanceUID for ds in rg1_objects}
    # every version of the study's SR (and of its GSPS) lands in one series
    assert [ds.SeriesInstanceUID for ds in newer] == [ds.SeriesInstanceUID for ds in rg1_objects]
    rooted = dicom_objects(rg1_result, context, rg1, uid_root="1.2.826.0.1.3680043.10.543")
    assert all(ds.SOPInstanceUID.startswith("1.2.826.0.1.3680043.10.543.") for ds in rooted)


def test_a_newer_version_names_the_earlier_sr_as_its_predecessor(rg1: dict[str, Dataset], rg1_result: dict,
                                                                 rg1_objects: list[Dataset]) -> None:
    first = rg1_objects[0]
    predecessor = sr_reference(first)
    assert predecessor == Predecessor(first.SOPClassUID, first.SOPInstanceUID, first.SeriesInstanceUID,
                                      first.StudyInstanceUID)
    assert earlier_sr(rg1_result["study_uid"], "rg1-v1") == predecessor  # from the key alone
    assert "PredecessorDocumentsSequence" not in first
    context = PatientContext.from_dataset(next(iter(rg1.values())))
    sr = dicom_objects({**rg1_result, "idempotency_key": "rg1-v2"}, context, rg1, predecessor=predecessor)[0]
    (study,) = sr.PredecessorDocumentsSequence
    (series,) = study.ReferencedSeriesSequence
    (ref,) = series.ReferencedSOPSequence
    assert (study.StudyInstanceUID, series.SeriesInstanceUID, ref.ReferencedSOPClassUID,
            ref.ReferencedSOPInstanceUID) == (first.StudyInstanceUID, first.SeriesInstanceUID, first.SOPClassUID,
                                              first.SOPInstanceUID)
    assert sr.SOPInstanceUID != first.SOPInstanceUID


def test_what_cannot_be_built_is_a_permanent_error_with_its_reason(rg1: dict[str, Dataset], rg1_result: dict) -> None:
    context = PatientContext.from_dataset(next(iter(rg1.values())))
    one = dict(list(rg1.items())[:1])
    with pytest.raises(OriginalMissing, match=f"no original instance for image.*{list(rg1)[1]}") as missing:
        dicom_objects(rg1_result, context, one)
    assert not missing.value.transient
    rg3 = _headers("RG3")
    with pytest.raises(NotReportable, match="patient context is of study"):
        dicom_objects(rg1_result, PatientContext.from_dataset(next(iter(rg3.values()))), rg1)
    swapped = dict(zip(rg1, rg3.values(), strict=True))  # the right keys, another study's headers
    with pytest.raises(NotReportable, match="is another instance"):
        dicom_objects(rg1_result, context, swapped)
    with pytest.raises(NotReportable, match="only a final result"):
        dicom_objects({**rg1_result, "final": False}, context, rg1)


def test_original_headers_reads_every_image_back_from_the_blob_store(rg1: dict[str, Dataset], rg1_result: dict,
                                                                    tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs")
    paths = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID): p
             for p in real_radiographs() if p.name.startswith("RG1")}
    result = {**rg1_result, "images": [{**image, "source": store.put(paths[image["sop_uid"]].read_bytes(),
                                                                       "application/dicom")}
                                       for image in rg1_result["images"]]}
    headers = original_headers(store, result)
    assert list(headers) == list(rg1) and all("PixelData" not in ds for ds in headers.values())
    assert headers[next(iter(rg1))].PatientID == "9RG1"
    unnamed = {**result, "images": [result["images"][0], {**result["images"][1], "source": None}]}
    with pytest.raises(OriginalMissing, match="names no original instance"):
        original_headers(store, unnamed)
    digest = result["images"][1]["source"]["sha256"]
    (store.area_dir("raw") / digest[:2] / digest).unlink()  # retention removed the second original
    with pytest.raises(OriginalMissing, match=f"original of {result['images'][1]['sop_uid']}: blob not found"):
        original_headers(store, result)


def _items(node: Dataset, out: list | None = None) -> list:
    out = [] if out is None else out
    for item in getattr(node, "ContentSequence", []):
        out.append(item)
        _items(item, out)
    return out


def _testdata(name: str) -> dict[str, Dataset]:
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file(name), stop_before_pixels=True)
    return {str(ds.SOPInstanceUID): ds}


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dicom3tools is not installed (apt-get install dicom3tools)")
def test_the_frames_of_a_multi_frame_image_are_annotations_of_one_gsps(tmp_path: Path) -> None:
    headers = _testdata("eCT_Supplemental.dcm")  # pydicom's Enhanced CT, 2 frames
    result = _result(headers, "ect-v1", boxes=[fused_box([10.0, 12.0, 30.0, 40.0])])
    result["images"].append({**result["images"][0], "frame": 1, "findings": [], "fused_boxes": []})
    sr, state = dicom_objects(result, PatientContext.from_dataset(next(iter(headers.values()))), headers)
    assert [a.ReferencedImageSequence[0].ReferencedFrameNumber for a in state.GraphicAnnotationSequence] == [1, 2]
    first, second = state.GraphicAnnotationSequence
    assert "GraphicObjectSequence" in first and [t.UnformattedTextValue for t in second.TextObjectSequence] == [
        "radstream: no finding"]
    # the SR's box is on frame 1 too (frame 0 of a multi-frame image is not "the whole image")
    scoords = [i for i in _items(sr) if i.ValueType == "SCOORD"]
    assert [s.ContentSequence[0].ReferencedSOPSequence[0].ReferencedFrameNumber for s in scoords] == [1]
    for ds in (sr, state):
        errors = _dciodvfy(ds, tmp_path / f"{ds.Modality}.dcm")
        assert errors == [], errors


def test_a_header_highdicom_cannot_use_is_a_permanent_error_naming_the_image() -> None:
    headers = _testdata("emri_small.dcm")  # 10 frames without the functional groups an Enhanced MR needs
    result = _result(headers, "emri-v1")
    with pytest.raises(NotReportable, match=f"image {next(iter(headers))}: no presentation state"):
        dicom_objects(result, PatientContext.from_dataset(next(iter(headers.values()))), headers)


def test_a_colour_image_has_its_findings_in_the_sr_only() -> None:
    headers = _testdata("US1_UNCR.dcm")  # pydicom's RGB ultrasound
    result = _result(headers, "us-v1", boxes=[fused_box([10.0, 12.0, 30.0, 40.0])])
    objects = dicom_objects(result, PatientContext.from_dataset(next(iter(headers.values()))), headers)
    assert [ds.Modality for ds in objects] == ["SR"]
    assert len([i for i in _items(objects[0]) if i.ValueType == "SCOORD"]) == 1


def test_an_all_clear_study_says_no_finding_in_the_sr_and_on_each_image() -> None:
    rg3 = _headers("RG3")
    result = _result(rg3, "rg3-clear")  # analysed, no rule fired on either image
    sr, *states = dicom_objects(result, PatientContext.from_dataset(next(iter(rg3.values()))), rg3)
    groups = [g for g in _items(sr) if g.ValueType == "CONTAINER" and
              g.ConceptNameCodeSequence[0].CodeMeaning == "Measurement Group"]
    findings = [i.ConceptCodeSequence[0].CodeMeaning for g in groups for i in g.ContentSequence
                if i.ValueType == "CODE" and i.ConceptNameCodeSequence[0].CodeMeaning == "Finding"]
    assert findings == ["No finding (no rule fired)"] * 2
    images = {i.ReferencedSOPSequence[0].ReferencedSOPInstanceUID for g in groups for i in _items(g)
              if i.ValueType == "IMAGE"}
    assert images == set(rg3)
    assert [[t.UnformattedTextValue for t in s.GraphicAnnotationSequence[0].TextObjectSequence] for s in states] == [
        ["radstream: no finding"]] * 2
