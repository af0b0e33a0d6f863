"""What an allow-listed header value may be before it leaves the decode stage.

A value that fails is dropped (None) with a note that names the attribute, its VR
and its length, never the value: a BodyPartExamined of "CHEST DOE JOHANNA" is a
name in the wrong place, and repeating it in a note would carry it onto the bus.

- CS (PS3.5 6.2): uppercase letters, digits, space and underscore, at most 16.
- Vocabularies: BodyPartExamined, the PS3.16 Annex L values (CID 4031, as shipped
  in highdicom's copy of the standard's tables); ViewPosition, the defined terms
  of PS3.3 C.8.11.5.1.1 (DX and CR positioning); Laterality (0020,0060), the
  enumerated R and L of PS3.3 C.7.3.1; ImageLaterality (0020,0062), R, L, U and B
  of PS3.3 C.8.11.2; RequestedProcedurePriority (0040,1003), STAT, HIGH, ROUTINE, MEDIUM
  and LOW of PS3.3 C.4.11.
- LO (Manufacturer, ManufacturerModelName): printable characters, capped at
  LO's 64; longer values are cut, with a note.
"""

from __future__ import annotations

import json
import pkgutil
import re
from collections.abc import Mapping
from types import MappingProxyType


def _body_parts() -> frozenset[str]:
    data = pkgutil.get_data("highdicom", "_standard/anatomic_regions.json")
    if data is None:  # highdicom is a pinned dependency; its standard tables ship with it
        raise FileNotFoundError("highdicom's anatomic_regions.json (PS3.16 Annex L) is missing")
    return frozenset(json.loads(data.decode("utf-8")))


CODE_STRING = re.compile(r"[A-Z0-9 _]{1,16}")
LONG_STRING_MAX = 64
PRINTABLE = re.compile(r"[\x20-\x7e\u00a0-\uffff]*")

BODY_PART_EXAMINED = _body_parts()
VIEW_POSITION = frozenset({"AP", "PA", "LL", "RL", "RLD", "LLD", "RLO", "LLO"})
VOCABULARIES: Mapping[str, frozenset[str]] = MappingProxyType({
    "BodyPartExamined": BODY_PART_EXAMINED,
    "ViewPosition": VIEW_POSITION,
    "Laterality": frozenset({"R", "L"}),
    "ImageLaterality": frozenset({"R", "L", "U", "B"}),
    # PS3.3 C.4.11 (Requested Procedure Module): the arrival's urgency (domain/priority.py)
    "RequestedProcedurePriority": frozenset({"STAT", "HIGH", "ROUTINE", "MEDIUM", "LOW"}),
})


def describe(keyword: str, vr: str, value: object) -> str:
    """'BodyPartExamined (CS, 17 characters)': how a reason names a value without repeating it."""
    length = len(value) if isinstance(value, (str, bytes)) else len(str(value))
    unit = "bytes" if isinstance(value, bytes) else "characters"
    return f"{keyword} ({vr}, {length} {unit})"


def checked_code_string(keyword: str, value: str) -> tuple[str | None, str | None]:
    """(value or None, note or None) for a CS value, against its vocabulary if it has one."""
    if not CODE_STRING.fullmatch(value):
        return None, f"{describe(keyword, 'CS', value)}: not a code string, dropped"
    vocabulary = VOCABULARIES.get(keyword)
    if vocabulary is not None and value not in vocabulary:
        return None, f"{describe(keyword, 'CS', value)}: not a defined term, dropped"
    return value, None


def checked_long_string(keyword: str, value: str) -> tuple[str | None, str | None]:
    """(value or None, note or None) for an LO value: printable, at most 64 characters."""
    if not PRINTABLE.fullmatch(value):
        return None, f"{describe(keyword, 'LO', value)}: control characters, dropped"
    if len(value) > LONG_STRING_MAX:
        return value[:LONG_STRING_MAX], f"{describe(keyword, 'LO', value)}: cut to {LONG_STRING_MAX}"
    return value, None
