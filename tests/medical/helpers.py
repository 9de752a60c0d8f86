"""Small phantom series for the medical tests."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from medical.io.dicom_writer import write_ct_series
from medical.phantom import ct_phantom
from medical.io.volume import Volume

SMALL_SHAPE = (20, 40, 44)  # slices, rows, columns: a non-square plane catches swapped axes
SMALL_SPACING = (6.0, 9.0, 8.5)


def small_phantom(seed: int = 0) -> tuple[Volume, Volume]:
    """A coarse phantom (~20×40×44 voxels) with the full anatomy."""
    return ct_phantom(seed, shape=SMALL_SHAPE, spacing=SMALL_SPACING)


def write_series(volume: Volume, folder: Path, uid_seed: str = "test", shuffle_names: bool = True, **options) -> list[Path]:
    """Write ``volume`` as a CT series; by default renamed in a random order so names say nothing."""
    paths = write_ct_series(volume, folder, uid_seed=uid_seed, **options)
    if not shuffle_names:
        return paths
    order = list(range(len(paths)))
    random.Random(0).shuffle(order)
    renamed = []
    for new, path in zip(order, paths):
        target = path.with_name(f"IM{new:04d}")
        path.rename(target)
        renamed.append(target)
    return renamed


def same_voxels(a: Volume, b: Volume) -> bool:
    """Whether ``a`` and ``b`` hold the same value at the same LPS position for every voxel of ``a``."""
    index = np.argwhere(np.ones(a.shape, dtype=bool))
    positions = a.index_to_lps(index)
    in_b = np.rint((positions - b.affine[:3, 3]) @ np.linalg.inv(b.affine[:3, :3]).T).astype(int)
    if (in_b < 0).any() or (in_b >= np.asarray(b.shape)).any():
        return False
    return np.array_equal(a.array[tuple(index.T)], b.array[tuple(in_b.T)])
