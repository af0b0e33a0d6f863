"""The keys that name one image (one frame of one SOP instance), written once.

There are two spellings, and both are already on the wire or in stored state, so they
stay two:
- `image_key`: the Kafka key on image-level topics, and the gateway's name for an image.
  A single-frame image (frame 0) is keyed by its SOP Instance UID alone.
- `frame_key`: always `<sop>#<frame>`, frame 0 included. It keys fuse's join state and
  the images of qc's study state, whose sorted keys go into the study result's
  idempotency key; changing it would re-key stored state and change idempotency keys.
"""

from __future__ import annotations


def image_key(sop_uid: str, frame: int) -> str:
    """Kafka key on image-level topics: the SOP Instance UID, plus the frame number past frame 0."""
    return sop_uid if frame == 0 else f"{sop_uid}#{frame}"


def frame_key(sop_uid: str, frame: int) -> str:
    """`<sop>#<frame>` for every frame, frame 0 included (the stages' state keys)."""
    return f"{sop_uid}#{frame}"


def sop_uid_of(key: str) -> str:
    """The SOP Instance UID in an `image_key` or a `frame_key` (UIDs never contain `#`)."""
    return key.split("#")[0]
