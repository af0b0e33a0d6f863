"""Which blobs retention may delete: pure, so the rule is tested without a store or a broker.

Raw blobs (the DICOM a sender gave us, in the store's `raw/` area) go once every study whose
arrivals name them has a final result older than the raw retention (and, where export groups
are configured, once each of them has consumed that result); a raw blob no arrival names is
kept, whatever its age. Blobs in `derived/` (decoded pixels, display PNGs, tensors) go by their
own age: they can be made again from the raw blob. Blobs from before the split (no area) are
told apart by what names them, as before D-029: named by an arrival is raw, anything else derived.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """`90s`, `45m`, `72h`, `30d` as seconds; anything else is a ValueError naming the form."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"not a duration: {text!r} (a number and s, m, h or d, e.g. 72h, 30d)")
    return float(m.group(1)) * _UNIT_S[m.group(2)]


@dataclass(frozen=True)
class StoredBlob:
    sha256: str
    path: str
    size_bytes: int
    modified_at: float  # epoch seconds
    area: str | None = None  # "raw", "derived", or None for a blob from before the split


@dataclass(frozen=True)
class FinalResult:
    """The latest final result of a study: when it was written and whether every configured
    export has consumed it."""

    at: float
    exported: bool = True


@dataclass(frozen=True)
class Deletion:
    blob: StoredBlob
    area: str  # "raw" or "derived"
    reason: str


@dataclass(frozen=True)
class RetentionPlan:
    deletions: list[Deletion]
    kept_raw_not_final: int  # raw blobs of a study without a final result
    kept_raw_recent: int  # final, but younger than the raw retention, or not yet exported
    kept_derived_recent: int
    kept_raw_dead_lettered: int = 0  # its arrival waits in dicom.arrived.dlq for a replay
    kept_raw_unnamed: int = 0  # in raw/, but no arrival on the topic names it (aged out, or a stray)


def plan_retention(stored: Iterable[StoredBlob], raw_studies: Mapping[str, set[str]],
                   finals: Mapping[str, FinalResult], now: float, raw_after_s: float,
                   derived_after_s: float, dead_lettered: frozenset[str] = frozenset()) -> RetentionPlan:
    """`raw_studies`: sha256 of each raw blob -> the studies whose arrivals name it;
    `dead_lettered`: raw blobs whose arrival sits in the DLQ, kept so that `dlq replay` works."""
    deletions: list[Deletion] = []
    not_final = recent = derived_recent = dead = unnamed = 0
    for blob in stored:
        studies = raw_studies.get(blob.sha256)
        if blob.area == "derived" or (blob.area is None and studies is None):
            age = now - blob.modified_at
            if age >= derived_after_s:
                deletions.append(Deletion(blob, "derived", f"derived, {_human(age)} old"))
            else:
                derived_recent += 1
            continue
        if blob.sha256 in dead_lettered:
            dead += 1
            continue
        if studies is None:  # raw/ blob whose arrival left dicom.arrived: never guess it final
            unnamed += 1
            continue
        results = [finals.get(s) for s in studies]
        if any(r is None for r in results):
            not_final += 1
            continue
        if any(now - r.at < raw_after_s or not r.exported for r in results if r is not None):
            recent += 1
            continue
        oldest_final = min(now - r.at for r in results if r is not None)
        deletions.append(Deletion(blob, "raw", f"study final {_human(oldest_final)} ago"))
    return RetentionPlan(deletions, not_final, recent, derived_recent, dead, unnamed)


def _human(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"
