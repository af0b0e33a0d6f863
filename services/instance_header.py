"""The header of an untrusted instance, read within bounds: size cap, bounded inflate, bounded worker.

Every ingest path (C-STORE, STOW-RS, pull) hands the bytes it received to
`InstanceSink.accept`, which needs three UIDs before it may store anything. Those
bytes are the sender's: a dataset over the cap (RADSTREAM_RECEIVER_MAX_MB) is refused
from its length; a Deflated one (PS3.5 A.5) is first measured by a bounded inflate
(domain/dicom/deflate.py) and refused when it would inflate past the cap. Only then
does pydicom parse it, and in production that parse runs in a `BoundedWorker`
(streams/isolation.py) under a memory and a time limit, so a parser bug or an
allocation the checks missed kills a worker, never the receiver.
"""

from __future__ import annotations

import queue
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.filereader import _read_file_meta_info, read_preamble
from pydicom.uid import DeflatedExplicitVRLittleEndian
from radstream.domain.dicom.deflate import InflateLimitExceeded, inflated_size
from radstream.domain.errors import StageError
from radstream.domain.priority import requested_procedure_priority
from radstream.services.publish import HEADER_TAGS, Instance
from radstream.streams.isolation import BoundedWorker

MB = 1024 * 1024
DEFAULT_MAX_DATASET_MB = 512
CANNOT_UNDERSTAND = 0xC000  # not a parsable instance with the three UIDs
DATASET_TOO_LARGE = 0xA701  # Refused: Out of Resources class; permanent for this instance (see docs/ingest.md)


@dataclass(frozen=True)
class InstanceHeader:
    """What the sink needs from the header: the UIDs and the study's expected count, when sent."""

    instance: Instance
    expected: int | None


@dataclass(frozen=True)
class HeaderRefusal:
    """Why an instance is refused before anything is stored: the C-STORE status and a line for the log."""

    status: int
    reason: str


def read_header(encoded: bytes, max_bytes: int) -> InstanceHeader | HeaderRefusal:
    """The header, or the refusal; never raises for bad input. Module-level: it runs in the worker."""
    if len(encoded) > max_bytes:
        return HeaderRefusal(DATASET_TOO_LARGE, f"dataset of {len(encoded)} bytes is over the cap of {max_bytes >> 20} MiB")
    try:
        transfer_syntax, offset = _file_meta(encoded)
        if transfer_syntax == DeflatedExplicitVRLittleEndian:
            inflated_size(encoded[offset:], max_bytes - offset)
        ds = pydicom.dcmread(BytesIO(encoded), stop_before_pixels=True,
                             specific_tags=[*HEADER_TAGS, "NumberOfStudyRelatedInstances"])
        study, series, sop = str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)
    except InflateLimitExceeded:
        return HeaderRefusal(DATASET_TOO_LARGE, f"the deflated dataset inflates past the cap of {max_bytes >> 20} MiB")
    except (InvalidDicomError, AttributeError, EOFError, OSError, ValueError, KeyError, TypeError) as exc:
        return HeaderRefusal(CANNOT_UNDERSTAND,
                             f"not a DICOM instance with Study/Series/SOP Instance UIDs ({type(exc).__name__})")
    if not (study and series and sop):
        return HeaderRefusal(CANNOT_UNDERSTAND, "empty Study/Series/SOP Instance UID")
    return InstanceHeader(Instance(Path(sop), study, series, sop, requested_procedure_priority(ds)),
                          _expected_count(ds.get("NumberOfStudyRelatedInstances")))


def _file_meta(encoded: bytes) -> tuple[str, int]:
    """The File Meta's transfer syntax and where the dataset starts (a Part 10 file, preamble included)."""
    stream = BytesIO(encoded)
    read_preamble(stream, False)
    meta = _read_file_meta_info(stream)
    return str(meta.get("TransferSyntaxUID", "")), stream.tell()


def _expected_count(count: object) -> int | None:
    try:
        value = int(str(count)) if count not in (None, "") else 0
    except (TypeError, ValueError):
        return None
    return value if value > 0 else None


class HeaderReader:
    """`read_header` in-process (`workers=0`: tests, tools) or in a pool of bounded worker processes.

    One worker per concurrent association at most: a call borrows a worker and returns
    it, so associations never wait on each other's parse. A worker that times out or
    dies is replaced by BoundedWorker itself.
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_DATASET_MB * MB, workers: int = 0, timeout_s: float = 30.0,
                 memory_bytes: int | None = None) -> None:
        self.max_bytes = max_bytes
        # The worker holds the bytes, pickled once more, and pydicom's inflated copy: three times the cap.
        self.memory_bytes = memory_bytes if memory_bytes is not None else 3 * max_bytes + 512 * MB
        self._pool: queue.Queue[BoundedWorker] = queue.Queue()
        self._workers = [BoundedWorker(timeout_s, self.memory_bytes) for _ in range(workers)]
        for worker in self._workers:
            self._pool.put(worker)

    def read(self, encoded: bytes) -> InstanceHeader | HeaderRefusal:
        if len(encoded) > self.max_bytes:  # refused here: not even copied to a worker
            return read_header(encoded, self.max_bytes)
        if not self._workers:
            return read_header(encoded, self.max_bytes)
        worker = self._pool.get()
        try:
            return worker.call(read_header, encoded, self.max_bytes)
        except StageError as exc:  # the worker hit its memory or time limit, or died
            return HeaderRefusal(CANNOT_UNDERSTAND, f"header not readable within the worker's limits: {exc.reason}")
        finally:
            self._pool.put(worker)

    def close(self) -> None:
        for worker in self._workers:
            worker.close()
