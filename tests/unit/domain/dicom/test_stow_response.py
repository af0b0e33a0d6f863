"""The STOW-RS Store Instances Response (PS3.18 10.5.3), read back with pydicom's DICOM JSON reader."""

from __future__ import annotations

import pydicom

from radstream.domain.dicom.stow import (
    CANNOT_UNDERSTAND,
    OUT_OF_RESOURCES,
    PartOutcome,
    store_instances_response,
    store_instances_status,
)

CR = "1.2.840.10008.5.1.4.1.1.1"
STORED = PartOutcome(CR, "1.2.3.1")
BAD = PartOutcome(failure_reason=CANNOT_UNDERSTAND, reason="not DICOM")
BUSY = PartOutcome(CR, "1.2.3.2", OUT_OF_RESOURCES, "broker down")


def test_all_stored_is_200_with_every_instance_referenced() -> None:
    response = pydicom.Dataset.from_json(store_instances_response([STORED, PartOutcome(CR, "1.2.3.3")]))
    assert store_instances_status([STORED, STORED]) == 200
    assert [i.ReferencedSOPInstanceUID for i in response.ReferencedSOPSequence] == ["1.2.3.1", "1.2.3.3"]
    assert response.ReferencedSOPSequence[0].ReferencedSOPClassUID == CR
    assert "FailedSOPSequence" not in response
    assert "RetrieveURL" in response and not response.RetrieveURL  # Type 2: present, empty (no WADO-RS here)


def test_a_bad_part_fails_alone_with_its_reason() -> None:
    response = pydicom.Dataset.from_json(store_instances_response([STORED, BAD, BUSY]))
    assert store_instances_status([STORED, BAD, BUSY]) == 202
    assert [i.ReferencedSOPInstanceUID for i in response.ReferencedSOPSequence] == ["1.2.3.1"]
    failed = response.FailedSOPSequence
    assert [i.FailureReason for i in failed] == [0xC000, 0xA700]
    assert failed[1].ReferencedSOPInstanceUID == "1.2.3.2"
    assert not failed[0].ReferencedSOPInstanceUID  # unreadable: the UID is unknown, the element empty


def test_all_failed_or_nothing_sent_is_409() -> None:
    assert store_instances_status([BAD, BUSY]) == 409
    assert store_instances_status([]) == 409
    assert "ReferencedSOPSequence" not in pydicom.Dataset.from_json(store_instances_response([BAD]))


def test_retrieve_urls_when_the_instances_are_retrievable() -> None:
    outcome = PartOutcome(CR, "1.2.3.1", retrieve_url="http://pacs/dicom-web/studies/1/series/2/instances/1.2.3.1")
    response = pydicom.Dataset.from_json(store_instances_response([outcome], "http://pacs/dicom-web/studies/1"))
    assert response.RetrieveURL == "http://pacs/dicom-web/studies/1"
    assert response.ReferencedSOPSequence[0].RetrieveURL.endswith("/instances/1.2.3.1")
