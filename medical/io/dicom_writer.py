"""Write a CT :class:`medical.io.volume.Volume` as a DICOM series: one CT Image Storage file per slice.

Each file carries the slice's ImagePositionPatient, the volume's
ImageOrientationPatient and PixelSpacing, stored values ``HU + 1024`` (unsigned
16-bit) with RescaleIntercept -1024, and UIDs derived deterministically from
``uid_seed`` (the same seed writes the same UIDs). Files are named after their
SOPInstanceUID, so their names say nothing about their order. De-identified
(:mod:`medical.deid`) unless ``deidentify=False``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from medical.io.volume import Volume
from zoo.errors import InputError

HU_OFFSET = 1024
MANUFACTURER = "Domain Zoo"


def series_uids(uid_seed: str) -> dict[str, str]:
    """Study, series and frame-of-reference UIDs derived from ``uid_seed`` (under pydicom's UID root)."""
    from pydicom.uid import generate_uid

    return {name: generate_uid(entropy_srcs=[uid_seed, name]) for name in ("study", "series", "frame_of_reference")}


def write_ct_series(volume: Volume, folder: str | os.PathLike, *, uid_seed: str, patient_id: str = "ANONYMOUS",
                    series_description: str = "", slice_thickness: float | None = None,
                    extra: dict[str, Any] | None = None, deidentify: bool = True) -> list[Path]:
    """Write ``volume`` (values in HU) into ``folder``, one file per slice; returns the paths in slice order.

    ``slice_thickness`` defaults to the slice spacing; ``extra`` sets further
    attributes by keyword on every file (before de-identification).
    """
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID, generate_uid

    from medical.deid import deidentify as deidentify_dataset

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    hu = np.asarray(volume.array)
    if hu.min() < -HU_OFFSET or hu.max() > 65535 - HU_OFFSET:
        raise InputError(f"expected HU in [-1024, 64511] to store as unsigned 16-bit, got [{hu.min()}, {hu.max()}]")
    stored = np.rint(hu + HU_OFFSET).astype("<u2")
    row_spacing, column_spacing = volume.spacing[1], volume.spacing[2]
    column_cosine, row_cosine = volume.directions[:, 1], volume.directions[:, 2]
    uids = series_uids(uid_seed)
    paths = []
    for k in range(volume.shape[0]):
        ds = _ct_slice_dataset(uids, patient_id, series_description)
        sop_uid = generate_uid(entropy_srcs=[uid_seed, "instance", str(k)])
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, sop_uid
        position = volume.index_to_lps((k, 0, 0))
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [_ds(v) for v in position]
        ds.ImageOrientationPatient = [_ds(v) for v in (*row_cosine, *column_cosine)]
        ds.PixelSpacing = [_ds(row_spacing), _ds(column_spacing)]
        ds.SliceThickness = _ds(slice_thickness if slice_thickness is not None else volume.spacing[0])
        ds.SliceLocation = _ds(position[2])
        ds.Rows, ds.Columns = volume.shape[1], volume.shape[2]
        ds.PixelData = stored[k].tobytes()
        for keyword, value in (extra or {}).items():
            setattr(ds, keyword, value)
        if deidentify:
            deidentify_dataset(ds)
        path = folder / f"{sop_uid}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _ds(value: float) -> str:
    """A DS string (at most 16 characters)."""
    text = f"{float(value):.6f}".rstrip("0").rstrip(".")
    return text if len(text) <= 16 else f"{float(value):.10g}"[:16]


def _ct_slice_dataset(uids: dict[str, str], patient_id: str, description: str):
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.PatientName, ds.PatientID = patient_id, patient_id
    ds.PatientBirthDate, ds.PatientSex = "", "O"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = uids["study"], uids["series"]
    ds.FrameOfReferenceUID, ds.PositionReferenceIndicator = uids["frame_of_reference"], ""
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20260101"
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "120000"
    ds.AccessionNumber, ds.ReferringPhysicianName, ds.StudyID = "", "", "1"
    ds.Modality, ds.SeriesNumber, ds.AcquisitionNumber = "CT", 1, 1
    ds.SeriesDescription = description
    ds.Manufacturer, ds.KVP = MANUFACTURER, "120"
    ds.PatientPosition, ds.BodyPartExamined = "HFS", "ABDOMEN"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = str(-HU_OFFSET), "1", "HU"
    ds.WindowCenter, ds.WindowWidth = "40", "400"
    return ds
