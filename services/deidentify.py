"""DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile.

`BASIC_PROFILE` is the standard's Table E.1-1 (Basic Profile column) as data:
keyword -> action. `deidentify_dataset` applies it at every nesting level, drops
every private element, and remaps UIDs with a keyed hash, so the same input UID
always maps to the same output UID under one key (a study stays a study across
files and runs) and to an unrelated one under another key.

Actions (PS3.15 E.1.1): D dummy value of the VR, Z zero length, X remove,
K keep (sequences are still cleaned inside), C clean (here: the dummy value, as
we cannot judge free text), U UID remapped. Where the table offers a choice that
depends on the IOD's attribute type (X/Z, X/D, Z/D, X/Z/D, X/Z/U*) we take the
choice that is valid for any type: Z over X, D over Z, U over X/Z, so the
output stays a valid instance.

Beyond the table, on the side of privacy: any element with VR PN that the table
does not name is emptied, and every UI value that is not a UID registered in
PS3.6 (SOP classes, transfer syntaxes, coding schemes) is remapped, so a
referenced instance UID in some module the table does not list cannot leak.
Pixel data is kept as it is; burned-in text is not looked for (see docs/ingest.md).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import pydicom
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import UID_dictionary

DEID_KEY_ENV = "RADSTREAM_DEID_KEY"
METHOD = "PS3.15 Annex E Basic Profile; UIDs HMAC-SHA256 2.25"  # LO: at most 64 characters
BASIC_PROFILE_CODE = ("113100", "DCM", "Basic Application Confidentiality Profile")


def _table(rows: Mapping[str, Iterable[str]]) -> Mapping[str, str]:
    return MappingProxyType({keyword: action for action, keywords in rows.items() for keyword in keywords})


# PS3.15 Table E.1-1, Basic Profile column, grouped by action (as written in the standard).
BASIC_PROFILE: Mapping[str, str] = _table({
    "D": (
        "GraphicAnnotationSequence", "PersonIdentificationCodeSequence", "PersonName", "VerifyingObserverName",
        "VerifyingObserverSequence", "ClinicalTrialSponsorName", "ClinicalTrialProtocolID",
        "ClinicalTrialSubjectID", "ClinicalTrialSubjectReadingID", "ClinicalTrialProtocolEthicsCommitteeName",
    ),
    "Z": (
        "AccessionNumber", "ContentCreatorName", "FillerOrderNumberImagingServiceRequest", "PatientID",
        "PatientBirthDate", "PatientName", "PatientSex", "PlacerOrderNumberImagingServiceRequest",
        "ReferringPhysicianName", "StudyDate", "StudyID", "StudyTime",
        "VerifyingObserverIdentificationCodeSequence", "ClinicalTrialProtocolName", "ClinicalTrialSiteID",
        "ClinicalTrialSiteName", "ClinicalTrialTimePointID", "ClinicalTrialCoordinatingCenterName",
        "ClinicalTrialProtocolEthicsCommitteeApprovalNumber",
    ),
    "X": (
        "AcquisitionComments", "AcquisitionContextSequence", "AcquisitionProtocolDescription",
        "ActualHumanPerformersSequence", "AdditionalPatientHistory", "AddressTrial", "AdmissionID",
        "AdmittingDate", "AdmittingDiagnosesCodeSequence", "AdmittingDiagnosesDescription", "AdmittingTime",
        "Allergies", "Arbitrary", "AuthorObserverSequence", "BranchOfService", "CassetteID",
        "CommentsOnThePerformedProcedureStep", "ConfidentialityConstraintOnPatientDataDescription",
        "ContentCreatorIdentificationCodeSequence", "ContentSequence", "ContributionDescription",
        "CountryOfResidence", "CurrentPatientLocation", "CurveDate", "CurveTime",
        "CustodialOrganizationSequence", "DataSetTrailingPadding", "DerivationDescription",
        "DigitalSignatureUID", "DigitalSignaturesSequence", "DischargeDiagnosisDescription",
        "DistributionAddress", "DistributionName", "EthnicGroup", "ExpectedCompletionDateTime",
        "FrameComments", "GantryID", "GeneratorID", "HumanPerformerName", "HumanPerformerOrganization",
        "IconImageSequence", "IdentifyingComments", "ImageComments", "ImagePresentationComments",
        "ImagingServiceRequestComments", "Impressions", "InstitutionAddress", "InstitutionalDepartmentName",
        "InsurancePlanIdentification", "IntendedRecipientsOfResultsIdentificationSequence",
        "InterpretationApproverSequence", "InterpretationAuthor", "InterpretationDiagnosisDescription",
        "InterpretationIDIssuer", "InterpretationRecorder", "InterpretationText", "InterpretationTranscriber",
        "IssuerOfAdmissionID", "IssuerOfPatientID", "IssuerOfServiceEpisodeID", "LastMenstrualDate", "MAC",
        "MedicalAlerts", "MedicalRecordLocator", "MilitaryRank", "ModifiedAttributesSequence",
        "ModifiedImageDescription", "ModifyingDeviceID", "ModifyingDeviceManufacturer",
        "NameOfPhysiciansReadingStudy", "NamesOfIntendedRecipientsOfResults", "ObservationDateTrial",
        "ObservationTimeTrial", "Occupation", "OriginalAttributesSequence", "OrderCallbackPhoneNumber",
        "OrderEnteredBy", "OrderEntererLocation", "OtherPatientIDs", "OtherPatientIDsSequence",
        "OtherPatientNames", "OverlayDate", "OverlayTime", "ParticipantSequence", "PatientAddress",
        "PatientComments", "PatientState", "PatientTransportArrangements", "PatientAge", "PatientBirthName",
        "PatientBirthTime", "PatientInstitutionResidence", "PatientInsurancePlanCodeSequence",
        "PatientMotherBirthName", "PatientPrimaryLanguageCodeSequence",
        "PatientPrimaryLanguageModifierCodeSequence", "PatientReligiousPreference", "PatientSize",
        "PatientTelephoneNumbers", "PatientWeight", "PerformedLocation", "PerformedProcedureStepDescription",
        "PerformedProcedureStepEndDate", "PerformedProcedureStepEndTime", "PerformedProcedureStepID",
        "PerformedProcedureStepStartDate", "PerformedProcedureStepStartTime", "PerformedStationAETitle",
        "PerformedStationGeographicLocationCodeSequence", "PerformedStationName",
        "PerformedStationNameCodeSequence", "PerformingPhysicianIdentificationSequence",
        "PerformingPhysicianName", "PersonAddress", "PersonTelephoneNumbers",
        "PhysicianApprovingInterpretation", "PhysiciansReadingStudyIdentificationSequence",
        "PhysiciansOfRecord", "PhysiciansOfRecordIdentificationSequence", "PlateID", "PreMedication",
        "PregnancyStatus", "ReasonForTheImagingServiceRequest", "ReasonForStudy",
        "ReferencedDigitalSignatureSequence", "ReferencedPatientAliasSequence", "ReferencedPatientSequence",
        "ReferencedSOPInstanceMACSequence", "ReferringPhysicianAddress",
        "ReferringPhysicianIdentificationSequence", "ReferringPhysicianTelephoneNumbers", "RegionOfResidence",
        "RequestAttributesSequence", "RequestedContrastAgent", "RequestedProcedureComments",
        "RequestedProcedureID", "RequestedProcedureLocation", "RequestingPhysician", "RequestingService",
        "ResponsibleOrganization", "ResponsiblePerson", "ResultsComments", "ResultsDistributionListSequence",
        "ResultsIDIssuer", "ScheduledHumanPerformersSequence", "ScheduledPatientInstitutionResidence",
        "ScheduledPerformingPhysicianIdentificationSequence", "ScheduledPerformingPhysicianName",
        "ScheduledProcedureStepEndDate", "ScheduledProcedureStepEndTime", "ScheduledProcedureStepDescription",
        "ScheduledProcedureStepLocation", "ScheduledProcedureStepStartDate", "ScheduledProcedureStepStartTime",
        "ScheduledStationAETitle", "ScheduledStationGeographicLocationCodeSequence", "ScheduledStationName",
        "ScheduledStationNameCodeSequence", "ScheduledStudyLocation", "ScheduledStudyLocationAETitle",
        "SeriesDescription", "ServiceEpisodeDescription", "ServiceEpisodeID", "SpecialNeeds", "StudyComments",
        "StudyDescription", "StudyIDIssuer", "TextComments", "TextString", "TimezoneOffsetFromUTC",
        "TopicAuthor", "TopicKeywords", "TopicSubject", "TopicTitle", "VerifyingOrganization", "VisitComments",
        "PatientBirthDateInAlternativeCalendar", "PatientDeathDateInAlternativeCalendar",
        "ClinicalTrialTimePointDescription", "SourceApplicationEntityTitle", "SendingApplicationEntityTitle",
        "ReceivingApplicationEntityTitle",
    ),
    "X/Z": ("PatientSexNeutered", "ReferencedStudySequence", "RequestedProcedureDescription", "ReviewerName"),
    "X/D": (
        "AcquisitionDate", "AcquisitionDateTime", "AcquisitionDeviceProcessingDescription", "AcquisitionTime",
        "DetectorID", "InstanceCreationDate", "OperatorIdentificationSequence", "ProtocolName", "SeriesDate",
        "SeriesTime", "EndAcquisitionDateTime",
    ),
    "Z/D": ("ContentDate", "ContentTime", "ContrastBolusAgent"),
    "X/Z/D": (
        "DeviceSerialNumber", "InstanceCreationTime", "InstitutionCodeSequence", "InstitutionName",
        "OperatorsName", "ReferencedPerformedProcedureStepSequence", "StationName",
    ),
    "X/Z/U*": ("ReferencedImageSequence", "SourceImageSequence"),
    "U": (
        "ConcatenationUID", "ContextGroupExtensionCreatorUID", "CreatorVersionUID", "DeviceUID",
        "DimensionOrganizationUID", "DoseReferenceUID", "FailedSOPInstanceUIDList", "FiducialUID",
        "FrameOfReferenceUID", "InstanceCreatorUID", "IrradiationEventUID", "LargePaletteColorLookupTableUID",
        "MediaStorageSOPInstanceUID", "ObservationUID", "ObservationSubjectUIDTrial",
        "ReferencedFrameOfReferenceUID", "ReferencedGeneralPurposeScheduledProcedureStepTransactionUID",
        "ReferencedSOPInstanceUID", "ReferencedSOPInstanceUIDInFile", "RelatedFrameOfReferenceUID",
        "SeriesInstanceUID", "SOPInstanceUID", "StorageMediaFileSetUID", "StudyInstanceUID",
        "SynchronizationFrameOfReferenceUID", "TemplateExtensionCreatorUID", "TemplateExtensionOrganizationUID",
        "TransactionUID", "UID", "SpecimenUID", "TargetUID", "AcquisitionUID",
    ),
})

# Repeating groups (curves 50xx, overlay data and comments 60xx) are removed by mask.
REPEATING_GROUP_REMOVALS = ((0xFF00, 0x5000, None), (0xFF01, 0x6000, 0x3000), (0xFF01, 0x6000, 0x4000))

# One choice per action for any attribute type (see the module docstring).
_RESOLVED = {"X/Z": "Z", "X/D": "D", "Z/D": "D", "X/Z/D": "D", "X/Z/U*": "U", "C": "D"}

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


_ACTIONS_BY_TAG: Mapping[int, str] = MappingProxyType({
    int(tag): resolved_action(action)
    for keyword, action in BASIC_PROFILE.items()
    if (tag := tag_for_keyword(keyword)) is not None
})


def unknown_keywords() -> list[str]:
    """Keywords in BASIC_PROFILE that pydicom's dictionary does not know (a test keeps this empty)."""
    return [k for k in BASIC_PROFILE if tag_for_keyword(k) is None]


def deidentify_dataset(ds: Dataset, remap: UIDRemapper) -> Dataset:
    """Apply the profile to `ds` in place (file meta included) and return it."""
    _clean(ds, remap)
    file_meta = getattr(ds, "file_meta", None)
    if file_meta is not None:
        _clean(file_meta, remap)
        if "SOPInstanceUID" in ds:
            file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = METHOD
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = BASIC_PROFILE_CODE
    ds.DeidentificationMethodCodeSequence = Sequence([code])
    ds.LongitudinalTemporalInformationModified = "REMOVED"
    return ds


def _clean(ds: Dataset, remap: UIDRemapper) -> None:
    ds.remove_private_tags()
    for tag in list(ds.keys()):
        element = ds[tag]
        action = _action_for(tag, element)
        if action == "X":
            del ds[tag]
        elif action == "Z":
            element.value = Sequence() if element.VR == "SQ" else _empty(element.VR)
        elif action == "D" and element.VR != "SQ":
            element.value = remap(str(element.value)) if element.VR == "UI" else _DUMMY_BY_VR.get(element.VR, b"")
        elif element.VR == "UI":
            _remap_element(element, remap)
        elif element.VR == "SQ":
            for item in element.value:
                _clean(item, remap)


def _action_for(tag: BaseTag, element: DataElement) -> str:
    action = _ACTIONS_BY_TAG.get(int(tag))
    if action is not None:
        return action
    for mask, group, elem in REPEATING_GROUP_REMOVALS:
        if tag.group & mask == group and (elem is None or tag.element == elem):
            return "X"
    if element.VR == "PN":
        return "Z"  # a name the table does not list is still a name
    return "K"


def _remap_element(element: DataElement, remap: UIDRemapper) -> None:
    if element.VM > 1:
        element.value = [remap(uid) for uid in element.value]
    elif element.value:
        element.value = remap(element.value)


def _empty(vr: str) -> object:
    return b"" if vr.startswith("O") or vr == "UN" else None if vr in ("US", "SS", "UL", "SL", "FL", "FD", "SV", "UV", "AT") else ""


def deidentify_file(src: Path, dst: Path, remap: UIDRemapper) -> None:
    """Read `src` (a Part 10 file), apply the profile, write `dst` in the original transfer syntax."""
    try:
        ds = pydicom.dcmread(src)
    except (InvalidDicomError, EOFError, ValueError, KeyError, TypeError) as exc:
        raise DeidentifyError(f"{src}: not a readable DICOM file ({type(exc).__name__}: {exc})") from None
    except OSError as exc:
        raise DeidentifyError(f"{src}: {exc.strerror or exc}") from None
    deidentify_dataset(ds, remap)
    dst.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(dst, enforce_file_format=True)


def deidentify_paths(src: Path, dst: Path, remap: UIDRemapper) -> tuple[int, list[str]]:
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
            deidentify_file(source, target, remap)
            written += 1
        except DeidentifyError as exc:
            errors.append(str(exc))
    return written, errors
