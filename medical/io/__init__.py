"""Medical image files in and out, keeping geometry; :func:`read_volume` reads any of them.

* :mod:`medical.io.volume`: the :class:`Volume` (voxels + affine + metadata), resampling, orientation.
* :mod:`medical.io.dicom`: a DICOM series (a folder, or a multi-frame file) into a Volume.
* :mod:`medical.io.dicom_file`: one DICOM file: its checked header values, pixels, and ``read_image`` (2-D).
* :mod:`medical.io.dicom_writer`: a CT Volume as a DICOM series.
* :mod:`medical.io.nifti`: NIfTI files in and out.
* :mod:`medical.io.seg`: label maps as DICOM-SEG, and back.
"""
from __future__ import annotations

import os
from pathlib import Path

from medical.io.volume import Volume
from zoo.errors import InputError

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def read_volume(path: str | os.PathLike, **options) -> Volume:
    """A DICOM series folder or file (:func:`medical.io.dicom.read_series`), or a NIfTI file (:func:`medical.io.nifti.read_nifti`).

    ``options`` go to that reader: ``series_uid=``, ``skip_damaged=`` for DICOM, ``dtype=`` for NIfTI.
    """
    path = Path(path)
    if path.name.endswith(NIFTI_SUFFIXES):
        from medical.io.nifti import read_nifti

        return read_nifti(path, **options)
    if path.is_dir() or path.is_file():
        from medical.io.dicom import read_series

        return read_series(path, **options)
    raise InputError(f"expected a DICOM series folder, a DICOM file or a NIfTI file at {path}, found nothing there")
