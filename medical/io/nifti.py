"""NIfTI files ↔ :class:`medical.io.volume.Volume` through nibabel.

NIfTI stores ``data[i, j, k]`` with an affine to RAS mm; a Volume is
``array[slice, row, column]`` with an affine to LPS mm. Reading reverses the axis
order (``k, j, i``), permutes the affine's columns to match, and flips x and y;
writing undoes exactly that, so a round trip keeps every voxel in place.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from medical.io.volume import LPS_TO_RAS, Volume, check_voxel_count
from zoo.errors import InputError

_REVERSE = [2, 1, 0, 3]  # (i, j, k, 1) <-> (slice, row, column, 1)


def read_nifti(path: str | os.PathLike, *, dtype=None) -> Volume:
    """A ``.nii``/``.nii.gz`` file as a Volume (scaled by the header's scl_slope/inter when set).

    The header is checked before any voxel is read: three dimensions (trailing
    singleton ones dropped), at most :func:`medical.io.volume.max_voxels` voxels,
    real-valued voxels and, for an uncompressed file, as many bytes as the
    dimensions need. A damaged file, or a NaN or singular affine, raises InputError.
    """
    path = Path(path)
    image = _load(path)
    shape = _checked_shape(image, path)
    data, ras = _read(path, lambda: (np.asanyarray(image.dataobj).reshape(shape), image.affine))
    if dtype is not None:
        data = data.astype(dtype, copy=False)
    ras = ras if ras is not None else np.eye(4)
    affine = (LPS_TO_RAS @ ras)[:, _REVERSE]  # LPS_TO_RAS is its own inverse
    return Volume(np.ascontiguousarray(data.transpose(2, 1, 0)), affine, {"source": "nifti", "path": str(path)})


def _read(path: Path, read):
    """``read()``, with whatever nibabel, gzip or numpy raise for a damaged file turned into an InputError."""
    try:
        return read()
    except FileNotFoundError:
        raise InputError(f"expected a NIfTI file at {path}, found nothing there") from None
    except Exception as exc:  # nibabel, gzip, zlib and numpy raise many types for a damaged file
        raise InputError(f"expected a readable NIfTI file at {path}: {type(exc).__name__}: {exc}") from None


def _load(path: Path):
    import nibabel as nib

    return _read(path, lambda: nib.load(str(path)))


def _checked_shape(image, path: Path) -> tuple[int, int, int]:
    """The image's 3-D shape from its header, after checking dims, voxel type and (uncompressed) file size."""
    header = image.header
    stored = tuple(int(n) for n in _read(path, header.get_data_shape))
    shape = stored
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) != 3 or min(shape) < 1:
        raise InputError(f"{path.name}: expected a 3-D NIfTI image, got shape {stored}")
    check_voxel_count(shape, path.name)
    voxel = _read(path, header.get_data_dtype)
    if voxel.kind not in "biuf":
        raise InputError(f"{path.name}: expected real-valued voxels, the header says {voxel}")
    if path.suffix == ".nii":  # compressed files are checked by the decompressor instead
        needed = int(getattr(image.dataobj, "offset", 0)) + int(np.prod(shape)) * voxel.itemsize
        size = path.stat().st_size
        if size < needed:
            raise InputError(f"{path.name}: its header's dims {list(stored)} of {voxel} need {needed:,} bytes, the file "
                             f"has {size:,}: it is cut short or its header is wrong")
    return shape


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
