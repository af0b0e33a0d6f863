"""Holds per (topic, partition): a laned stage's urgent twin topic waits on its own, never moving
the routine partition of the same number. The consumer here records calls (a stand-in for the
client's pause/seek/resume, which the integration tests run on the real broker)."""

from __future__ import annotations

from radstream.streams.holds import PartitionHolds


class RecordingConsumer:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[tuple[str, int, int]]]] = []

    def _log(self, name: str, tps: list) -> None:
        self.calls.append((name, [(tp.topic, tp.partition, tp.offset) for tp in tps]))

    def pause(self, tps: list) -> None:
        self._log("pause", tps)

    def resume(self, tps: list) -> None:
        self._log("resume", tps)

    def seek(self, tp) -> None:
        self._log("seek", [tp])


def test_an_urgent_message_is_held_on_its_own_topic() -> None:
    consumer = RecordingConsumer()
    holds = PartitionHolds(consumer, "dicom.arrived", backoff_s=0.0, cap_s=0.0, unhealthy_after_s=0.0)
    holds.hold(0, 7, "blob store did not answer", topic="dicom.arrived.stat")
    assert consumer.calls == [("pause", [("dicom.arrived.stat", 0, 7)]), ("seek", [("dicom.arrived.stat", 0, 7)])]
    assert holds.is_held(0, "dicom.arrived.stat") and not holds.is_held(0)
    health = holds.health()
    assert health["healthy"] is False and health["held_partitions"] == [0] and "blob store" in health["unanswered_reason"]
    holds.answered({0})  # the routine partition 0 was answered: the urgent one still waits
    assert holds.health()["unanswered_reason"]
    holds.resume_due()
    assert consumer.calls[-1] == ("resume", [("dicom.arrived.stat", 0, -1001)])
    holds.answered({("dicom.arrived.stat", 0)})
    assert holds.health() == {"unanswered_for_s": 0.0, "healthy": True}


def test_a_revoked_partition_drops_its_holds_on_every_topic() -> None:
    holds = PartitionHolds(RecordingConsumer(), "image.decoded")
    holds.hold(1, 3, "no answer")
    holds.hold(1, 9, "no answer", topic="image.decoded.stat")
    holds.hold(2, 4, "no answer")
    holds.drop([1])
    assert not holds.is_held(1) and not holds.is_held(1, "image.decoded.stat") and holds.is_held(2)
