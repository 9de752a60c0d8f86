"""``Volume``: a 3-D image that keeps its place in the patient.

Conventions (one set, everywhere in ``medical``):

* ``array`` is indexed ``[slice, row, column]`` — the order a DICOM series stacks
  in, and torch's ``D, H, W``.
* ``affine`` is a 4×4 matrix mapping a voxel index ``(slice, row, column, 1)`` to
  patient coordinates in millimetres, in DICOM's **LPS** frame (+x towards the
  patient's left, +y posterior, +z superior). NIfTI's RAS affines are converted on
  reading and writing (:mod:`medical.io.nifti`).
* ``spacing`` is the voxel size in mm along the same three axes: the column norms
  of the affine's 3×3 part.

Everything that changes the grid (resampling, reorienting, cropping) returns a
new Volume whose affine still places each voxel where it was in the patient.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from zoo.errors import InputError

# LPS <-> RAS: flip the first two patient axes.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
# The orientation every model input is brought to: axes (slice, row, column) pointing
# (+S, +P, +L), i.e. a head-first supine axial series as scanners write it.
CANONICAL_AXES = ((2, 1.0), (1, 1.0), (0, 1.0))  # (patient axis, sign) per array axis
# Readers refuse files that would decode to more voxels than this, before allocating (a header can lie).
MAX_VOXELS_VARIABLE = "ZOO_MAX_VOLUME_VOXELS"
DEFAULT_MAX_VOXELS = 2**30


@dataclass
class Volume:
    """A 3-D array (``[slice, row, column]``) with its voxel → LPS-mm affine and metadata.

    ``metadata`` holds what the reader knew (modality, series uid, units, window...);
    it is carried along, never used for geometry.
    """

    array: np.ndarray
    affine: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.affine = np.asarray(self.affine, dtype=np.float64)
        if self.array.ndim != 3:
            raise InputError(f"expected a 3-D array [slice, row, column], got shape {self.array.shape}")
        if self.affine.shape != (4, 4):
            raise InputError(f"expected a 4×4 affine, got shape {self.affine.shape}")
        if not np.all(np.isfinite(self.affine)):
            raise InputError(f"expected a finite affine, got {self.affine.tolist()} (a NaN or infinite spacing or position)")
        if abs(np.linalg.det(self.affine[:3, :3])) < 1e-9:
            raise InputError("the affine is singular: two axes point the same way or a spacing is 0")

    @classmethod
    def from_spacing(cls, array: np.ndarray, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0),
                     metadata: dict | None = None) -> "Volume":
        """A canonical-orientation volume (axes +S, +P, +L) with the given voxel spacing and origin (LPS mm)."""
        affine = np.eye(4)
        affine[:3, :3] = canonical_directions() * np.asarray(spacing, dtype=float)
        affine[:3, 3] = origin
        return cls(np.asarray(array), affine, dict(metadata or {}))

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.array.shape)

    @property
    def spacing(self) -> np.ndarray:
        """Voxel size in mm along (slice, row, column)."""
        return np.linalg.norm(self.affine[:3, :3], axis=0)

    @property
    def directions(self) -> np.ndarray:
        """Unit direction (LPS) of each array axis, as the columns of a 3×3 matrix."""
        return self.affine[:3, :3] / self.spacing

    @property
    def origin(self) -> np.ndarray:
        """LPS position (mm) of the centre of voxel ``[0, 0, 0]``."""
        return self.affine[:3, 3].copy()

    def with_array(self, array: np.ndarray, **metadata: Any) -> "Volume":
        """The same grid holding another array (a mask, a prediction) of the same shape."""
        if tuple(array.shape) != self.shape:
            raise InputError(f"expected an array of the volume's shape {self.shape}, got {tuple(array.shape)}")
        return replace(self, array=array, metadata={**self.metadata, **metadata})

    def same_grid(self, other: "Volume", atol: float = 1e-3) -> bool:
        """Whether ``other`` has this shape and places its voxels at the same positions (within ``atol`` mm)."""
        return self.shape == other.shape and np.allclose(self.affine, other.affine, atol=atol)

    def index_to_lps(self, index) -> np.ndarray:
        """LPS mm of voxel index (slice, row, column) — one index or an N×3 array of them."""
        index = np.atleast_2d(np.asarray(index, dtype=float))
        return (index @ self.affine[:3, :3].T + self.affine[:3, 3]).squeeze()

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        """The voxel values, so ``np.asarray(volume)`` works (geometry stays on the Volume)."""
        return self.array if dtype is None else self.array.astype(dtype)

    def __repr__(self) -> str:
        spacing = ", ".join(f"{s:.3g}" for s in self.spacing)
        return f"Volume(shape={self.shape}, dtype={self.array.dtype}, spacing=({spacing}) mm, origin={np.round(self.origin, 2).tolist()})"


def canonical_directions() -> np.ndarray:
    """The 3×3 direction matrix (columns: array axes) of the canonical orientation."""
    directions = np.zeros((3, 3))
    for axis, (patient_axis, sign) in enumerate(CANONICAL_AXES):
        directions[patient_axis, axis] = sign
    return directions


def to_canonical(volume: Volume) -> Volume:
    """Permute and flip the array axes (exactly, no interpolation) into the canonical orientation.

    Each array axis is matched to the patient axis it points closest to, so an
    oblique series stays oblique (its affine says so) but has the canonical layout.
    """
    directions = volume.directions
    order, flips = [], []
    for patient_axis, sign in CANONICAL_AXES:
        axis = int(np.argmax(np.abs(directions[patient_axis])))
        if axis in order:
            raise InputError(f"cannot reorient: two array axes point along patient axis {patient_axis} (affine {volume.affine.tolist()})")
        order.append(axis)
        flips.append(np.sign(directions[patient_axis, axis]) != sign)
    array = np.transpose(volume.array, order)
    affine = volume.affine.copy()
    affine[:3, :3] = volume.affine[:3, :3][:, order]
    for axis, flip in enumerate(flips):
        if flip:
            array = np.flip(array, axis)
            affine[:3, 3] += affine[:3, axis] * (array.shape[axis] - 1)
            affine[:3, axis] *= -1
    return Volume(np.ascontiguousarray(array), affine, dict(volume.metadata))


def resample_to_grid(volume: Volume, shape, affine, *, order: int = 1, fill: float | None = None) -> Volume:
    """``volume`` sampled on another grid (``shape`` voxels placed by ``affine``), by scipy.

    ``order`` 1 is trilinear (images, probabilities), 0 nearest (label maps). Points
    outside ``volume`` get ``fill`` (default: the array's minimum, air for CT).
    """
    from scipy.ndimage import affine_transform

    affine = np.asarray(affine, dtype=float)
    to_source = np.linalg.inv(volume.affine) @ affine  # target index -> source index
    source = volume.array if order == 0 else volume.array.astype(np.float32, copy=False)
    fill = float(volume.array.min()) if fill is None else fill
    array = affine_transform(source, to_source[:3, :3], offset=to_source[:3, 3], output_shape=tuple(int(s) for s in shape),
                             order=order, mode="constant", cval=fill, prefilter=False)
    return Volume(array, affine, dict(volume.metadata))


def resample(volume: Volume, spacing, *, order: int = 1) -> Volume:
    """Resample to voxel ``spacing`` (mm, per array axis), keeping orientation and the field of view's centre.

    The new shape is ``round(shape × old spacing / new spacing)``; the affine is
    updated so every voxel keeps its patient position.
    """
    spacing = np.broadcast_to(np.asarray(spacing, dtype=float), (3,))
    if np.any(spacing <= 0):
        raise InputError(f"expected positive target spacing, got {spacing.tolist()}")
    old = volume.spacing
    shape = np.maximum(1, np.round(np.asarray(volume.shape) * old / spacing)).astype(int)
    scale = spacing / old  # target voxel step in source index units
    # Centre the new grid on the old one: old centre index (n-1)/2 == new centre (n'-1)/2.
    start = (np.asarray(volume.shape) - 1) / 2 - (shape - 1) / 2 * scale
    affine = volume.affine.copy()
    affine[:3, :3] = volume.affine[:3, :3] * scale
    affine[:3, 3] = volume.affine[:3, :3] @ start + volume.affine[:3, 3]
    if np.allclose(scale, 1) and np.allclose(start, 0):
        return Volume(volume.array.copy(), volume.affine.copy(), dict(volume.metadata))
    return resample_to_grid(volume, shape, affine, order=order)


def crop_or_pad(volume: Volume, shape, *, start=None, fill: float | None = None) -> Volume:
    """A ``shape`` window of ``volume`` starting at voxel ``start`` (default: centred); outside is ``fill``.

    The affine moves with the window, so a patch knows where it lies in the patient.
    """
    shape = np.asarray(shape, dtype=int)
    size = np.asarray(volume.shape)
    start = (size - shape) // 2 if start is None else np.asarray(start, dtype=int)
    fill = float(volume.array.min()) if fill is None else fill
    out = np.full(tuple(shape), fill, dtype=volume.array.dtype)
    src_lo, src_hi = np.maximum(start, 0), np.minimum(start + shape, size)
    if np.all(src_hi > src_lo):
        dst_lo = src_lo - start
        dst_hi = dst_lo + (src_hi - src_lo)
        out[tuple(slice(a, b) for a, b in zip(dst_lo, dst_hi))] = volume.array[tuple(slice(a, b) for a, b in zip(src_lo, src_hi))]
    affine = volume.affine.copy()
    affine[:3, 3] = volume.affine[:3, :3] @ start + volume.affine[:3, 3]
    return Volume(out, affine, dict(volume.metadata))


def max_voxels() -> int:
    """The most voxels a volume read from a file may have: ``$ZOO_MAX_VOLUME_VOXELS``, else 2**30."""
    text = os.environ.get(MAX_VOXELS_VARIABLE, "")
    try:
        return int(text) if text else DEFAULT_MAX_VOXELS
    except ValueError:
        raise InputError(f"expected an integer number of voxels in ${MAX_VOXELS_VARIABLE}, got {text!r}") from None


def check_voxel_count(shape, where: str) -> None:
    """Raise InputError before allocating when a volume of ``shape`` would exceed :func:`max_voxels`."""
    count = int(np.prod([int(n) for n in shape], dtype=object))
    limit = max_voxels()
    if count > limit:
        raise InputError(f"{where}: a {' × '.join(str(int(n)) for n in shape)} volume holds {count:,} voxels, more than "
                         f"the limit of {limit:,}; set ${MAX_VOXELS_VARIABLE} to read it if it is genuine")
