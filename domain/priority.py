"""Which studies are urgent: the STAT lane's one rule (D-044).

A study is urgent ("stat") when its header says so (Requested Procedure Priority STAT or HIGH,
PS3.3 C.4.11: the enumerated values STAT, HIGH, ROUTINE, MEDIUM, LOW), when its site is one
the deployment marks urgent (an emergency department's modality), or when the sender says so
(`radstream publish --priority stat`). The header value is read under the allow-list's rules
(docs/security.md): a CS of at most 16 characters in the enumerated vocabulary, else ignored;
only the derived priority travels, never the value.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from radstream.domain.dicom.vocabulary import checked_code_string

ROUTINE = "routine"
STAT = "stat"
PRIORITIES = (ROUTINE, STAT)
URGENT_REQUESTED_PRIORITIES = frozenset({"STAT", "HIGH"})


def requested_procedure_priority(ds: Any) -> str | None:
    """(0040,1003) at the top level, else in the first Request Attributes Sequence item that has it;
    None when absent or not a valid enumerated value."""
    candidates = [ds.get("RequestedProcedurePriority")]
    for item in ds.get("RequestAttributesSequence") or []:
        candidates.append(item.get("RequestedProcedurePriority"))
    for value in candidates:
        if value in (None, ""):
            continue
        checked, _ = checked_code_string("RequestedProcedurePriority", str(value).strip())
        if checked is not None:
            return checked
    return None


def priority_of(requested: str | None, site: str, urgent_sites: Iterable[str] = (),
                sender: str | None = None) -> str:
    """"stat" when the sender, the site rule or the header says urgent; else "routine"."""
    if sender is not None:
        if sender not in PRIORITIES:
            raise ValueError(f"priority must be one of {', '.join(PRIORITIES)}, not {sender!r}")
        if sender == STAT:
            return STAT
    if site and site in set(urgent_sites):
        return STAT
    return STAT if requested in URGENT_REQUESTED_PRIORITIES else ROUTINE
