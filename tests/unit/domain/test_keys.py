"""The image keys: exact spellings, since they are Kafka keys, state keys and inputs to idempotency keys."""

from __future__ import annotations

from radstream.domain.keys import frame_key, image_key, sop_uid_of

SOP = "1.2.826.0.1.3680043.8.498.1"


def test_image_key_is_the_sop_alone_for_frame_zero() -> None:
    assert image_key(SOP, 0) == SOP
    assert image_key(SOP, 1) == f"{SOP}#1"
    assert image_key(SOP, 12) == f"{SOP}#12"


def test_frame_key_always_carries_the_frame() -> None:
    assert frame_key(SOP, 0) == f"{SOP}#0"
    assert frame_key(SOP, 3) == f"{SOP}#3"
    assert frame_key(SOP, 0) != image_key(SOP, 0)  # two keys on purpose (domain/keys.py)


def test_sop_uid_of_reads_either_key() -> None:
    for frame in (0, 1, 7):
        assert sop_uid_of(image_key(SOP, frame)) == SOP
        assert sop_uid_of(frame_key(SOP, frame)) == SOP
