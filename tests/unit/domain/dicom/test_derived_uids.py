"""Derived UIDs: the same (kind, key) always gives the same valid UID, under 2.25 or a site root."""

from __future__ import annotations

import pytest
from pydicom.uid import UID
from radstream.domain.dicom.uids import DEFAULT_UID_ROOT, check_uid_root, derived_uid


@pytest.mark.parametrize("root", [DEFAULT_UID_ROOT, "1.2.826.0.1.3680043.10.543"])
def test_the_same_kind_and_key_give_the_same_valid_uid(root: str) -> None:
    uid = derived_uid("sr", "result-key-1", root)
    assert uid == derived_uid("sr", "result-key-1", root)  # a redelivery rebuilds the same instance
    assert uid.startswith(root + ".") and UID(uid).is_valid and len(uid) <= 64
    others = {derived_uid("sr", "result-key-2", root), derived_uid("gsps/1.2.3", "result-key-1", root)}
    assert uid not in others and len(others) == 2  # another version, another object: another UID


def test_a_bad_root_is_refused_with_its_reason() -> None:
    assert check_uid_root("1.2.3.") == "1.2.3"
    for bad in ("1.02.3", "a.b", "1." + "2" * 40):
        with pytest.raises(ValueError, match="UID root"):
            derived_uid("sr", "k", bad)
