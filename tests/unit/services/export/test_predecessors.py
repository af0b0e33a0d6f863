"""The SR a PACS export stage remembers per study: the predecessor of the next version, the same one
again for a redelivery (so the rebuilt objects are identical), bounded per study."""

from __future__ import annotations

from radstream.services.export.dicom_objects import earlier_sr
from radstream.services.export.predecessors import KEPT_VERSIONS, SrHistory
from radstream.streams.state import MemoryStore

STUDY = "1.2.826.0.1.3680043.8.498.1"


def test_each_version_names_the_one_stored_before_and_a_redelivery_gets_its_first_predecessor() -> None:
    history = SrHistory(MemoryStore())
    assert history.predecessor_for(STUDY, "v1") is None  # a study's first result
    history.remember(STUDY, "v1", earlier_sr(STUDY, "v1"), None)
    assert history.predecessor_for(STUDY, "v1") is None  # redelivered: built as the first time
    assert history.predecessor_for(STUDY, "v2") == earlier_sr(STUDY, "v1")
    history.remember(STUDY, "v2", earlier_sr(STUDY, "v2"), earlier_sr(STUDY, "v1"))
    history.remember(STUDY, "v1", earlier_sr(STUDY, "v1"), None)  # a late redelivery of v1 moves nothing
    assert history.predecessor_for(STUDY, "v2") == earlier_sr(STUDY, "v1")
    assert history.predecessor_for(STUDY, "v3") == earlier_sr(STUDY, "v2")
    assert history.predecessor_for("1.2.3.other", "v1") is None


def test_the_history_is_bounded_and_json_in_the_state() -> None:
    state = MemoryStore()
    history = SrHistory(state)
    previous = None
    for n in range(KEPT_VERSIONS + 5):
        key = f"v{n}"
        history.remember(STUDY, key, earlier_sr(STUDY, key), previous)
        previous = earlier_sr(STUDY, key)
    versions = state.get(STUDY)["versions"]
    assert len(versions) == KEPT_VERSIONS and versions[-1]["key"] == f"v{KEPT_VERSIONS + 4}"
    assert isinstance(versions[-1]["sr"]["sop_instance_uid"], str)  # what the changelog stores (JSON)
