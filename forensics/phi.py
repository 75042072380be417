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


# Value representations that identify wherever they appear (a name or a date in a private tag or a sequence too).
IDENTIFYING_VRS = frozenset({"PN", "DA", "DT", "TM"})


def is_identifying_element(keyword: str, vr: str, value: object) -> bool:
    """True when a DICOM element's value is an identifier: a PHI keyword, a person name or a date/time (any tag),
    or a UID that is not a registered DICOM UID (instance UIDs trace back to the patient's study, PS3.15 E.1-1;
    class and transfer syntax UIDs name standards and are kept)."""
    if keyword in PHI_KEYWORDS or vr in IDENTIFYING_VRS:
        return True
    if vr == "UI" and keyword != "ImplementationClassUID":  # that one names the writing software, not a study
        from pydicom.uid import UID_dictionary

        values = value if isinstance(value, (list, tuple)) else [value]
        return any(str(v) not in UID_dictionary for v in values if v not in (None, ""))
    return False
