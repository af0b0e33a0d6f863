"""decode: DICOM blob -> sanitized full-range pixels + display image, one event per frame.

The pure work is domain/dicom (decode_instance); this stage adds the claim
check (verify and store blobs) and maps the allow-listed metadata onto the
ImageDecoded contract. Nothing outside the allow-list can reach the bus.
The pixel blob holds the stored values and the event their `pixel_transform` (rescale,
MONOCHROME1 inversion) where that is exact, so a 16-bit radiograph's blob is half the
float32 frame; readers take the model frame through `model_frame` (domain/dicom/pixels.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from radstream.streams.blobstore import DERIVED, BlobStore, open_blob_store
from radstream.domain.dicom.decode import DecodeLimits, decode_instance
from radstream.domain.errors import NotAnImage, Rejected, Skipped
from radstream.domain.exposure import exposure_statistics
from radstream.domain.keys import idempotency_key, image_key
from radstream.streams.contracts import carried_fields, record_fields
from radstream.streams.isolation import BoundedWorker
from radstream.streams.kafka.topics import DICOM_ARRIVED, IMAGE_DECODED, schema_of
from radstream.streams.stage import Inbound, Output, Stage

CARRIED = carried_fields(schema_of(DICOM_ARRIVED), schema_of(IMAGE_DECODED), exclude=("frame", "stage_ms"))


def _pixel_spacing(meta: dict[str, Any]) -> list[float] | None:
    if meta.get("PixelSpacingRow") is None:
        return None
    return [meta["PixelSpacingRow"], meta["PixelSpacingColumn"]]


# The ImageMetadata contract (its fields, and what a missing required one becomes: its default, else "" or 0).
METADATA_FIELDS = record_fields(schema_of(IMAGE_DECODED), "metadata")
# Where each of its fields is read from: an allow-listed header keyword (domain/dicom/metadata.py), or a
# function of the header. A contract field with no source here fails tests/unit/streams/test_contracts.py.
METADATA_SOURCES: dict[str, str | Callable[[dict[str, Any]], Any]] = {
    "sop_class_uid": "SOPClassUID",
    "modality": "Modality",
    "body_part": "BodyPartExamined",
    "view_position": "ViewPosition",
    "laterality": lambda meta: meta.get("ImageLaterality") or meta.get("Laterality"),
    "series_laterality": "Laterality",
    "manufacturer": "Manufacturer",
    "manufacturer_model": "ManufacturerModelName",
    "pixel_spacing_mm": _pixel_spacing,
    "rows": "Rows",
    "columns": "Columns",
    "frames": "NumberOfFrames",
    "photometric_interpretation": "PhotometricInterpretation",
    "bits_stored": "BitsStored",
    "transfer_syntax_uid": "TransferSyntaxUID",
    "repairs": "Repairs",
}


def image_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """The allow-listed DICOM attributes, in the ImageMetadata contract's field names."""
    out = {}
    for field in METADATA_FIELDS:
        source = METADATA_SOURCES[field.name]
        value = meta.get(source) if isinstance(source, str) else source(meta)
        out[field.name] = value if field.nullable else value or field.fallback
    return out


def encode_png(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", image)
    if not ok:
        raise Rejected("display image could not be encoded as PNG", code="display_encode")
    return buf.tobytes()


@functools.cache
def _worker_store(url: str) -> BlobStore:
    """The worker's own store, opened once per URL (an S3 client keeps its connections)."""
    return open_blob_store(url)


class DecodeStage(Stage):
    name = "decode"
    input_topic = DICOM_ARRIVED
    output_topics = (IMAGE_DECODED,)

    def __init__(self, store: BlobStore, limits: DecodeLimits = DecodeLimits(), non_image_policy: str = "skip",
                 timeout_s: float = 60.0, memory_bytes: int = 4 << 30,
                 arrival_check: Callable[[dict], str | None] | None = None) -> None:
        """`arrival_check(arrival)`: why an arrival's site is not vouched for, or None
        (domain/signatures.arrival_rejection, where signed arrivals are required: D-038)."""
        self.store = store
        self.arrival_check = arrival_check
        self.limits = limits
        self.non_image_policy = non_image_policy  # "skip": counted, not dead-lettered; "dlq": dead-lettered
        # per file, in a worker process (streams/isolation.py); 0: in this process, unbounded
        self._worker = BoundedWorker(timeout_s, memory_bytes) if timeout_s > 0 else None

    def process(self, event: Inbound) -> list[Output]:
        if self.arrival_check is not None and (why := self.arrival_check(event.value)) is not None:
            raise Rejected(f"arrival {event.value.get('sop_uid')} not accepted for its site: {why}",
                           code="arrival_untrusted")
        if self._worker is not None:
            return self._worker.call(decode_arrival, self.store.url, self.limits, self.non_image_policy,
                                     event.value)
        return decode_arrival(self.store, self.limits, self.non_image_policy, event.value)

    def close(self) -> None:
        if self._worker is not None:
            self._worker.close()


def decode_arrival(store: BlobStore | str, limits: DecodeLimits, non_image_policy: str,
                   arrival: dict) -> list[Output]:
    """One arrival to its ImageDecoded events (module-level: it also runs in the worker, which
    gets the store's URL and opens it once)."""
    if isinstance(store, str):
        store = _worker_store(store)
    try:
        decoded = decode_instance(store.get(arrival["blob"]), limits)
    except NotAnImage as exc:
        if non_image_policy == "skip":
            raise Skipped(exc.reason, code=exc.code) from None
        raise
    if decoded.metadata.get("SOPInstanceUID") not in (None, arrival["sop_uid"]):
        raise Rejected("the event's SOP Instance UID disagrees with the file's", code="uid_mismatch")
    metadata = image_metadata(decoded.metadata)
    outputs = []
    transform = decoded.transform.to_record() if decoded.transform is not None else None
    for frame, (pixels, display) in enumerate(zip(decoded.stored, decoded.display)):
        value = {k: arrival[k] for k in CARRIED}
        value.update({
            "idempotency_key": idempotency_key(arrival["sop_uid"], frame, arrival["blob"]["sha256"]),
            "frame": frame,
            "pixels": store.put_array(pixels),  # stored values (uint16: half the float32 frame) or float32
            "pixel_transform": transform,
            "display": store.put(encode_png(display), "image/png", display.shape, "uint8", area=DERIVED),
            "metadata": metadata,
            "source": arrival["blob"],  # carried to the result, for the export edges (domain/dicom/patient.py)
            "image_stats": exposure_statistics(pixels, decoded.transform),  # carried to the result: drift
            "stage_ms": dict(arrival["stage_ms"]),
        })
        outputs.append(Output(IMAGE_DECODED, image_key(arrival["sop_uid"], frame), value))
    return outputs
