"""NIfTI files ↔ :class:`medical.volume.Volume` through nibabel.

NIfTI stores ``data[i, j, k]`` with an affine to RAS mm; a Volume is
``array[slice, row, column]`` with an affine to LPS mm. Reading reverses the axis
order (``k, j, i``), permutes the affine's columns to match, and flips x and y;
writing undoes exactly that, so a round trip keeps every voxel in place.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from medical.volume import LPS_TO_RAS, Volume
from zoo.errors import InputError

_REVERSE = [2, 1, 0, 3]  # (i, j, k, 1) <-> (slice, row, column, 1)


def read_nifti(path: str | os.PathLike, *, dtype=None) -> Volume:
    """A ``.nii``/``.nii.gz`` file as a Volume (scaled by the header's scl_slope/inter when set)."""
    import nibabel as nib

    path = Path(path)
    try:
        image = nib.load(str(path))
    except (FileNotFoundError, nib.filebasedimages.ImageFileError) as exc:
        raise InputError(f"expected a NIfTI file at {path}: {exc}") from None
    data = np.asanyarray(image.dataobj)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise InputError(f"{path.name}: expected a 3-D NIfTI image, got shape {data.shape}")
    if dtype is not None:
        data = data.astype(dtype, copy=False)
    ras = image.affine if image.affine is not None else np.eye(4)
    affine = (LPS_TO_RAS @ ras)[:, _REVERSE]  # LPS_TO_RAS is its own inverse
    return Volume(np.ascontiguousarray(data.transpose(2, 1, 0)), affine, {"source": "nifti", "path": str(path)})


def write_nifti(volume: Volume, path: str | os.PathLike) -> Path:
    """Write a Volume as NIfTI-1 (``.nii`` or ``.nii.gz``) with its geometry as both qform and sform."""
    import nibabel as nib

    path = Path(path)
    ras = LPS_TO_RAS @ volume.affine[:, _REVERSE]
    image = nib.Nifti1Image(np.ascontiguousarray(volume.array.transpose(2, 1, 0)), ras)
    image.set_qform(ras, code="scanner")
    image.set_sform(ras, code="scanner")
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, str(path))
    return path
