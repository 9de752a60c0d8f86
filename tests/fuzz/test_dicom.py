"""Fuzzing the medical readers: DICOM series folders, single DICOM files and NIfTI files.

Real files are mutated — cut short, bytes flipped, inserted or deleted, header
elements (Rows, Columns, BitsAllocated, NumberOfFrames, ImagePositionPatient,
SeriesInstanceUID...) deleted or replaced by garbage, positions made NaN or
duplicated — and every reader must return a correct result or raise a ZooError.
For a series, "correct" is strict: one file of the phantom series is mutated,
so a volume must still hold every slice, the intact ones with their original
values and in their original order: a file is never silently dropped or moved.
"""
from __future__ import annotations

import gzip
import io
import struct
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz import harness

pydicom = pytest.importorskip("pydicom")
nibabel = pytest.importorskip("nibabel")

pytestmark = pytest.mark.filterwarnings("ignore")  # pydicom and nibabel warn about every oddity they read

SERIES_SHAPE, SERIES_SPACING = (6, 12, 14), (5.0, 8.0, 8.0)
# (tag, VR) of the header elements the mutations delete, garble or add.
TAGS = {
    "Rows": (0x00280010, "US"), "Columns": (0x00280011, "US"), "BitsAllocated": (0x00280100, "US"),
    "BitsStored": (0x00280101, "US"), "PixelRepresentation": (0x00280103, "US"),
    "SamplesPerPixel": (0x00280002, "US"), "NumberOfFrames": (0x00280008, "IS"),
    "ImagePositionPatient": (0x00200032, "DS"), "ImageOrientationPatient": (0x00200037, "DS"),
    "PixelSpacing": (0x00280030, "DS"), "SeriesInstanceUID": (0x0020000E, "UI"), "SOPClassUID": (0x00080016, "UI"),
    "RescaleSlope": (0x00281053, "DS"), "RescaleIntercept": (0x00281052, "DS"),
}
GARBAGE = [None, b"", b"NaN", b"NaN\\0\\0", b"0\\0\\NaN", b"inf\\0\\0", b"1A", b"-1", b"0", b"1e400", b"65535",
           b"0\\0", b"1\\0\\0\\1\\0\\0", b"1\\0\\0\\0\\1\\0\\0", b"abc", b"\x00\x00", b"\xff\xff", b"\x01\x00",
           b"\x00\x80", b"99999999", b"1.2.3", b"\xff\xfe\x00", b"2", b"32"]
PYDICOM_FILES = ["CT_small.dcm", "MR_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm",
                 "MR_small_jp2klossless.dcm", "MR_small_RLE.dcm", "JPEG2000.dcm", "693_J2KI.dcm", "emri_small.dcm",
                 "SC_rgb_small_odd.dcm", "eCT_Supplemental.dcm", "reportsi.dcm", "rtplan.dcm", "rtdose.dcm"]
MAX_FUZZ_VOXELS = "4000000"  # lying headers may ask for this much before the reader refuses


@pytest.fixture(autouse=True, scope="module")
def small_voxel_limit():
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ZOO_MAX_VOLUME_VOXELS", MAX_FUZZ_VOXELS)
        yield


# -- real files, built once ------------------------------------------------------------------
@lru_cache(maxsize=1)
def phantom_series() -> tuple[tuple[str, bytes], ...]:
    """A small phantom CT series as (file name, bytes), from the lowest slice to the top one."""
    from medical.io.dicom_writer import write_ct_series
    from medical.phantom import ct_phantom

    ct, _ = ct_phantom(1, shape=SERIES_SHAPE, spacing=SERIES_SPACING)
    with tempfile.TemporaryDirectory() as folder:
        paths = write_ct_series(ct, folder, uid_seed="fuzz")
        return tuple((path.name, path.read_bytes()) for path in paths)


@lru_cache(maxsize=1)
def phantom_volume() -> np.ndarray:
    from medical.phantom import ct_phantom

    return ct_phantom(1, shape=SERIES_SHAPE, spacing=SERIES_SPACING)[0].array


@lru_cache(maxsize=None)
def pydicom_file(name: str) -> bytes | None:
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name, download=False)
    return Path(path).read_bytes() if path else None


@lru_cache(maxsize=None)
def nifti_file(suffix: str) -> bytes:
    """A small int16 NIfTI (``.nii`` or ``.nii.gz``) with an oblique affine."""
    data = np.arange(5 * 6 * 7, dtype=np.int16).reshape(5, 6, 7)
    affine = np.array([[2.0, 0.3, 0, -30], [0, 3.0, 0, 20], [0.2, 0, 4.0, 10], [0, 0, 0, 1]])
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"x{suffix}"
        nibabel.save(nibabel.Nifti1Image(data, affine), path)
        return path.read_bytes()


# -- mutations -------------------------------------------------------------------------------
def _element(data: bytes, tag: int):
    """(start, value start, value end, implicit VR, little endian) of a top-level element, or of where it would go."""
    ds = pydicom.dcmread(io.BytesIO(data), defer_size=64, force=True)
    implicit, little = ds.original_encoding
    for key in sorted(ds.keys()):
        raw = ds.get_item(key, keep_deferred=True)
        if not hasattr(raw, "value_tell"):
            continue
        header = 8 if implicit or raw.VR not in ("OB", "OW", "OF", "SQ", "UT", "UN", "OD", "OL", "UC", "UR") else 12
        if key == tag:
            return raw.value_tell - header, raw.value_tell, raw.value_tell + raw.length, implicit, little
        if key > tag:
            start = raw.value_tell - header
            return start, start, start, implicit, little
    return len(data), len(data), len(data), implicit, little


def set_element(data: bytes, keyword: str, value: bytes | None) -> bytes:
    """``data`` with one element deleted (``value`` None) or holding the raw bytes ``value`` (added if absent)."""
    tag, vr = TAGS[keyword]
    try:
        start, value_start, end, implicit, little = _element(data, tag)
    except Exception:  # the file is already beyond pydicom: leave it as it is
        return data
    if value is None:
        return data[:start] + data[end:]
    order = "<" if little else ">"
    tag_bytes = struct.pack(f"{order}HH", tag >> 16, tag & 0xFFFF)
    header = tag_bytes + (struct.pack(f"{order}I", len(value)) if implicit else vr.encode() + struct.pack(f"{order}H", len(value)))
    return data[:start] + header + value + data[end:]


def positions(data: bytes) -> bytes | None:
    """The raw ImagePositionPatient value of a file, or None."""
    try:
        _, value_start, end, _, _ = _element(data, TAGS["ImagePositionPatient"][0])
    except Exception:
        return None
    return data[value_start:end] or None


def byte_mutations():
    """Mutations of raw bytes: cut short, flip, insert, delete."""
    fraction = st.floats(0, 1, allow_nan=False)
    return st.one_of(
        st.tuples(st.just("cut"), fraction),
        st.tuples(st.just("flip"), st.lists(st.tuples(fraction, st.integers(1, 255)), min_size=1, max_size=8)),
        st.tuples(st.just("insert"), fraction, st.binary(min_size=1, max_size=16)),
        st.tuples(st.just("delete"), fraction, st.integers(1, 64)),
    )


def dicom_mutations():
    return st.one_of(byte_mutations(), st.tuples(st.just("element"), st.sampled_from(sorted(TAGS)),
                                                 st.sampled_from(GARBAGE)))


def mutate(data: bytes, mutation) -> bytes:
    kind, *args = mutation
    where = lambda fraction: int(fraction * len(data))  # noqa: E731
    if kind == "cut":
        return data[:where(args[0])]
    if kind == "flip":
        flipped = bytearray(data)
        for fraction, mask in args[0]:
            if flipped:
                flipped[min(where(fraction), len(flipped) - 1)] ^= mask
        return bytes(flipped)
    if kind == "insert":
        return data[:where(args[0])] + args[1] + data[where(args[0]):]
    if kind == "delete":
        return data[:where(args[0])] + data[where(args[0]) + args[1]:]
    return set_element(data, *args)


# -- properties ------------------------------------------------------------------------------
def read_mutated_series(files: list[tuple[str, bytes]], **options):
    from medical.io.dicom import read_series

    with tempfile.TemporaryDirectory() as folder:
        for name, data in files:
            (Path(folder) / name).write_bytes(data)
        reader = "dicom-series-skip-damaged" if options else "dicom-series"
        volume = harness.call(reader, read_series, folder, **options)
        return volume, [Path(f).name for f in volume.metadata["files"]] if volume is not None else None


def assert_every_slice_kept_in_order(volume, names: list[str], mutated: set[int]) -> None:
    """The volume holds every file's slice but the ones it says it skipped, intact ones unchanged and in order."""
    original = [name for name, _ in phantom_series()]
    skipped = [Path(f).name for f in volume.metadata["skipped_files"]]
    assert {original.index(name) for name in skipped} <= mutated, "an intact file was skipped"
    assert volume.shape[0] == len(original) - len(skipped), f"a {volume.shape[0]}-slice volume from {len(original)} files"
    assert sorted(names + skipped) == sorted(original)
    intact = [name for name in names if original.index(name) not in mutated]
    assert intact == [name for k, name in enumerate(original) if k not in mutated], "intact slices reordered"
    stack = phantom_volume()
    for k, name in enumerate(names):
        if original.index(name) not in mutated:
            np.testing.assert_array_equal(volume.array[k], stack[original.index(name)])
    assert np.all(np.isfinite(volume.affine))


@given(victim=st.integers(0, SERIES_SHAPE[0] - 1), mutation=dicom_mutations(), skip_damaged=st.booleans())
def test_series_with_one_mutated_file(victim, mutation, skip_damaged):
    files = list(phantom_series())
    files[victim] = (files[victim][0], mutate(files[victim][1], mutation))
    volume, names = read_mutated_series(files, **({"skip_damaged": True} if skip_damaged else {}))
    if volume is not None:
        assert_every_slice_kept_in_order(volume, names, {victim})
        assert skip_damaged or not volume.metadata["skipped_files"]


@given(victim=st.integers(0, SERIES_SHAPE[0] - 1), mutation=dicom_mutations())
def test_seg_written_on_a_mutated_series_stays_in_its_target(victim, mutation):
    """A SEG on a series with one mutated file: written at its path and nowhere else, or a ZooError."""
    from medical.io.dicom import read_series
    from medical.io.seg import write_seg

    files = list(phantom_series())
    files[victim] = (files[victim][0], mutate(files[victim][1], mutation))
    with tempfile.TemporaryDirectory() as root:
        folder, target = Path(root) / "series", Path(root) / "out" / "seg.dcm"
        folder.mkdir()
        for name, data in files:
            (folder / name).write_bytes(data)
        volume = harness.call("dicom-series", read_series, folder)
        if volume is None:
            return
        before = harness.files_under(Path(root))
        mask = volume.with_array((volume.array > 0).astype(np.uint8))
        written = harness.call("dicom-seg-write", write_seg, mask, volume, target)
        assert harness.files_under(Path(root)) - before <= {target, target.parent}
        if written is not None:
            assert written == target and target.is_file()


@given(victims=st.lists(st.integers(0, SERIES_SHAPE[0] - 1), min_size=2, max_size=3, unique=True),
       mutations=st.lists(dicom_mutations(), min_size=3, max_size=3))
def test_series_with_several_mutated_files(victims, mutations):
    files = list(phantom_series())
    for victim, mutation in zip(victims, mutations):
        files[victim] = (files[victim][0], mutate(files[victim][1], mutation))
    volume, names = read_mutated_series(files)
    if volume is not None:
        assert_every_slice_kept_in_order(volume, names, set(victims))


@given(victim=st.integers(0, SERIES_SHAPE[0] - 1), source=st.integers(0, SERIES_SHAPE[0] - 1),
       value=st.sampled_from([b"NaN\\NaN\\NaN", b"0\\0\\NaN", b"0\\0\\inf", b"0\\0\\-inf", b"0\\0\\1e308", None]))
def test_nan_or_duplicate_positions_never_reorder_silently(victim, source, value):
    """A slice moved onto another's position (or to NaN, infinity, nowhere) is an error, never a reordered volume."""
    files = list(phantom_series())
    if value is None:
        value = positions(files[source][1])
    if source == victim and value == positions(files[source][1]):
        return
    files[victim] = (files[victim][0], set_element(files[victim][1], "ImagePositionPatient", value))
    volume, names = read_mutated_series(files)
    if volume is not None:  # only a top or bottom slice moved one step beyond the other end stays evenly spaced
        assert_every_slice_kept_in_order(volume, names, {victim})


@given(name=st.sampled_from(PYDICOM_FILES), mutation=dicom_mutations())
def test_single_dicom_files(name, mutation):
    from medical.io.dicom import list_series, read_series
    from medical.io.dicom_file import read_image

    data = pydicom_file(name)
    if data is None:
        return
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(mutate(data, mutation))
        volume = harness.call("dicom-file-series", read_series, path)
        if volume is not None:
            assert np.all(np.isfinite(volume.affine)) and volume.array.ndim == 3
        image = harness.call("dicom-image", read_image, path)
        if image is not None:
            assert image.ndim in (2, 3) and image.dtype == np.float32
        harness.call("dicom-list-series", list_series, folder)


# -- NIfTI -----------------------------------------------------------------------------------
# (offset, struct format) of NIfTI-1 header fields worth lying in.
NIFTI_FIELDS = {
    "sizeof_hdr": (0, "<i"), "dim": (40, "<8h"), "datatype": (70, "<h"), "bitpix": (72, "<h"),
    "pixdim": (76, "<8f"), "vox_offset": (108, "<f"), "scl_slope": (112, "<f"), "scl_inter": (116, "<f"),
    "qform_code": (252, "<h"), "sform_code": (254, "<h"), "quatern": (256, "<6f"), "srow": (280, "<12f"),
}
_SHORTS = st.integers(-32768, 32767)
_FLOATS = st.one_of(st.floats(width=32, allow_nan=True, allow_infinity=True), st.sampled_from([0.0, 1.0, -1.0, 1e30]))


def nifti_field_mutations():
    def values(field: str):
        _, fmt = NIFTI_FIELDS[field]
        count = struct.calcsize(fmt) // struct.calcsize(fmt[-1])
        element = st.integers(-2**31, 2**31 - 1) if fmt[-1] == "i" else _SHORTS if fmt[-1] == "h" else _FLOATS
        return st.tuples(st.just("field"), st.just(field), st.lists(element, min_size=count, max_size=count))

    return st.sampled_from(sorted(NIFTI_FIELDS)).flatmap(values)


def mutate_nifti(data: bytes, compressed: bool, mutation) -> bytes:
    """A mutated NIfTI: header fields are changed in the uncompressed stream, then compressed again."""
    if mutation[0] != "field":
        return mutate(data, mutation)
    raw = bytearray(gzip.decompress(data) if compressed else data)
    offset, fmt = NIFTI_FIELDS[mutation[1]]
    raw[offset:offset + struct.calcsize(fmt)] = struct.pack(fmt, *mutation[2])
    return gzip.compress(bytes(raw)) if compressed else bytes(raw)


@given(suffix=st.sampled_from([".nii", ".nii.gz"]), mutation=st.one_of(byte_mutations(), nifti_field_mutations()))
def test_nifti_files(suffix, mutation):
    from medical.io import read_volume

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"x{suffix}"
        path.write_bytes(mutate_nifti(nifti_file(suffix), suffix.endswith(".gz"), mutation))
        volume = harness.call("nifti", read_volume, path)
    if volume is not None:
        assert volume.array.ndim == 3 and np.all(np.isfinite(volume.affine))
        assert volume.array.size <= int(MAX_FUZZ_VOXELS)


def test_the_mutations_reach_the_header():
    """The element surgery works: a garbled Rows is read back as garbled, a deleted one is gone."""
    name, data = phantom_series()[0]
    assert pydicom.dcmread(io.BytesIO(set_element(data, "Rows", b"\x07\x00"))).Rows == 7
    assert "Rows" not in pydicom.dcmread(io.BytesIO(set_element(data, "Rows", None)))
    added = set_element(data, "NumberOfFrames", b"1A")
    assert pydicom.dcmread(io.BytesIO(added))["NumberOfFrames"].VR == "IS"
    dims = mutate_nifti(nifti_file(".nii.gz"), True, ("field", "dim", [3, 1, 2, 3, 1, 1, 1, 1]))
    assert struct.unpack("<8h", gzip.decompress(dims)[40:56])[1] == 1
