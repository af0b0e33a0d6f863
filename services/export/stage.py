"""What every export edge shares: final results in, the patient read back, one send, no outputs.

A subclass names its target and implements `send(result, context)`: it maps the result
to the target's message (a pure function in its own module) and classifies the peer's
answer. Success returns; a refusal raises a PermanentError whose reason carries the
peer's status (the runtime dead-letters it); no answer raises a TransientError, which
the runtime retries until answered (streams/holds.py), committing nothing meanwhile.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from radstream.domain.dicom.patient import PatientContext
from radstream.domain.errors import Skipped
from radstream.services.dlq import replayed_for_another
from radstream.services.export.patient_context import patient_context
from radstream.streams.blobstore import BlobStore
from radstream.streams.kafka.topics import STUDY_RESULTS
from radstream.streams.stage import Inbound, Output, Stage


class ExportStage(Stage):
    """study.results -> one hospital system. Subclasses set `name` ("export-<target>": the consumer
    group is radstream-export-<target>) and `target`."""

    target: ClassVar[str]
    input_topic = STUDY_RESULTS
    max_batch = 1  # one result, one peer round trip: a hold never strands a batch behind it
    retry_until_answered = True

    def __init__(self, store: BlobStore, unhealthy_after_s: float = 300.0) -> None:
        self.store = store
        self.unhealthy_after_s = unhealthy_after_s
        self.exported = 0
        self.last_exported_at: float | None = None

    def process(self, event: Inbound) -> list[Output]:
        result = event.value
        if replayed_for_another(event.headers, self.name):
            raise Skipped(f"study {result['study_uid']}: a dead letter replayed for another stage", code="replayed_for_other")
        if not result["final"]:
            raise Skipped(f"study {result['study_uid']}: an in-progress update is not exported", code="not_final")
        self.send(result, patient_context(self.store, result))
        self.exported += 1
        self.last_exported_at = time.time()
        return []

    def send(self, result: dict[str, Any], context: PatientContext) -> None:
        raise NotImplementedError

    def health(self) -> dict[str, Any]:
        return {"target": self.target, "exported": self.exported, "last_exported_at": self.last_exported_at}
