"""One entry point for reading a volume from disk, whatever the format."""
from __future__ import annotations

import os
from pathlib import Path

from medical.volume import Volume
from zoo.errors import InputError

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def read_volume(path: str | os.PathLike, **options) -> Volume:
    """A DICOM series folder or file (:func:`medical.dicom.read_series`), or a NIfTI file (:func:`medical.nifti.read_nifti`).

    ``options`` go to that reader: ``series_uid=``, ``skip_damaged=`` for DICOM, ``dtype=`` for NIfTI.
    """
    path = Path(path)
    if path.name.endswith(NIFTI_SUFFIXES):
        from medical.nifti import read_nifti

        return read_nifti(path, **options)
    if path.is_dir() or path.is_file():
        from medical.dicom import read_series

        return read_series(path, **options)
    raise InputError(f"expected a DICOM series folder, a DICOM file or a NIfTI file at {path}, found nothing there")
