"""Event builders for tests: valid records per the .avsc contracts, with overridable fields."""

from __future__ import annotations

import time


def blob_ref(sha: str = "0" * 64, media_type: str = "application/dicom") -> dict:
    return {"uri": "file:///nonexistent/" + sha, "sha256": sha, "size_bytes": 1, "media_type": media_type,
            "shape": [], "dtype": ""}


def arrival_event(**overrides) -> dict:
    event = {
        "schema_version": 1,
        "idempotency_key": "k1",
        "study_uid": "1.2.3",
        "series_uid": "1.2.3.4",
        "sop_uid": "1.2.3.4.5",
        "frame": 0,
        "site": "TEST",
        "priority": "routine",
        "expected_instances": 1,
        "arrived_at": int(time.time() * 1000),
        "blob": blob_ref(),
        "config_version": 0,
        "stage_ms": {},
        "trace_id": "t1",
        "signer": "",  # unsigned (D-038)
        "signature": "",
    }
    event.update(overrides)
    return event


def metadata(**overrides) -> dict:
    meta = {"sop_class_uid": "1.2.840.10008.5.1.4.1.1.1", "modality": "CR", "body_part": "CHEST",
            "view_position": "PA", "laterality": None, "series_laterality": None, "manufacturer": "x", "manufacturer_model": None,
            "pixel_spacing_mm": None, "rows": 100, "columns": 100, "frames": 1,
            "photometric_interpretation": "MONOCHROME2", "bits_stored": 12, "transfer_syntax_uid": "1.2.840.10008.1.2.1"}
    meta.update(overrides)
    return meta


def inference_result(model: str, task: str, sop: str = "1.2.3.4.5", detections=None, classifications=None,
                     study: str = "1.2.3", expected_instances: int | None = 1, **overrides) -> dict:
    value = {
        "schema_version": 1, "idempotency_key": f"{sop}-{model}", "study_uid": study, "series_uid": study + ".9",
        "sop_uid": sop, "frame": 0, "site": "TEST", "priority": "routine", "expected_instances": expected_instances,
        "arrived_at": int(time.time() * 1000), "model": {"name": model, "version": "1", "task": task},
        "detections": detections or [], "classifications": classifications or {}, "batch_size": 1,
        "display": None, "metadata": metadata(), "source": blob_ref(), "image_stats": None, "config_version": 0,
        "stage_ms": {f"infer:{model}": 1.0},
        "trace_id": "t1",
    }
    value.update(overrides)
    return value
