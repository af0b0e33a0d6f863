"""The one allow-list of attributes that may leave the decode stage.

De-identification here is by construction: `extract_metadata` reads only the
keywords listed below, so a new PHI-bearing attribute in some vendor's files can
never leak by being forgotten in a delete list. UIDs and technical metadata only;
no names, IDs, dates, accession numbers, institutions or free text.
Adding a key is a privacy decision: review it against PS3.15 Annex E first.

Being on the list is not enough: each text value is checked against its VR and,
for BodyPartExamined, ViewPosition and the lateralities, against the standard's
terms (`vocabulary.py`). A value that fails is dropped with a note in Repairs
that names the attribute, its VR and its length, never the value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from radstream.domain.dicom.vocabulary import checked_code_string, checked_long_string

MetadataValue = str | float | int | None
Metadata = dict[str, MetadataValue]


def _text(value: object) -> str:
    return str(value).strip()


def _int(value: object) -> int:
    return int(value)  # type: ignore[call-overload]


def _first_float(value: object) -> float:
    """Multi-valued attributes (e.g. several windows): the first value is the default view."""
    if isinstance(value, (MultiValue, list, tuple)):
        value = value[0]
    return float(value)  # type: ignore[arg-type]


# keyword -> how to turn its value into one scalar. Everything else is dropped.
ALLOWED_ATTRIBUTES: Mapping[str, Callable[[object], MetadataValue]] = MappingProxyType(
    {
        "StudyInstanceUID": _text,
        "SeriesInstanceUID": _text,
        "SOPInstanceUID": _text,
        "SOPClassUID": _text,
        "Modality": _text,
        "BodyPartExamined": _text,
        "ViewPosition": _text,
        "ImageLaterality": _text,
        "Laterality": _text,
        "Manufacturer": _text,
        "ManufacturerModelName": _text,
        "Rows": _int,
        "Columns": _int,
        "NumberOfFrames": _int,
        "PhotometricInterpretation": _text,
        "BitsStored": _int,
        "WindowCenter": _first_float,
        "WindowWidth": _first_float,
    }
)

# The text values' checks (VR charset and length, and the defined terms where the standard has them).
CHECKED_TEXT: Mapping[str, Callable[[str, str], tuple[str | None, str | None]]] = MappingProxyType({
    **{keyword: checked_code_string for keyword in (
        "Modality", "BodyPartExamined", "ViewPosition", "ImageLaterality", "Laterality", "PhotometricInterpretation")},
    "Manufacturer": checked_long_string,
    "ManufacturerModelName": checked_long_string,
})

# Pixel spacing is two values; the detector plane one is used only when the
# patient plane one is absent or unusable, and the source is recorded so that a
# consumer knows whether magnification was corrected for (PS3.3 10.7.1.3).
PIXEL_SPACING_SOURCES: tuple[str, ...] = ("PixelSpacing", "ImagerPixelSpacing")

# The header repairs decode made and the values the checks above dropped ("; "-joined notes,
# None when none): technical notes that name attributes, VRs and lengths, never other values.
REPAIRS_KEY = "Repairs"

METADATA_KEYS: tuple[str, ...] = (
    *ALLOWED_ATTRIBUTES,
    "TransferSyntaxUID",
    "PixelSpacingRow",
    "PixelSpacingColumn",
    "PixelSpacingSource",
    REPAIRS_KEY,
)


def extract_metadata(ds: Dataset, repairs: Sequence[str] = ()) -> Metadata:
    """The allow-listed attributes of `ds`, each a scalar or None when absent or malformed.

    `repairs` are the header repair notes (see `repairs.py`), kept under REPAIRS_KEY with the
    notes of the text checks (CHECKED_TEXT).

    A malformed technical value becomes None rather than failing the image: the
    pixels are still usable, and None tells the consumer the value is unknown.
    """
    metadata: Metadata = {keyword: _read(ds, keyword, convert) for keyword, convert in ALLOWED_ATTRIBUTES.items()}
    notes = list(repairs)
    for keyword, check in CHECKED_TEXT.items():
        value = metadata[keyword]
        if isinstance(value, str):
            metadata[keyword], note = check(keyword, value)
            if note is not None:
                notes.append(note)
    file_meta = getattr(ds, "file_meta", None)
    syntax = file_meta.get("TransferSyntaxUID") if file_meta is not None else None
    metadata["TransferSyntaxUID"] = _text(syntax) if syntax else None
    metadata.update(pixel_spacing(ds))
    metadata[REPAIRS_KEY] = "; ".join(notes) or None
    return metadata


def pixel_spacing(ds: Dataset) -> Metadata:
    """Row and column spacing in mm and which attribute they came from (None if neither is usable).

    Zero spacing (as some CR plates write) means unknown, not zero millimetres.
    """
    for keyword in PIXEL_SPACING_SOURCES:
        pair = _spacing_pair(ds.get(keyword))
        if pair is not None:
            return {"PixelSpacingRow": pair[0], "PixelSpacingColumn": pair[1], "PixelSpacingSource": keyword}
    return {"PixelSpacingRow": None, "PixelSpacingColumn": None, "PixelSpacingSource": None}


def _spacing_pair(value: object) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        row, column = (float(v) for v in value)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return None
    if row <= 0 or column <= 0:
        return None
    return row, column


def _read(ds: Dataset, keyword: str, convert: Callable[[object], MetadataValue]) -> MetadataValue:
    """One attribute through its converter; absent, empty or unparsable -> None."""
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    try:
        result = convert(value)
    except (TypeError, ValueError, IndexError):
        return None
    return None if result == "" else result
