"""Patient identifiers: which DICOM attributes they are, and how reports replace them.

Dates and times of the visit count as identifiers (HIPAA Safe Harbor): they are redacted like names unless the
user passes --include-phi. Rules that compare dates (dicom.date_order) report the gap in days, never a date.

A redacted value becomes ``redacted:<8 hex>``, a salted hash: equal values stay equal within one report (an
examiner can still see that two files name the same patient) without revealing the value.
"""

from __future__ import annotations

import hashlib
import os

DATE_KEYWORDS = (
    "StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate", "InstanceCreationDate", "AcquisitionDateTime",
    "StudyTime", "SeriesTime", "AcquisitionTime", "ContentTime", "InstanceCreationTime", "PatientAge",
    "PerformedProcedureStepStartDate", "PerformedProcedureStepStartTime", "OverlayDate", "CurveDate",
)
# Keywords from the DICOM Basic Application Level Confidentiality Profile (PS3.15 Table E.1-1) that identify a
# person, an institution's record of them, or their visit.
PHI_KEYWORDS = frozenset(
    {
        "PatientName", "PatientID", "PatientBirthDate", "PatientBirthTime", "PatientAddress",
        "PatientTelephoneNumbers", "OtherPatientIDs", "OtherPatientNames", "OtherPatientIDsSequence",
        "PatientMotherBirthName", "MilitaryRank", "MedicalRecordLocator", "EthnicGroup", "PatientReligiousPreference",
        "AccessionNumber", "StudyID", "ReferringPhysicianName", "PerformingPhysicianName", "OperatorsName",
        "PhysiciansOfRecord", "NameOfPhysiciansReadingStudy", "RequestingPhysician", "InstitutionName",
        "InstitutionAddress", "InstitutionalDepartmentName", "StationName", "DeviceSerialNumber",
        "IssuerOfPatientID", "PatientInsurancePlanCodeSequence", "ResponsiblePerson", "PatientComments",
        "AdditionalPatientHistory", "RequestAttributesSequence", "PerformedProcedureStepID", "ScheduledProcedureStepID",
        # Dates and times of the visit: HIPAA Safe Harbor counts every date more precise than the year
        *DATE_KEYWORDS,
    }
)

_SALT = os.urandom(16)


def redact(value: object, salt: bytes = _SALT) -> str:
    """A stable stand-in for ``value`` (same salt, same output); reveals nothing of it."""
    digest = hashlib.sha256(salt + str(value).encode("utf-8", "surrogateescape")).hexdigest()
    return f"redacted:{digest[:8]}"


def is_phi(keyword: str) -> bool:
    return keyword in PHI_KEYWORDS
