"""preprocess: one tensor per distinct input profile of the models in force, not one per model.

The transform itself is models/profile.apply_profile, the same function training
used, so serving cannot drift from training; `apply_profiles` runs it for every profile with
the shared steps (robust scale, CLAHE per setting, resize per geometry) done once per image.
The robust scale of an integer blob is made from its stored values (`robust_scale_stored`:
a histogram and a table, the same bits as the float frame's; D-055).
"""

from __future__ import annotations

import numpy as np

from radstream.domain.dicom.pixels import PixelTransform, model_frame
from radstream.domain.exposure import profile_statistics
from radstream.models.intensity import robust_scale_stored
from radstream.models.profile import InputProfile, apply_profiles_to_unit, robust_scale
from radstream.streams.blobstore import BlobStore
from radstream.streams.contracts import carried_fields
from radstream.streams.kafka.topics import IMAGE_DECODED, IMAGE_PREPROCESSED, schema_of
from radstream.streams.stage import Inbound, Output, Stage
from radstream.domain.keys import idempotency_key, image_key

CARRIED = carried_fields(schema_of(IMAGE_DECODED), schema_of(IMAGE_PREPROCESSED), exclude=("stage_ms", "image_stats"))


class PreprocessStage(Stage):
    name = "preprocess"
    input_topic = IMAGE_DECODED
    output_topics = (IMAGE_PREPROCESSED,)

    def __init__(self, store: BlobStore, profiles: list[InputProfile]) -> None:
        self.store = store
        self.profiles = {p.hash(): p for p in profiles}

    def process(self, event: Inbound) -> list[Output]:
        decoded = event.value
        stored = self.store.get_array(decoded["pixels"])
        transform = PixelTransform.from_record(decoded.get("pixel_transform"))
        scaled = robust_scale_stored(stored, transform)
        if scaled is None:  # a float blob (color, a Modality LUT Sequence, 32-bit samples)
            scaled = robust_scale(model_frame(stored, transform))
        prepared = apply_profiles_to_unit(scaled, [profile for _, profile in sorted(self.profiles.items())])
        tensors, stats = [], []
        for profile_hash, (tensor, box) in prepared.items():
            profile = self.profiles[profile_hash]
            stats.append(profile_statistics(profile_hash, tensor, profile.mean, profile.std))
            tensors.append({
                "profile": profile_hash,
                "tensor": self.store.put_array(tensor.astype(np.float32, copy=False)),
                "scale_x": box.scale_x, "scale_y": box.scale_y, "pad_x": box.pad_x, "pad_y": box.pad_y,
                "orig_width": box.original_width, "orig_height": box.original_height,
            })
        value = {k: decoded[k] for k in CARRIED}
        value.update({
            "idempotency_key": idempotency_key(decoded["idempotency_key"], sorted(self.profiles)),
            "tensors": tensors,
            # decode's exposure statistics plus each profile's pre-normalisation mean and std
            "image_stats": {**decoded["image_stats"], "profiles": stats} if decoded.get("image_stats") else None,
            "stage_ms": dict(decoded["stage_ms"]),
        })
        return [Output(IMAGE_PREPROCESSED, image_key(decoded["sop_uid"], decoded["frame"]), value)]
