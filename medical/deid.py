"""De-identification applied to every DICOM object the zoo writes (unless the caller opts out).

A documented subset of the DICOM PS3.15 Annex E *Basic Application Level
Confidentiality Profile*, with its *Retain UIDs Option* (UIDs are kept, so a
DICOM-SEG still references the series it was computed from):

* **emptied** (action Z): patient name, id, birth date and sex, accession
  number, referring physician, study id;
* **dummy values** (action D): study, series, acquisition and content dates
  become ``19000101``, their times ``000000``, and a top-level device serial
  number becomes ``0`` (the profile's X/Z/D: a DICOM-SEG's Enhanced General
  Equipment module requires one; nested ones are removed);
* **removed** (action X): the other identifying attributes in :data:`REMOVE`
  (addresses, phone numbers, other ids and names, institution, physicians and
  operators, station, device serial number, comments), at any depth in sequences;
* **private attributes** are removed;
* the result records it: PatientIdentityRemoved ``YES``, DeidentificationMethod, and
  DeidentificationMethodCodeSequence with DCM 113100 (Basic Application
  Confidentiality Profile) and 113110 (Retain UIDs Option).

Not covered: text burned into pixels, free text in other attributes, and the
profile's other options (longitudinal dates, device or institution identity).
"""
from __future__ import annotations

EMPTY = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber",
    "ReferringPhysicianName", "StudyID",
)
DUMMY_DATES = ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate")
DUMMY_TIMES = ("StudyTime", "SeriesTime", "AcquisitionTime", "ContentTime")
DUMMY_VALUES = {"DeviceSerialNumber": "0"}
REMOVE = (
    "OtherPatientIDs", "OtherPatientIDsSequence", "OtherPatientNames", "PatientBirthName", "PatientBirthTime",
    "PatientMotherBirthName", "PatientAddress", "PatientTelephoneNumbers", "PatientAge", "PatientSize",
    "PatientWeight", "MedicalRecordLocator", "EthnicGroup", "Occupation", "MilitaryRank", "BranchOfService",
    "PatientReligiousPreference", "PatientComments", "AdditionalPatientHistory", "PregnancyStatus",
    "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName", "ReferringPhysicianAddress",
    "ReferringPhysicianTelephoneNumbers", "PhysiciansOfRecord", "PerformingPhysicianName",
    "NameOfPhysiciansReadingStudy", "RequestingPhysician", "OperatorsName", "StationName", "DeviceSerialNumber",
    "StudyComments", "RequestAttributesSequence", "AcquisitionDateTime", "IssuerOfPatientID",
)
METHOD = "PS3.15 basic profile subset, retain UIDs (medical.deid)"
DUMMY_DATE, DUMMY_TIME = "19000101", "000000"


def deidentify(ds):
    """De-identify a pydicom Dataset in place (see the module docstring) and return it."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    ds.remove_private_tags()
    required = [keyword for keyword in DUMMY_VALUES if keyword in ds]
    _remove_everywhere(ds)
    for keyword in EMPTY:
        if keyword in ds:
            setattr(ds, keyword, "")
    for keyword in DUMMY_DATES:
        if keyword in ds:
            setattr(ds, keyword, DUMMY_DATE)
    for keyword in DUMMY_TIMES:
        if keyword in ds:
            setattr(ds, keyword, DUMMY_TIME)
    for keyword in required:
        setattr(ds, keyword, DUMMY_VALUES[keyword])
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = METHOD
    codes = []
    for value, meaning in (("113100", "Basic Application Confidentiality Profile"), ("113110", "Retain UIDs Option")):
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value, "DCM", meaning
        codes.append(code)
    ds.DeidentificationMethodCodeSequence = Sequence(codes)
    return ds


def _remove_everywhere(ds) -> None:
    for keyword in REMOVE:
        if keyword in ds:
            delattr(ds, keyword)
    for element in list(ds):
        if element.VR == "SQ":
            for item in element.value:
                item.remove_private_tags()
                _remove_everywhere(item)


def is_deidentified(ds) -> bool:
    """Whether ``ds`` says it was de-identified and holds none of the identifying attributes listed here."""
    if str(ds.get("PatientIdentityRemoved", "")) != "YES":
        return False
    if any(str(ds.get(k, "") or "") for k in EMPTY) or any(k in ds for k in REMOVE if k not in DUMMY_VALUES):
        return False
    if any(k in ds and str(ds[k].value) != dummy for k, dummy in DUMMY_VALUES.items()):
        return False
    return not any(element.tag.is_private for element in ds.iterall())
