"""DICOM PS3.15 Annex E: the Basic Application Level Confidentiality Profile and its retain options.

The actions come from `deidentify_table.py`, Table E.1-1 generated from the table
idiscore ships (every row of the Basic Profile column and of the option columns;
`deidentify_table.STANDARD` records which edition). `deidentify_dataset` applies
them at every nesting level, so a sequence gets the same X, Z and D as a
top-level attribute:

- X removes the element (a sequence with all its items), Z empties it (a sequence
  becomes zero items), D replaces it with a dummy of its VR; a sequence under D
  keeps its items, with every text, date, time and person value in them replaced
  by a dummy and every UID remapped, recursively (GraphicAnnotationSequence >
  TextObjectSequence keeps its geometry, not its text).
- U remaps a UID with a keyed hash: the same input UID always maps to the same
  output UID under one key (a study stays a study across files and runs), and to
  an unrelated one under another key. On a sequence (X/Z/U*) the items are kept
  and cleaned, so their references point at the remapped instances.
- Where the table offers a choice that depends on the IOD's attribute type
  (X/Z, X/D, Z/D, X/Z/D, X/Z/U*), the choice valid for any type is taken:
  Z over X, D over Z, U over X/Z, so the output stays a valid instance.

Beyond the table, on the side of privacy (E.1.1 asks to remove what is not known
to be safe): private elements are removed (the profile's own row); an element
the table does not list is removed when its VR holds free text or a person
(LT, ST, UT, UC, PN), an AE title (the File Meta's Source AE Title names a
station), a date or a time (DA, DT, TM), or is unknown (UN); every
other unlisted UI value that is not a UID registered in PS3.6 is remapped.
Unlisted short strings (LO, SH), code strings and numbers are kept: Manufacturer,
BodyPartExamined, Rows are what the image needs.

The retain options (PS3.15 E.3) are explicit: an option applies its column's K
rows (its C rows stay at the Basic Profile's action, as this module does not
clean free text). Each applied option is named in DeidentificationMethod and
coded in DeidentificationMethodCodeSequence (CID 7050). Pixel data is kept as it
is; burned-in text is not looked for (see docs/ingest.md).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from types import MappingProxyType

import pydicom
from pydicom.config import disable_value_validation
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import UID_dictionary
from radstream.services.deidentify_table import (
    METHODS,
    PATTERN_ACTIONS,
    SOURCE,
    TAG_ACTIONS,
)

DEID_KEY_ENV = "RADSTREAM_DEID_KEY"
METHOD = "PS3.15 Annex E Basic Profile; UIDs HMAC-SHA256 2.25"  # LO: at most 64 characters
BASIC = "basic_profile"

# One choice per action for any attribute type (see the module docstring).
_RESOLVED = {"X/Z": "Z", "X/D": "D", "Z/D": "D", "X/Z/D": "D", "X/Z/U*": "U", "C": "D"}

FREE_TEXT_VRS = frozenset({"LT", "ST", "UT", "UC", "PN"})
DATE_TIME_VRS = frozenset({"DA", "DT", "TM"})
# Inside a sequence under D: these get a dummy, UIDs are remapped, the rest (CS, numbers, bytes) is kept.
DUMMIED_IN_SEQUENCE_VRS = frozenset({"AE", "AS", "LO", "SH", "UR"}) | FREE_TEXT_VRS | DATE_TIME_VRS

_DUMMY_TEXT = "ANONYMIZED"
_DUMMY_BY_VR: Mapping[str, object] = MappingProxyType({
    "AE": "ANONYMOUS", "AS": "000Y", "CS": "ANONYMIZED", "DA": "19000101", "DT": "19000101000000",
    "TM": "000000", "DS": "0", "IS": "0", "PN": _DUMMY_TEXT, "LO": _DUMMY_TEXT, "LT": _DUMMY_TEXT,
    "SH": _DUMMY_TEXT, "ST": _DUMMY_TEXT, "UT": _DUMMY_TEXT, "UC": _DUMMY_TEXT, "UR": "http://example.invalid",
    "FL": 0.0, "FD": 0.0, "SL": 0, "SS": 0, "UL": 0, "US": 0, "SV": 0, "UV": 0, "AT": 0,
    "OB": b"\x00\x00", "OW": b"\x00\x00", "OD": b"\x00" * 8, "OF": b"\x00" * 4, "OL": b"\x00" * 4,
    "OV": b"\x00" * 8, "UN": b"\x00\x00",
})


class DeidentifyError(ValueError):
    """One file could not be de-identified (not DICOM, unreadable): the reason, one line."""


@dataclass(frozen=True)
class RetainOptions:
    """The PS3.15 E.3 options this module supports; each field names its Table E.1-1 column."""

    retain_uids: bool = False  # 113110 Retain UIDs
    retain_device_identity: bool = False  # 113109
    retain_institution_identity: bool = False  # 113112
    retain_patient_characteristics: bool = False  # 113108
    retain_full_dates: bool = False  # 113106 Retain Longitudinal Temporal Information with Full Dates

    def columns(self) -> list[str]:
        """The Table E.1-1 columns switched on, in the table's order."""
        chosen = {OPTION_COLUMNS[f.name] for f in fields(self) if getattr(self, f.name)}
        return [name for name in METHODS if name in chosen]


OPTION_COLUMNS: Mapping[str, str] = MappingProxyType({
    "retain_uids": "retain_uid",
    "retain_device_identity": "retain_device_id",
    "retain_institution_identity": "retain_institution_id",
    "retain_patient_characteristics": "retain_patient_characteristics",
    "retain_full_dates": "retain_full_dates",
})


def deid_key_from_env(env: Mapping[str, str] | None = None) -> bytes | None:
    """The one reader of this module's setting: RADSTREAM_DEID_KEY (no default; required)."""
    value = (os.environ if env is None else env).get(DEID_KEY_ENV, "")
    return value.encode() if value else None


@dataclass(frozen=True)
class UIDRemapper:
    """HMAC-SHA256 of the UID under `key`, first 128 bits as a '2.25.<int>' UID (PS3.5 B.2)."""

    key: bytes

    def __call__(self, uid: str) -> str:
        uid = str(uid).strip().rstrip("\x00")
        if not uid or uid in UID_dictionary:
            return uid  # registered UIDs (classes, syntaxes) identify no one
        digest = hmac.new(self.key, uid.encode("ascii", "replace"), hashlib.sha256).digest()
        return f"2.25.{int.from_bytes(digest[:16], 'big')}"


def resolved_action(action: str) -> str:
    return _RESOLVED.get(action, action)


# The Basic Profile column, every choice resolved (tag -> one of D Z X K U).
BASIC_PROFILE: Mapping[int, str] = MappingProxyType({
    tag: resolved_action(action) for tag, action in TAG_ACTIONS[BASIC].items()
})


def _pattern(text: str) -> tuple[int, int]:
    """'60xx4000' -> (mask, value) over the 32-bit tag."""
    mask = int("".join("0" if c == "x" else "f" for c in text), 16)
    return mask, int(text.replace("x", "0"), 16)


_BASIC_PATTERNS: tuple[tuple[int, int, str], ...] = tuple(
    (*_pattern(key), resolved_action(action)) for key, action in PATTERN_ACTIONS[BASIC] if key != "private"
)
_PRIVATE_ACTION = dict(PATTERN_ACTIONS[BASIC])["private"]


@dataclass(frozen=True)
class Profile:
    """The actions to apply: the Basic Profile with the chosen options' K rows over it."""

    actions: Mapping[int, str]
    options: RetainOptions
    remap: UIDRemapper | None  # None under retain_uids

    @classmethod
    def build(cls, remap: UIDRemapper | None, options: RetainOptions = RetainOptions()) -> Profile:
        actions = dict(BASIC_PROFILE)
        for column in options.columns():
            actions.update({tag: "K" for tag, action in TAG_ACTIONS[column].items() if action == "K"})
        if remap is None and not options.retain_uids:
            raise ValueError("a UID remapping key is needed unless UIDs are retained")
        return cls(MappingProxyType(actions), options, None if options.retain_uids else remap)

    def uid(self, value: str) -> str:
        return value if self.remap is None else self.remap(value)


def deidentify_dataset(ds: Dataset, remap: UIDRemapper | None,
                       options: RetainOptions = RetainOptions()) -> Dataset:
    """Apply the profile to `ds` in place (file meta included) and return it."""
    profile = Profile.build(remap, options)
    _clean(ds, profile)
    file_meta = getattr(ds, "file_meta", None)
    if file_meta is not None:
        _clean(file_meta, profile)
        if "SOPInstanceUID" in ds:
            file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    columns = options.columns()
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = [METHOD, *(METHODS[c][1][:64] for c in columns)] if columns else METHOD
    codes = []
    for column in (BASIC, *columns):
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = METHODS[column][0], "DCM", METHODS[column][1]
        codes.append(code)
    ds.DeidentificationMethodCodeSequence = Sequence(codes)
    ds.LongitudinalTemporalInformationModified = "UNMODIFIED" if options.retain_full_dates else "REMOVED"
    return ds


def _clean(ds: Dataset, profile: Profile) -> None:
    for tag in list(ds.keys()):
        element = ds[tag]
        action = _action_for(tag, element, profile)
        if action == "X":
            del ds[tag]
        elif action == "Z":
            element.value = Sequence() if element.VR == "SQ" else _empty(element.VR)
        elif action == "D":
            if element.VR == "SQ":
                for item in element.value:
                    _dummy_item(item, profile)
            else:
                element.value = profile.uid(str(element.value)) if element.VR == "UI" else _dummy(element.VR)
        elif element.VR == "UI":
            _remap_element(element, profile)
        elif element.VR == "SQ":
            for item in element.value:
                _clean(item, profile)


def _dummy_item(ds: Dataset, profile: Profile) -> None:
    """A sequence item under D: text, dates and names dummied, UIDs remapped, private removed; recursively."""
    for tag in list(ds.keys()):
        element = ds[tag]
        if tag.is_private:
            del ds[tag]
        elif element.VR == "SQ":
            for item in element.value:
                _dummy_item(item, profile)
        elif element.VR == "UI":
            _remap_element(element, profile)
        elif element.VR in DUMMIED_IN_SEQUENCE_VRS and element.value not in (None, ""):
            element.value = _dummy(element.VR)
        elif element.VR == "UN":
            del ds[tag]


def _action_for(tag: BaseTag, element: DataElement, profile: Profile) -> str:
    action = profile.actions.get(int(tag))
    if action is not None:
        return action
    if tag.is_private:
        return _PRIVATE_ACTION
    for mask, value, pattern_action in _BASIC_PATTERNS:
        if int(tag) & mask == value:
            return pattern_action
    if element.VR in FREE_TEXT_VRS or element.VR in ("AE", "UN"):
        return "X"  # unlisted free text, a name, an AE title (a station), or a value whose VR is unknown
    if element.VR in DATE_TIME_VRS and not profile.options.retain_full_dates:
        return "X"  # unlisted dates and times are longitudinal information
    return "K"


def _remap_element(element: DataElement, profile: Profile) -> None:
    if element.VM > 1:
        element.value = [profile.uid(uid) for uid in element.value]
    elif element.value:
        element.value = profile.uid(element.value)


def _dummy(vr: str) -> object:
    return _DUMMY_BY_VR.get(vr, b"")


def _empty(vr: str) -> object:
    return b"" if vr.startswith("O") or vr == "UN" else None if vr in ("US", "SS", "UL", "SL", "FL", "FD", "SV", "UV", "AT") else ""


def deidentify_file(src: Path, dst: Path, remap: UIDRemapper | None,
                    options: RetainOptions = RetainOptions()) -> None:
    """Read `src` (a Part 10 file), apply the profile, write `dst` in the original transfer syntax.

    pydicom's value validation is off meanwhile: it logs and warns with the original values.
    """
    with disable_value_validation():
        _deidentify_file(src, dst, remap, options)


def _deidentify_file(src: Path, dst: Path, remap: UIDRemapper | None, options: RetainOptions) -> None:
    try:
        ds = pydicom.dcmread(src)
    except (InvalidDicomError, EOFError, ValueError, KeyError, TypeError) as exc:
        raise DeidentifyError(f"{src}: not a readable DICOM file ({type(exc).__name__}: {exc})") from None
    except OSError as exc:
        raise DeidentifyError(f"{src}: {exc.strerror or exc}") from None
    try:
        deidentify_dataset(ds, remap, options)
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError) as exc:
        # the type only: a message about a malformed element may quote its value
        raise DeidentifyError(f"{src}: an element could not be read or replaced ({type(exc).__name__})") from None
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        ds.save_as(dst, enforce_file_format=True)
    except AttributeError:  # pydicom's word for incomplete File Meta
        raise DeidentifyError(f"{src}: no Media Storage SOP Class or Instance UID, in the File Meta or the data"
                              " set, so it cannot be written as a Part 10 file") from None
    except (ValueError, TypeError) as exc:
        raise DeidentifyError(f"{src}: could not be written ({type(exc).__name__})") from None


def deidentify_paths(src: Path, dst: Path, remap: UIDRemapper | None,
                     options: RetainOptions = RetainOptions()) -> tuple[int, list[str]]:
    """A file to a file (or into a folder), or a folder tree to a mirrored tree. Returns (written, errors)."""
    if src.is_dir():
        pairs = [(f, dst / f.relative_to(src)) for f in sorted(src.rglob("*")) if f.is_file()]
    elif src.is_file():
        pairs = [(src, dst / src.name if dst.is_dir() else dst)]
    else:
        raise DeidentifyError(f"{src}: no such file or folder")
    written, errors = 0, []
    for source, target in pairs:
        try:
            deidentify_file(source, target, remap, options)
            written += 1
        except DeidentifyError as exc:
            errors.append(str(exc))
    return written, errors


__all__ = ["BASIC_PROFILE", "DEID_KEY_ENV", "METHOD", "SOURCE", "DeidentifyError", "Profile", "RetainOptions",
           "UIDRemapper", "deid_key_from_env", "deidentify_dataset", "deidentify_file", "deidentify_paths"]
