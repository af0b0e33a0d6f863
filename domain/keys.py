"""The keys written once: an output's idempotency key, and the keys that name one image.

`idempotency_key` hashes what made an output (input UIDs, blob hash, model and config
versions), so a redelivered input produces the same key and consumers drop the copy.

There are two spellings, and both are already on the wire or in stored state, so they
stay two:
- `image_key`: the Kafka key on image-level topics, and the gateway's name for an image.
  A single-frame image (frame 0) is keyed by its SOP Instance UID alone.
- `frame_key`: always `<sop>#<frame>`, frame 0 included. It keys fuse's join state and
  the images of qc's study state, whose sorted keys go into the study result's
  idempotency key; changing it would re-key stored state and change idempotency keys.
"""

from __future__ import annotations

import hashlib


def idempotency_key(*parts: object) -> str:
    """Stable key from the input's UIDs plus model and config versions."""
    text = "|".join(str(p) for p in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def image_key(sop_uid: str, frame: int) -> str:
    """Kafka key on image-level topics: the SOP Instance UID, plus the frame number past frame 0."""
    return sop_uid if frame == 0 else f"{sop_uid}#{frame}"


def frame_key(sop_uid: str, frame: int) -> str:
    """`<sop>#<frame>` for every frame, frame 0 included (the stages' state keys)."""
    return f"{sop_uid}#{frame}"


def sop_uid_of(key: str) -> str:
    """The SOP Instance UID in an `image_key` or a `frame_key` (UIDs never contain `#`)."""
    return key.split("#")[0]
