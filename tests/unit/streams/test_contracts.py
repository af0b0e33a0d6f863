"""What the stages carry forward is derived from the .avsc contracts: pinned here, so a schema
change that silently changes what is carried (or what decode writes into `metadata`) fails."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from radstream.streams import contracts
from radstream.streams.codec import Codec
from radstream.streams.contracts import RecordField, carried_fields, field_names, record_fields
from radstream.streams.stages.decode import METADATA_FIELDS, METADATA_SOURCES, image_metadata

# What each stage copied from its input before the fields were derived (the hand-kept tuples),
# plus `source` (the original instance, for the export edges), carried since it was added, and
# `image_stats` (drift monitoring: decode's exposure statistics, set again by preprocess with the
# profiles' statistics), carried by infer and fuse since it was added,
# and `priority` (the STAT lane, D-044) through the laned stages, to fuse and qc since D-057.
CARRIED_BEFORE = {
    "decode": {"study_uid", "series_uid", "sop_uid", "site", "expected_instances", "arrived_at", "config_version",
               "trace_id", "priority"},
    "preprocess": {"study_uid", "series_uid", "sop_uid", "frame", "site", "expected_instances", "arrived_at",
                   "config_version", "trace_id", "display", "metadata", "source", "priority"},
    "infer": {"study_uid", "series_uid", "sop_uid", "frame", "site", "expected_instances", "arrived_at",
              "config_version", "trace_id", "display", "metadata", "source", "image_stats", "priority"},
    "fuse": {"study_uid", "series_uid", "sop_uid", "frame", "site", "expected_instances", "arrived_at",
             "display", "metadata", "source", "trace_id", "image_stats", "priority"},
}
METADATA_BEFORE = ("sop_class_uid", "modality", "body_part", "view_position", "laterality", "series_laterality",
                   "manufacturer", "manufacturer_model", "pixel_spacing_mm", "rows", "columns", "frames",
                   "photometric_interpretation", "bits_stored", "transfer_syntax_uid", "repairs")


@pytest.mark.parametrize("stage", sorted(CARRIED_BEFORE))
def test_each_stage_carries_what_it_carried_before(stage: str) -> None:
    carried = importlib.import_module(f"radstream.streams.stages.{stage}").CARRIED
    assert len(carried) == len(set(carried))
    assert set(carried) == CARRIED_BEFORE[stage]


def test_carried_fields_is_the_shared_fields_in_output_order_less_what_the_stage_sets(monkeypatch) -> None:
    schemas = {"In": {"fields": [{"name": n} for n in ("schema_version", "idempotency_key", "b", "a", "c", "gone")]},
               "Out": {"fields": [{"name": n} for n in ("schema_version", "idempotency_key", "a", "b", "c", "new")]}}
    monkeypatch.setattr(contracts, "_raw", schemas.__getitem__)
    assert carried_fields("In", "Out") == ("a", "b", "c")
    assert carried_fields("In", "Out", exclude=("b",)) == ("a", "c")
    with pytest.raises(ValueError, match="Out has no field typo"):
        carried_fields("In", "Out", exclude=("typo",))


def test_field_names_follow_the_schema_file() -> None:
    assert field_names("DicomArrived")[:3] == ("schema_version", "idempotency_key", "study_uid")
    assert "blob" in field_names("DicomArrived") and "blob" not in field_names("ImageDecoded")


@pytest.mark.parametrize("schema", ["ImageDecoded", "ImagePreprocessed", "InferenceResult", "FindingsFused"])
def test_every_carrier_of_metadata_has_the_same_image_metadata_record(schema: str) -> None:
    assert record_fields(schema, "metadata") == METADATA_FIELDS
    assert tuple(f.name for f in METADATA_FIELDS) == METADATA_BEFORE


def test_record_fields_say_what_a_missing_required_value_becomes() -> None:
    by_name = {f.name: f for f in METADATA_FIELDS}
    assert by_name["sop_class_uid"] == RecordField("sop_class_uid", nullable=False, fallback="")
    assert by_name["rows"] == RecordField("rows", nullable=False, fallback=0)
    assert by_name["frames"] == RecordField("frames", nullable=False, fallback=1)  # the schema's default
    assert by_name["modality"] == RecordField("modality", nullable=True)


def test_record_fields_resolve_a_named_type_and_reject_non_records() -> None:
    # ImagePreprocessed declares display as ["null", "radstream.BlobRef"], a reference to pixels' record.
    assert [f.name for f in record_fields("ImagePreprocessed", "display")][:2] == ["uri", "sha256"]
    with pytest.raises(ValueError, match="not a record"):
        record_fields("ImageDecoded", "frame")
    with pytest.raises(ValueError, match="no field"):
        record_fields("ImageDecoded", "nope")


def test_every_metadata_field_has_a_source_in_decode() -> None:
    assert set(METADATA_SOURCES) == {f.name for f in METADATA_FIELDS}


def _image_metadata_before(meta: dict[str, Any]) -> dict[str, Any]:
    """decode's hand-written mapping before the contract drove it (the reference for equality)."""
    spacing = None
    if meta.get("PixelSpacingRow") is not None:
        spacing = [meta["PixelSpacingRow"], meta["PixelSpacingColumn"]]
    return {
        "sop_class_uid": meta.get("SOPClassUID") or "",
        "modality": meta.get("Modality"),
        "body_part": meta.get("BodyPartExamined"),
        "view_position": meta.get("ViewPosition"),
        "laterality": meta.get("ImageLaterality") or meta.get("Laterality"),
        "series_laterality": meta.get("Laterality"),
        "manufacturer": meta.get("Manufacturer"),
        "manufacturer_model": meta.get("ManufacturerModelName"),
        "pixel_spacing_mm": spacing,
        "rows": meta.get("Rows") or 0,
        "columns": meta.get("Columns") or 0,
        "frames": meta.get("NumberOfFrames") or 1,
        "photometric_interpretation": meta.get("PhotometricInterpretation") or "",
        "bits_stored": meta.get("BitsStored"),
        "transfer_syntax_uid": meta.get("TransferSyntaxUID") or "",
        "repairs": meta.get("Repairs"),
    }


FULL_HEADER = {"SOPClassUID": "1.2.840.10008.5.1.4.1.1.1", "Modality": "CR", "BodyPartExamined": "CHEST",
               "ViewPosition": "PA", "ImageLaterality": "L", "Laterality": "R", "Manufacturer": "ACME",
               "ManufacturerModelName": "X1", "PixelSpacingRow": 0.1, "PixelSpacingColumn": 0.2, "Rows": 512,
               "Columns": 256, "NumberOfFrames": 3, "PhotometricInterpretation": "MONOCHROME1", "BitsStored": 12,
               "TransferSyntaxUID": "1.2.840.10008.1.2.1", "Repairs": "BitsStored was 0"}


@pytest.mark.parametrize("header", [
    FULL_HEADER,
    {},
    {"Laterality": "R", "ImageLaterality": ""},
    {"Rows": 0, "NumberOfFrames": 0, "SOPClassUID": "", "PixelSpacingRow": None, "PixelSpacingColumn": 0.5},
    {k: v for k, v in FULL_HEADER.items() if k not in ("ImageLaterality", "NumberOfFrames", "Repairs")},
])
def test_image_metadata_is_what_decode_wrote_before(header: dict[str, Any]) -> None:
    got = image_metadata(header)
    assert got == _image_metadata_before(header)
    assert list(got) == list(METADATA_BEFORE)


def test_image_metadata_satisfies_the_contract() -> None:
    from tests.factories import arrival_event, blob_ref

    decoded = {k: v for k, v in arrival_event().items() if k != "blob"}
    decoded.update(pixels=blob_ref(), display=None, metadata=image_metadata(FULL_HEADER))
    Codec().encode("ImageDecoded", decoded)
