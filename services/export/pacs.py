"""The PACS export stages: a final result stored with its study, as a TID 1500 SR and one GSPS per image.

`export-dicom` sends by C-STORE (services/export/c_store.py), `export-stow` by STOW-RS
(services/export/stow_rs.py). Both build the same objects (services/export/dicom_objects.py)
from the result, the patient and study read back from the originals, and the SR this
stage stored last for the study as the predecessor (services/export/predecessors.py, in
the stage's changelog). The objects' UIDs derive from the result's idempotency key, so a
redelivery replaces what the PACS holds instead of adding to it.

The SR is remembered only after the PACS took every object: a crash or an unanswered send
before that leaves nothing remembered and nothing committed, and the redelivery builds the
same objects again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from pydicom.dataset import Dataset
from radstream.domain.dicom.patient import PatientContext
from radstream.domain.dicom.uids import DEFAULT_UID_ROOT
from radstream.services.export.c_store import CStoreSender
from radstream.services.export.dicom_objects import dicom_objects, sr_reference
from radstream.services.export.patient_context import original_headers
from radstream.services.export.predecessors import SrHistory
from radstream.services.export.stage import ExportStage
from radstream.services.export.stow_rs import StowSender
from radstream.streams.blobstore import BlobStore
from radstream.streams.state import MemoryStore, StateStore


class PacsExportStage(ExportStage):
    """Builds a result's SR and GSPS objects and stores them; subclasses say how (`store_objects`)."""

    stateful: ClassVar[bool] = True

    def __init__(self, store: BlobStore, state: StateStore | None = None, *, uid_root: str = DEFAULT_UID_ROOT,
                 not_for_clinical_use: Callable[[dict[str, Any]], bool] = lambda result: False,
                 unhealthy_after_s: float = 300.0) -> None:
        super().__init__(store, unhealthy_after_s)
        self.state = state if state is not None else MemoryStore()
        self.history = SrHistory(self.state)
        self.uid_root = uid_root
        self.not_for_clinical_use = not_for_clinical_use
        self.instances_stored = 0

    def send(self, result: dict[str, Any], context: PatientContext) -> None:
        study, key = result["study_uid"], result["idempotency_key"]
        originals = original_headers(self.store, result)
        predecessor = self.history.predecessor_for(study, key)
        objects = dicom_objects(result, context, originals, uid_root=self.uid_root,
                                not_for_clinical_use=self.not_for_clinical_use(result), predecessor=predecessor)
        self.store_objects(study, objects)
        self.instances_stored += len(objects)
        self.history.remember(study, key, sr_reference(objects[0]), predecessor)

    def store_objects(self, study_uid: str, objects: Sequence[Dataset]) -> None:
        raise NotImplementedError

    def health(self) -> dict[str, Any]:
        return {**super().health(), "instances_stored": self.instances_stored}


class CStoreExport(PacsExportStage):
    """`radstream export dicom --to AET@HOST:PORT`: C-STORE SCU, one association per result."""

    name = "export-dicom"
    target = "dicom"

    def __init__(self, store: BlobStore, sender: CStoreSender, state: StateStore | None = None,
                 **options: Any) -> None:
        super().__init__(store, state, **options)
        self.sender = sender

    def store_objects(self, study_uid: str, objects: Sequence[Dataset]) -> None:
        self.sender.store(objects)

    def health(self) -> dict[str, Any]:
        return {**super().health(), "peer": str(self.sender.peer), "calling_ae": self.sender.calling_ae}


class StowExport(PacsExportStage):
    """`radstream export stow --url URL`: one STOW-RS request per result."""

    name = "export-stow"
    target = "stow"

    def __init__(self, store: BlobStore, sender: StowSender, state: StateStore | None = None,
                 **options: Any) -> None:
        super().__init__(store, state, **options)
        self.sender = sender

    def store_objects(self, study_uid: str, objects: Sequence[Dataset]) -> None:
        self.sender.store(study_uid, objects)

    def health(self) -> dict[str, Any]:
        return {**super().health(), "url": self.sender.root}
