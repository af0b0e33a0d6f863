"""Which studies are urgent (domain/priority.py), read from real DICOM headers: the header value
under the allow-list's rules, the site rule, the sender's word (D-044)."""

from __future__ import annotations

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from radstream.domain.priority import ROUTINE, STAT, priority_of, requested_procedure_priority


@pytest.fixture
def rg1() -> Dataset:
    path = get_testdata_file("RG1_UNCR.dcm")
    if path is None:
        pytest.skip("pydicom-data is not installed")
    return pydicom.dcmread(path, stop_before_pixels=True)


@pytest.mark.parametrize(("value", "urgent"), [("STAT", True), ("HIGH", True), ("ROUTINE", False),
                                                ("MEDIUM", False), ("LOW", False)])
def test_the_enumerated_values_of_requested_procedure_priority(rg1: Dataset, value: str, urgent: bool) -> None:
    rg1.RequestedProcedurePriority = value
    assert requested_procedure_priority(rg1) == value
    assert priority_of(requested_procedure_priority(rg1), "SITE") == (STAT if urgent else ROUTINE)


def test_the_value_inside_the_request_attributes_sequence_counts(rg1: Dataset) -> None:
    item = Dataset()
    item.RequestedProcedurePriority = "HIGH"
    rg1.RequestAttributesSequence = [item]
    assert requested_procedure_priority(rg1) == "HIGH"


@pytest.mark.parametrize("value", ["urgent", "DOE^JOHANNA", "STAT STAT STAT STAT", "EMERGENCY"])
def test_a_value_outside_the_allow_list_rules_is_ignored(rg1: Dataset, value: str) -> None:
    rg1.RequestedProcedurePriority = value  # not a CS of the enumerated vocabulary
    assert requested_procedure_priority(rg1) is None
    assert priority_of(requested_procedure_priority(rg1), "SITE") == ROUTINE


def test_no_value_is_routine_unless_the_site_or_the_sender_says_otherwise(rg1: Dataset) -> None:
    assert "RequestedProcedurePriority" not in rg1 and requested_procedure_priority(rg1) is None
    assert priority_of(None, "CR-WARD") == ROUTINE
    assert priority_of(None, "ED-CR", urgent_sites={"ED-CR"}) == STAT
    assert priority_of(None, "CR-WARD", sender="stat") == STAT
    assert priority_of("STAT", "CR-WARD", sender="routine") == STAT  # the header still counts
    with pytest.raises(ValueError, match="priority must be one of"):
        priority_of(None, "CR-WARD", sender="urgent")
