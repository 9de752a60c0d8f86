"""Reading DICOM series: geometry, order, values, and every kind of bad input."""
from __future__ import annotations

import shutil
import sys

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from medical.io.dicom import list_series, read_series
from medical.io.dicom_file import read_image
from medical.io.volume import Volume
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


# -- damaged and lying files (issue 13): a file that claims to be a slice is read, or named in an InputError ---------
def by_position(series) -> list:
    """The series' files from the lowest slice to the top one."""
    return sorted(series.iterdir(), key=lambda p: float(pydicom.dcmread(p).ImagePositionPatient[2]))


def cut(path, size: int) -> None:
    path.write_bytes(path.read_bytes()[:size])


@pytest.mark.parametrize("which", [-1, 0, 10])  # the top, bottom and a middle slice
@pytest.mark.parametrize("size", [0, 100, 200, 900, -500])  # empty, in the preamble, the meta, the header, the pixels
def test_a_cut_short_slice_is_an_error_naming_it(series, which, size):
    victim = by_position(series)[which]
    cut(victim, size)
    with pytest.raises(InputError, match=rf"{victim.name}: .*(cut short|cannot be parsed)") as error:
        read_series(series)
    assert "missing slices" not in str(error.value)


def test_skip_damaged_reads_the_series_without_the_named_file(phantom, series, caplog):
    ct, _ = phantom
    top = by_position(series)[-1]
    cut(top, 200)
    volume = read_series(series, skip_damaged=True)
    assert volume.shape == (ct.shape[0] - 1, *ct.shape[1:])
    np.testing.assert_array_equal(volume.array, ct.array[:-1])
    assert volume.metadata["skipped_files"] == [str(top)] and top.name in caplog.text


def test_skip_damaged_still_refuses_the_gap_a_middle_file_leaves(series):
    cut(by_position(series)[10], 200)
    with pytest.raises(InputError, match="missing slices"):
        read_series(series, skip_damaged=True)


def test_a_readme_beside_the_series_is_not_part_of_it(phantom, series, caplog):
    (series / "README.txt").write_text("CT abdomen, exported by hand\n")
    assert read_series(series).shape == phantom[0].shape
    assert "skipped 1 file(s) that are not DICOM" in caplog.text


def test_a_garbage_file_named_dcm_claims_to_be_a_slice(series):
    (series / "extra.dcm").write_bytes(b"not really DICOM at all" * 10)
    with pytest.raises(InputError, match="extra.dcm: cannot be parsed as DICOM"):
        read_series(series)


def rewrite(path, **values) -> None:
    """Set header values of one file (None deletes the attribute)."""
    ds = pydicom.dcmread(path)
    for keyword, value in values.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    ds.save_as(path)


@pytest.mark.parametrize("position", [["0", "0", "NaN"], ["0", "inf", "10"], ["0", "0"], ["0", "0", "1e300"]])
def test_a_non_finite_or_malformed_position_is_an_error_naming_the_file(series, position):
    victim = by_position(series)[5]
    rewrite(victim, ImagePositionPatient=position)
    with pytest.raises(InputError, match=rf"{victim.name}: expected 3 finite number\(s\) in ImagePositionPatient"):
        read_series(series)


@pytest.mark.parametrize("values, message", [
    ({"ImageOrientationPatient": [1, 0, 0, 1, 0, 0]}, "perpendicular unit cosines"),
    ({"ImageOrientationPatient": [1, 0, 0, 0, "NaN", 1]}, "finite number"),
    ({"ImageOrientationPatient": None}, "expected ImageOrientationPatient"),
    ({"PixelSpacing": [0, 1]}, "positive PixelSpacing"),
    ({"PixelSpacing": ["NaN", 1]}, "finite number"),
    ({"RescaleSlope": "inf"}, "finite number"),
    ({"Rows": None}, "expected Rows"),
    ({"BitsAllocated": 0}, "BitsAllocated between"),
    ({"PixelRepresentation": 7}, "PixelRepresentation between"),
    ({"PixelData": None}, "without pixel data"),
])
def test_a_bad_header_value_is_an_error_naming_the_file(series, values, message):
    victim = by_position(series)[-1]
    rewrite(victim, **values)
    with pytest.raises(InputError, match=rf"{victim.name}: .*{message}"):
        read_series(series)


@pytest.mark.parametrize("values", [{"Rows": 4000}, {"Columns": 45}, {"Rows": 10}, {"NumberOfFrames": 2}])
def test_rows_columns_or_frames_that_do_not_match_the_pixel_data_are_errors(series, values):
    victim = by_position(series)[3]
    rewrite(victim, **values)
    with pytest.raises(InputError, match=rf"{victim.name}: holds 3,520 bytes of pixel data where .* needs"):
        read_series(series)
    with pytest.raises(InputError, match="holds 3,520 bytes of pixel data"):
        read_image(victim)


def garble_number_of_frames(path, text: bytes) -> None:
    """Store NumberOfFrames as raw ``text`` (pydicom refuses to write an invalid IS value)."""
    rewrite(path, NumberOfFrames=11)
    element = b"\x28\x00\x08\x00IS\x02\x0011"
    data = path.read_bytes()
    assert data.count(element) == 1
    path.write_bytes(data.replace(element, b"\x28\x00\x08\x00IS" + len(text).to_bytes(2, "little") + text))


def test_number_of_frames_1a_is_an_error_naming_the_file(series):
    victim = by_position(series)[7]
    garble_number_of_frames(victim, b"1A")
    with pytest.raises(InputError, match=rf"{victim.name}: expected an integer NumberOfFrames, found '1A'"):
        read_series(series)
    with pytest.raises(InputError, match="expected an integer NumberOfFrames"):
        read_image(victim)


def test_read_image_without_pixel_data_or_cut_short(tmp_path):
    path = tmp_path / "ct.dcm"
    shutil.copy(dicom_testfile("CT_small.dcm"), path)
    rewrite(path, PixelData=None)
    with pytest.raises(InputError, match="object without pixel data"):
        read_image(path)
    shutil.copy(dicom_testfile("CT_small.dcm"), path)
    cut(path, path.stat().st_size - 1000)
    with pytest.raises(InputError, match="ct.dcm: the file ends inside PixelData"):
        read_image(path)


def test_compressed_pixel_data_cannot_claim_a_bomb_of_a_size(tmp_path):
    path = tmp_path / "j2k.dcm"
    shutil.copy(dicom_testfile("MR_small_jp2klossless.dcm"), path)
    rewrite(path, Rows=20000, Columns=20000)  # 800 MB from 6 kB
    with pytest.raises(InputError, match="Rows, Columns or NumberOfFrames is wrong"):
        read_series(path)
    with pytest.raises(InputError, match="Rows, Columns or NumberOfFrames is wrong"):
        read_image(path)


def test_a_series_larger_than_the_voxel_limit_is_refused_before_reading(series, monkeypatch):
    monkeypatch.setenv("ZOO_MAX_VOLUME_VOXELS", "10000")
    with pytest.raises(InputError, match="more than the limit of 10,000; set \\$ZOO_MAX_VOLUME_VOXELS"):
        read_series(series)


def test_list_series_counts_damaged_files(series):
    cut(by_position(series)[4], -500)
    (entry,) = list_series(series)
    assert entry["files"] == 20 and entry["damaged"] == 1
    cut(by_position(series)[8], 900)  # cut before its SeriesInstanceUID: listed apart, as of an unknown series
    assert sorted((e["series_uid"] != "", e["files"], e["damaged"]) for e in list_series(series)) == [(False, 1, 1), (True, 19, 1)]
