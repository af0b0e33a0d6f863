"""What a PACS's answer to a store means: the C-STORE statuses of PS3.4 Annex B.2.3 (and PS3.7 C),
which STOW-RS reuses as FailureReason and WarningReason codes (PS3.18 Table 10.5.3-1). Pure.

Three kinds of answer matter to a sender:
- success (0x0000) and the warnings (0xB000 coercion of data elements, 0xB006 elements
  discarded, 0xB007 data set does not match SOP class, any other 0xBxxx, and the general
  warnings 0x0001, 0x0107, 0x0116): the instance is stored;
- a refusal (0xA7xx out of resources, 0xA9xx data set does not match SOP class, 0xCxxx
  cannot understand, and the general failures such as 0x0122 SOP class not supported or
  0x0124 not authorized): the peer answered no, and sending the same bytes again would get
  the same answer; it is recorded with the code and its meaning, never retried in a loop.
"""

from __future__ import annotations

from dataclasses import dataclass

SUCCESS = 0x0000
WARNINGS = {
    0xB000: "Warning: Coercion of Data Elements",
    0xB006: "Warning: Elements Discarded",
    0xB007: "Warning: Data Set does not match SOP Class",
    # General warnings (PS3.7 Annex C): the operation was performed.
    0x0001: "Warning: Requested optional Attributes are not supported",
    0x0107: "Warning: Attribute list error",
    0x0116: "Warning: Attribute Value out of range",
}
# General failure statuses (PS3.7 Annex C) a Storage SCP may answer.
FAILURES = {
    0x0110: "Failure: Processing failure",
    0x0111: "Failure: Duplicate SOP Instance",
    0x0117: "Failure: Invalid SOP Instance",
    0x0118: "Failure: No such SOP Class",
    0x0119: "Failure: Class-Instance conflict",
    0x0120: "Failure: Missing Attribute",
    0x0121: "Failure: Missing Attribute Value",
    0x0122: "Refused: SOP Class not supported",
    0x0124: "Refused: Not authorized",
    0x0210: "Failure: Duplicate invocation",
    0x0211: "Failure: Unrecognized operation",
    0x0212: "Failure: Mistyped argument",
    0x0213: "Refused: Resource limitation",
    0xFE00: "Cancel",
}


@dataclass(frozen=True)
class StoreStatus:
    """One status of a store answer, with the standard's meaning."""

    code: int

    @property
    def stored(self) -> bool:
        """Success or a warning: the peer holds the instance."""
        return self.code == SUCCESS or self.code in WARNINGS or self.code & 0xF000 == 0xB000

    @property
    def meaning(self) -> str:
        code = self.code
        if code == SUCCESS:
            return "Success"
        if code in WARNINGS:
            return WARNINGS[code]
        if code in FAILURES:
            return FAILURES[code]
        if code & 0xFF00 == 0xA700:
            return "Refused: Out of Resources"
        if code & 0xFF00 == 0xA900:
            return "Error: Data Set does not match SOP Class"
        if code & 0xF000 == 0xC000:
            return "Error: Cannot understand"
        if code & 0xF000 == 0xB000:
            return "Warning"
        return "Failure (a status the standard does not define for storage)"

    def __str__(self) -> str:
        return f"0x{self.code:04X} {self.meaning}"
