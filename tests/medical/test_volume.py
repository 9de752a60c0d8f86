"""Volume geometry: resampling, reorienting, cropping keep every voxel's patient position; NIfTI keeps RAS right."""
from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from medical.io.nifti import read_nifti, write_nifti
from medical.transforms import CT_WINDOWS, percentile_scale, window
from medical.io.volume import Volume, crop_or_pad, resample, resample_to_grid, to_canonical
from tests.medical.helpers import same_voxels
from zoo.errors import InputError


def _block_volume() -> Volume:
    """A bright 4×4×4 block off-centre in a 20×24×28 volume with anisotropic spacing."""
    array = np.zeros((20, 24, 28), dtype=np.float32)
    array[6:10, 12:16, 4:8] = 100.0
    return Volume.from_spacing(array, spacing=(3.0, 1.5, 2.0), origin=(-10.0, 5.0, 40.0))


def _centroid_mm(volume: Volume, threshold: float = 50.0) -> np.ndarray:
    return volume.index_to_lps(np.argwhere(volume.array > threshold).mean(axis=0))


def test_resample_updates_the_affine_so_structures_stay_put():
    volume = _block_volume()
    moved = resample(volume, (1.0, 1.0, 1.0))
    assert moved.shape == (60, 36, 56)
    np.testing.assert_allclose(moved.spacing, 1.0)
    np.testing.assert_allclose(_centroid_mm(moved), _centroid_mm(volume), atol=0.3)
    # The field of view's centre is kept.
    centre = lambda v: v.index_to_lps((np.asarray(v.shape) - 1) / 2)  # noqa: E731
    np.testing.assert_allclose(centre(moved), centre(volume), atol=1e-6)


def test_resample_labels_with_nearest_neighbour_keeps_label_values():
    volume = _block_volume()
    labels = volume.with_array((volume.array > 0).astype(np.uint8) * 3)
    moved = resample(labels, (2.0, 2.0, 2.0), order=0)
    assert moved.array.dtype == np.uint8 and set(np.unique(moved.array)) == {0, 3}


def test_resample_to_grid_round_trip_on_a_finer_grid_is_exact_for_nearest():
    volume = _block_volume()
    fine = resample(volume, (1.5, 0.75, 1.0), order=0)  # every old voxel centre is a fine voxel centre
    back = resample_to_grid(fine, volume.shape, volume.affine, order=0)
    np.testing.assert_array_equal(back.array, volume.array)


def test_to_canonical_undoes_flips_and_permutations_exactly():
    volume = _block_volume()
    array = np.transpose(volume.array, (2, 0, 1))[::-1, :, ::-1]
    affine = np.eye(4)
    affine[:3, :3] = volume.affine[:3, :3][:, [2, 0, 1]] * np.array([-1, 1, -1])
    affine[:3, 3] = volume.index_to_lps((0, 0, 0)) + volume.affine[:3, 2] * 27 + volume.affine[:3, 1] * 23
    scrambled = Volume(np.ascontiguousarray(array), affine)
    assert same_voxels(scrambled, volume)
    canonical = to_canonical(scrambled)
    np.testing.assert_array_equal(canonical.array, volume.array)
    np.testing.assert_allclose(canonical.affine, volume.affine)


def test_crop_and_pad_move_the_origin_with_the_window():
    volume = _block_volume()
    patch = crop_or_pad(volume, (8, 8, 8), start=(4, 10, 2))
    assert patch.array[2:6, 2:6, 2:6].min() == 100.0
    np.testing.assert_allclose(patch.origin, volume.index_to_lps((4, 10, 2)))
    padded = crop_or_pad(volume, (24, 24, 32), fill=-1)
    assert padded.array[0, 0, 0] == -1 and same_voxels(volume, Volume(padded.array, padded.affine)) is True


def test_ct_windows_and_mr_percentiles():
    assert CT_WINDOWS["lung"] == (1500.0, -600.0)
    np.testing.assert_allclose(window(np.array([-1350.0, -600.0, 150.0]), "lung"), [0.0, 0.5, 1.0])
    np.testing.assert_allclose(window(np.array([0.0, 40.0, 80.0]), "brain"), [0.0, 0.5, 1.0])
    assert window(np.array([1300.0]), "bone")[0] == 1.0
    with pytest.raises(InputError, match="preset"):
        window(np.zeros(3), "liver")
    mr = np.random.default_rng(0).gamma(2.0, 100.0, size=(8, 16, 16))
    scaled = percentile_scale(mr)
    assert scaled.min() == 0.0 and scaled.max() == 1.0 and 0.2 < np.median(scaled) < 0.6


def test_nifti_ras_affine_becomes_lps_and_round_trips(tmp_path):
    data = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)  # NIfTI order (i, j, k)
    ras = np.array([[2.0, 0, 0, -30], [0, 3.0, 0, 20], [0, 0, 4.0, 10], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(data, ras), tmp_path / "x.nii.gz")
    volume = read_nifti(tmp_path / "x.nii.gz")
    assert volume.shape == (6, 5, 4)
    i, j, k = 3, 1, 5
    assert volume.array[k, j, i] == data[i, j, k]
    x, y, z = nib.affines.apply_affine(ras, (i, j, k))
    np.testing.assert_allclose(volume.index_to_lps((k, j, i)), [-x, -y, z])  # RAS -> LPS
    write_nifti(volume, tmp_path / "y.nii.gz")
    again = nib.load(tmp_path / "y.nii.gz")
    np.testing.assert_array_equal(np.asanyarray(again.dataobj), data)
    np.testing.assert_allclose(again.affine, ras)


def test_volume_rejects_bad_shapes():
    with pytest.raises(InputError, match="3-D array"):
        Volume(np.zeros((4, 4)), np.eye(4))
    with pytest.raises(InputError, match="singular"):
        Volume(np.zeros((2, 2, 2)), np.diag([1.0, 0.0, 1.0, 1.0]))
    with pytest.raises(InputError, match="shape"):
        _block_volume().with_array(np.zeros((2, 2, 2)))


def test_volume_rejects_a_non_finite_affine():
    affine = np.eye(4)
    affine[2, 3] = np.nan
    with pytest.raises(InputError, match="finite affine"):
        Volume(np.zeros((2, 2, 2)), affine)


# -- damaged and lying NIfTI files (issue 13): an InputError before anything is allocated -------------------------
NIFTI_DIM, NIFTI_DATATYPE, NIFTI_PIXDIM, NIFTI_SROW_X, NIFTI_SFORM_CODE = 40, 70, 76, 280, 254


@pytest.fixture
def nifti(tmp_path):
    """A small int16 .nii (header and voxels), to be damaged."""
    nib.save(nib.Nifti1Image(np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6), np.diag([2.0, 3.0, 4.0, 1.0])),
             tmp_path / "x.nii")
    return tmp_path / "x.nii"


def patch(path, offset: int, fmt: str, *values) -> None:
    import struct

    data = bytearray(path.read_bytes())
    data[offset:offset + struct.calcsize(fmt)] = struct.pack(fmt, *values)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("keep", [0, 100, 300, -20])
def test_a_cut_short_nifti_is_an_input_error(nifti, keep):
    nifti.write_bytes(nifti.read_bytes()[:keep])
    with pytest.raises(InputError, match="x.nii"):
        read_nifti(nifti)


@pytest.mark.parametrize("keep", [10, 100, -30])
def test_a_cut_short_nifti_gz_is_an_input_error(nifti, keep):
    compressed = nifti.with_suffix(".nii.gz")
    nib.save(nib.load(nifti), compressed)
    compressed.write_bytes(compressed.read_bytes()[:keep])
    with pytest.raises(InputError, match="x.nii.gz"):
        read_nifti(compressed)


def test_dims_larger_than_the_data_are_refused_from_the_header(nifti):
    patch(nifti, NIFTI_DIM, "<8h", 3, 40, 5, 6, 1, 1, 1, 1)
    with pytest.raises(InputError, match=r"dims \[40, 5, 6\] of int16 need 2,752 bytes, the file has 592"):
        read_nifti(nifti)


def test_huge_dims_are_refused_before_allocating(nifti, monkeypatch):
    patch(nifti, NIFTI_DIM, "<8h", 3, 32767, 32767, 32767, 1, 1, 1, 1)
    with pytest.raises(InputError, match="more than the limit of 1,073,741,824; set \\$ZOO_MAX_VOLUME_VOXELS"):
        read_nifti(nifti)
    monkeypatch.setenv("ZOO_MAX_VOLUME_VOXELS", "100")
    patch(nifti, NIFTI_DIM, "<8h", 3, 4, 5, 6, 1, 1, 1, 1)
    with pytest.raises(InputError, match="more than the limit of 100"):
        read_nifti(nifti)


@pytest.mark.parametrize("dims", [(3, -4, 5, 6, 1), (3, 0, 5, 6, 1), (2, 4, 5, 1, 1), (4, 4, 5, 6, 2)])
def test_dims_that_are_not_a_volume_are_refused(nifti, dims):
    patch(nifti, NIFTI_DIM, "<5h", *dims)
    with pytest.raises(InputError, match="x.nii"):
        read_nifti(nifti)


def test_nan_affines_are_refused(nifti):
    patch(nifti, NIFTI_SROW_X, "<f", np.nan)
    with pytest.raises(InputError, match="finite affine"):
        read_nifti(nifti)
    nib.save(nib.Nifti1Image(np.zeros((4, 5, 6), np.int16), None), nifti)  # no sform: the affine comes from pixdim
    patch(nifti, NIFTI_PIXDIM, "<4f", 1.0, np.nan, 3.0, 4.0)
    with pytest.raises(InputError, match="finite affine"):
        read_nifti(nifti)


@pytest.mark.parametrize("code", [32, 128, 999])  # complex64, RGB24, no such type
def test_voxel_types_that_are_not_real_numbers_are_refused(nifti, code):
    patch(nifti, NIFTI_DATATYPE, "<h", code)
    with pytest.raises(InputError, match="x.nii"):
        read_nifti(nifti)
