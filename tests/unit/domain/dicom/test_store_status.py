"""C-STORE statuses (PS3.4 B.2.3, PS3.7 C) as a sender reads them: stored or refused, with the meaning."""

from __future__ import annotations

import pytest
from radstream.domain.dicom.store_status import StoreStatus
from radstream.domain.dicom.stow import (
    PartOutcome,
    failed_parts,
    referenced_parts,
    store_instances_response,
)


@pytest.mark.parametrize("code", [0x0000, 0xB000, 0xB006, 0xB007, 0x0001, 0x0107, 0x0116])
def test_success_and_warnings_are_stored(code: int) -> None:
    assert StoreStatus(code).stored


@pytest.mark.parametrize(("code", "meaning"), [
    (0xA700, "Refused: Out of Resources"), (0xA7FF, "Refused: Out of Resources"),
    (0xA900, "Error: Data Set does not match SOP Class"), (0xC000, "Error: Cannot understand"),
    (0xC123, "Error: Cannot understand"), (0x0122, "Refused: SOP Class not supported"),
    (0x0124, "Refused: Not authorized"), (0x0110, "Failure: Processing failure"),
    (0xFE00, "Cancel"), (0x1234, "Failure (a status the standard does not define for storage)"),
])
def test_refusals_are_not_stored_and_say_what_they_mean(code: int, meaning: str) -> None:
    status = StoreStatus(code)
    assert not status.stored
    assert str(status) == f"0x{code:04X} {meaning}"


def test_a_store_instances_response_reads_back_into_its_parts() -> None:
    """The ingest side's response builder and the export side's reader agree (one module, both ways)."""
    response = store_instances_response([
        PartOutcome("1.2.840.10008.5.1.4.1.1.1", "1.2.3.1"),
        PartOutcome("1.2.840.10008.5.1.4.1.1.1", "1.2.3.2", failure_reason=0xA900, reason="not a CR"),
    ])
    assert [(p.sop_instance_uid, p.code) for p in referenced_parts(response)] == [("1.2.3.1", None)]
    assert [(p.sop_instance_uid, p.code) for p in failed_parts(response)] == [("1.2.3.2", 0xA900)]
    assert failed_parts({}) == [] and referenced_parts({"00081199": {"vr": "SQ"}}) == []
