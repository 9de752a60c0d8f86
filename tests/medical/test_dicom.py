"""Reading DICOM series: geometry, order, values, and every kind of bad input."""
from __future__ import annotations

import shutil
import sys

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from medical.dicom import list_series, read_image, read_series
from medical.volume import Volume
from tests.medical.helpers import SMALL_SPACING, same_voxels, small_phantom, write_series
from zoo.errors import InputError


def dicom_testfile(name: str) -> str:
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} is not installed (pydicom-data)")
    return path


@pytest.fixture(scope="module")
def phantom():
    return small_phantom(3)


@pytest.fixture
def series(phantom, tmp_path):
    ct, _ = phantom
    write_series(ct, tmp_path / "series")
    return tmp_path / "series"


def test_series_reads_back_voxel_for_voxel_with_its_geometry(phantom, series):
    ct, _ = phantom
    volume = read_series(series)
    assert volume.array.dtype == np.int16
    np.testing.assert_array_equal(volume.array, ct.array)
    np.testing.assert_allclose(volume.affine, ct.affine, atol=1e-4)
    np.testing.assert_allclose(volume.spacing, SMALL_SPACING, atol=1e-4)
    assert volume.metadata["modality"] == "CT" and volume.metadata["units"] == "HU"
    assert len(volume.metadata["sop_instance_uids"]) == ct.shape[0]


def test_order_comes_from_positions_not_instance_number_or_names(phantom, series):
    ct, _ = phantom
    for path in series.iterdir():  # scramble InstanceNumber as well as the file names
        ds = pydicom.dcmread(path)
        ds.InstanceNumber = int(ds.InstanceNumber) * 7919 % 101
        ds.save_as(path)
    np.testing.assert_array_equal(read_series(series).array, ct.array)


def test_spacing_comes_from_positions_not_slice_thickness(phantom, tmp_path):
    ct, _ = phantom
    write_series(ct, tmp_path / "s", slice_thickness=1.25)
    assert read_series(tmp_path / "s").spacing[0] == pytest.approx(SMALL_SPACING[0], abs=1e-4)


def test_rescale_gives_hounsfield_units(phantom, series):
    ct, labels = phantom
    volume = read_series(series)
    assert abs(volume.array[labels.array == 1].mean() - 105) < 5  # liver
    assert abs(volume.array[labels.array == 2].mean() - 165) < 8  # kidney
    assert volume.array.min() == -1000  # air, stored as 24 with intercept -1024
    assert pydicom.dcmread(next(series.iterdir())).RescaleIntercept == -1024


@pytest.mark.parametrize("flip_axis", [0, 1, 2])
def test_flipped_or_feet_first_series_keeps_every_voxel_in_place(phantom, tmp_path, flip_axis):
    ct, _ = phantom
    flipped = np.flip(ct.array, flip_axis).copy()
    affine = ct.affine.copy()
    affine[:3, 3] += affine[:3, flip_axis] * (ct.shape[flip_axis] - 1)
    affine[:3, flip_axis] *= -1
    original = Volume(flipped, affine)
    write_series(original, tmp_path / "s")
    volume = read_series(tmp_path / "s")
    assert same_voxels(volume, original)


def test_oblique_sagittal_series(phantom, tmp_path):
    ct, _ = phantom
    angle = np.deg2rad(20)
    rotation = np.array([[0, 0, 1], [np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0]]).T
    affine = np.eye(4)
    affine[:3, :3] = rotation * np.array(SMALL_SPACING)
    affine[:3, 3] = [-40.0, 12.5, 80.0]
    original = Volume(ct.array, affine)
    write_series(original, tmp_path / "s")
    volume = read_series(tmp_path / "s")
    # Its slice axis points against the image normal, so the reader stacks the other way round.
    np.testing.assert_allclose(volume.affine[:3, 1:3], affine[:3, 1:3], atol=1e-4)
    np.testing.assert_allclose(volume.affine[:3, 0], -affine[:3, 0], atol=1e-4)
    assert same_voxels(volume, original)


def test_mixed_series_raise_a_listing_and_can_be_picked(phantom, tmp_path):
    ct, _ = phantom
    write_series(ct, tmp_path / "mixed", uid_seed="first")
    write_series(Volume(ct.array[:5], ct.affine), tmp_path / "other", uid_seed="second", shuffle_names=False)
    for path in (tmp_path / "other").iterdir():
        shutil.move(path, tmp_path / "mixed" / f"x{path.name}")
    found = list_series(tmp_path / "mixed")
    assert sorted(s["files"] for s in found) == [5, ct.shape[0]]
    with pytest.raises(InputError, match="found 2 mixed together") as error:
        read_series(tmp_path / "mixed")
    for entry in found:
        assert entry["series_uid"] in str(error.value)
    small = next(s for s in found if s["files"] == 5)
    assert read_series(tmp_path / "mixed", series_uid=small["series_uid"]).shape == (5, *ct.shape[1:])


def test_missing_slice_is_an_error_naming_the_gap(series):
    files = sorted(series.iterdir(), key=lambda p: float(pydicom.dcmread(p).ImagePositionPatient[2]))
    files[7].unlink()
    with pytest.raises(InputError, match=r"missing slices: about 1 slice\(s\) missing between"):
        read_series(series)


def test_duplicated_slice_is_an_error(series):
    source = next(series.iterdir())
    ds = pydicom.dcmread(source)
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.save_as(series / "copy.dcm")
    with pytest.raises(InputError, match="duplicated slices"):
        read_series(series)


def test_inconsistent_spacing_and_orientation_are_errors(series):
    files = sorted(series.iterdir(), key=lambda p: float(pydicom.dcmread(p).ImagePositionPatient[2]))
    ds = pydicom.dcmread(files[-1])
    ds.ImagePositionPatient = [ds.ImagePositionPatient[0], ds.ImagePositionPatient[1], float(ds.ImagePositionPatient[2]) + 2.5]
    ds.save_as(files[-1])
    with pytest.raises(InputError, match="inconsistent slice spacing"):
        read_series(series)
    ds = pydicom.dcmread(files[3])
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0.8, 0.6]
    ds.save_as(files[3])
    with pytest.raises(InputError, match="inconsistent orientation"):
        read_series(series)


def test_a_slice_of_another_size_is_an_error(series):
    path = next(series.iterdir())
    ds = pydicom.dcmread(path)
    ds.Rows, ds.PixelData = ds.Rows - 1, ds.PixelData[: (ds.Rows - 1) * ds.Columns * 2]
    ds.save_as(path)
    with pytest.raises(InputError, match="inconsistent image sizes in the series"):
        read_series(series)


@pytest.mark.parametrize("name, kind", [("reportsi.dcm", "Basic Text SR Storage"), ("rtplan.dcm", "RT Plan Storage")])
def test_non_image_dicom_is_rejected_clearly(tmp_path, name, kind):
    shutil.copy(dicom_testfile(name), tmp_path / name)
    with pytest.raises(InputError, match=f"found only non-image objects: {kind}"):
        read_series(tmp_path)


def test_a_report_beside_a_series_is_skipped_with_a_warning(phantom, series, caplog):
    shutil.copy(dicom_testfile("reportsi.dcm"), series / "report.dcm")
    assert read_series(series).shape == phantom[0].shape
    assert "ignoring 1 non-image DICOM object" in caplog.text


def test_native_pixels_match_pydicom_for_signed_ct():
    path = dicom_testfile("CT_small.dcm")
    ds = pydicom.dcmread(path)
    volume = read_series(path)
    expected = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_array_equal(volume.array[0], expected)
    np.testing.assert_allclose(volume.origin, [float(v) for v in ds.ImagePositionPatient])


def _enhanced_ct():
    """pydicom's Enhanced CT (2 frames, per-frame positions, rescale in the shared groups)."""
    return pydicom.dcmread(dicom_testfile("eCT_Supplemental.dcm"))


def test_enhanced_multiframe_uses_per_frame_positions_and_shared_rescale(tmp_path):
    ds = _enhanced_ct()
    rescale = ds.SharedFunctionalGroupsSequence[0].PixelValueTransformationSequence[0]
    hu = ds.pixel_array * float(rescale.RescaleSlope) + float(rescale.RescaleIntercept)
    # Row cosine -x, column cosine +y: the normal is -z, so frames stack from z=-149 down to z=-159.
    volume = read_series(dicom_testfile("eCT_Supplemental.dcm"))
    assert volume.shape == (2, 512, 512)
    np.testing.assert_array_equal(volume.array, hu[::-1])
    np.testing.assert_allclose(volume.origin, [99.5, -301.5, -149.0])
    np.testing.assert_allclose(volume.affine[:3, 0], [0, 0, -10.0])  # the step between positions
    np.testing.assert_allclose(volume.directions[:, 2], [-1, 0, 0])
    # Swap the frames' positions: the same pixels now stack the other way round.
    frames = ds.PerFrameFunctionalGroupsSequence
    frames[0].PlanePositionSequence, frames[1].PlanePositionSequence = frames[1].PlanePositionSequence, frames[0].PlanePositionSequence
    ds.save_as(tmp_path / "swapped.dcm")
    np.testing.assert_array_equal(read_series(tmp_path / "swapped.dcm").array, hu)


def test_enhanced_multiframe_compressed_matches_native(tmp_path):
    from pydicom.uid import JPEG2000Lossless

    ds = _enhanced_ct()
    ds.compress(JPEG2000Lossless)
    ds.save_as(tmp_path / "ect_j2k.dcm")
    np.testing.assert_array_equal(read_series(tmp_path / "ect_j2k.dcm").array, read_series(dicom_testfile("eCT_Supplemental.dcm")).array)


def test_multiframe_without_positions_is_refused():
    with pytest.raises(InputError, match="without per-frame functional groups has no position per frame"):
        read_series(dicom_testfile("emri_small.dcm"))


@pytest.mark.parametrize("compressed, native", [
    ("MR_small_jp2klossless.dcm", "MR_small.dcm"),
    ("MR_small_jpeg_ls_lossless.dcm", "MR_small.dcm"),  # JPEG-LS through pylibjpeg-libjpeg
    ("MR_small_RLE.dcm", "MR_small.dcm"),
    ("693_J2KR.dcm", "693_UNCR.dcm"),  # pydicom-data: a 512×512 CT slice
])
def test_lossless_compressed_series_decode_to_the_native_values(compressed, native):
    np.testing.assert_array_equal(read_series(dicom_testfile(compressed)).array, read_series(dicom_testfile(native)).array)


def test_missing_decoder_plugin_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "openjpeg", None)  # as if pylibjpeg-openjpeg were not installed
    with pytest.raises(InputError, match=r"JPEG 2000 .*needs pylibjpeg-openjpeg to decode"):
        read_series(dicom_testfile("MR_small_jp2klossless.dcm"))


def test_ultrasound_reads_as_a_grey_image_but_is_not_a_volume():
    image = read_image(dicom_testfile("US1_UNCI.dcm"))
    assert image.shape == (480, 640) and image.dtype == np.float32
    with pytest.raises(InputError, match="expected grey-level images for a volume"):
        read_series(dicom_testfile("US1_UNCI.dcm"))
    with pytest.raises(InputError, match="expected ImagePositionPatient and ImageOrientationPatient"):
        read_series(dicom_testfile("gdcm-US-ALOKA-16.dcm"))


def test_not_dicom_at_all(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match="expected DICOM files"):
        read_series(tmp_path)
