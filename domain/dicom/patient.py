"""The patient and study identity that result objects must carry to be filed with their images.

PHI never rides the bus (domain/dicom/metadata.py keeps it off). The export edges read
it back from the original instance in the blob store, as a PatientContext, and copy it
into what they send (SR, GSPS, ORU, FHIR), so the PACS or RIS files the results under
the same patient and study as the images. Values stay in their DICOM form (a PN is
`Family^Given^Middle^Prefix^Suffix`, dates are YYYYMMDD); each edge maps them to its
own standard.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from pydicom.dataset import Dataset

# The attributes copied, by DICOM keyword, in the dataclass field order below.
KEYWORDS = {
    "patient_name": "PatientName",
    "patient_id": "PatientID",
    "issuer_of_patient_id": "IssuerOfPatientID",
    "birth_date": "PatientBirthDate",
    "sex": "PatientSex",
    "study_id": "StudyID",
    "study_date": "StudyDate",
    "study_time": "StudyTime",
    "accession_number": "AccessionNumber",
    "referring_physician": "ReferringPhysicianName",
}


@dataclass(frozen=True)
class PatientContext:
    """Patient module and General Study module of one study, as read from one of its instances."""

    study_uid: str
    patient_name: str = ""
    patient_id: str = ""
    issuer_of_patient_id: str = ""
    birth_date: str = ""
    sex: str = ""
    study_id: str = ""
    study_date: str = ""
    study_time: str = ""
    accession_number: str = ""
    referring_physician: str = ""

    @classmethod
    def from_dataset(cls, ds: Dataset) -> PatientContext:
        """Read from an instance (pixel data not needed); absent attributes become ""."""
        values = {name: _text(ds.get(keyword)) for name, keyword in KEYWORDS.items()}
        return cls(study_uid=str(ds.get("StudyInstanceUID", "")), **values)

    def apply_to(self, ds: Dataset) -> None:
        """Write the patient and study attributes into a new object: a value, or empty (type 2)."""
        ds.StudyInstanceUID = self.study_uid
        for name, keyword in KEYWORDS.items():
            value = getattr(self, name)
            if keyword == "IssuerOfPatientID" and not value:
                continue  # type 3: absent rather than empty
            setattr(ds, keyword, value or None)

    @property
    def identified(self) -> bool:
        """Whether there is any patient identity at all (an anonymous instance has none)."""
        return any(getattr(self, f.name) for f in fields(self) if f.name in ("patient_id", "patient_name"))


def _text(value: object) -> str:
    return "" if value is None else str(value).strip()
