"""DICOM series → :class:`medical.volume.Volume`, keeping geometry.

A folder is read as one series: files are grouped by SeriesInstanceUID (a folder
holding several series raises an error listing them; pick one with
``series_uid=``), slices are ordered by their position along the slice normal
(the cross product of ImageOrientationPatient's two cosines, dotted with
ImagePositionPatient — never by file name or InstanceNumber), and the slice
step is taken from those positions, not from SliceThickness. Missing or
duplicated slices, inconsistent orientation, pixel spacing or slice spacing,
and non-image objects (SR, RTPLAN, ...) raise :class:`zoo.errors.InputError`
naming the files involved: a volume is never silently misordered.

Single-frame images and enhanced multi-frame objects (positions and rescale per
frame from the per-frame functional groups) share one code path. Native pixel
data is read straight from each file's pixel data offset on a thread pool;
compressed transfer syntaxes are decoded through pydicom's pylibjpeg plugins
(an error names the plugin to install when it is missing).

Values: RescaleSlope/RescaleIntercept are applied per slice (CT in HU). The
result is int16 when every slope is 1, every intercept an integer and the values
fit, else float32.
"""
from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from medical.volume import Volume
from zoo.errors import InputError

log = logging.getLogger(__name__)

# Relative tolerance on slice gaps and absolute tolerance (mm) on positions and cosines.
GAP_TOLERANCE = 0.01
POSITION_TOLERANCE_MM = 0.05
COSINE_TOLERANCE = 1e-4
# SOP classes that hold pixel data but are not volumes of the patient.
NOT_VOLUMES = {
    "1.2.840.10008.5.1.4.1.1.66.4": "Segmentation Storage",
    "1.2.840.10008.5.1.4.1.1.481.2": "RT Dose Storage",
}
# Transfer syntaxes whose decoding needs a pylibjpeg plugin: uid -> (module, package).
_JPEG = ("libjpeg", "pylibjpeg-libjpeg")
_JPEG2000 = ("openjpeg", "pylibjpeg-openjpeg")
DECODER_PLUGINS = {
    "1.2.840.10008.1.2.4.50": _JPEG, "1.2.840.10008.1.2.4.51": _JPEG, "1.2.840.10008.1.2.4.57": _JPEG,
    "1.2.840.10008.1.2.4.70": _JPEG, "1.2.840.10008.1.2.4.80": _JPEG, "1.2.840.10008.1.2.4.81": _JPEG,
    "1.2.840.10008.1.2.4.90": _JPEG2000, "1.2.840.10008.1.2.4.91": _JPEG2000,
    "1.2.840.10008.1.2.4.201": _JPEG2000, "1.2.840.10008.1.2.4.202": _JPEG2000, "1.2.840.10008.1.2.4.203": _JPEG2000,
}
NATIVE_LITTLE_ENDIAN = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}  # implicit and explicit VR
_PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"


@dataclass
class Slice:
    """One 2-D frame of a series and where it lies: a file (and frame index, for multi-frame objects)."""

    path: Path
    frame: int | None
    position: np.ndarray  # ImagePositionPatient, LPS mm
    orientation: np.ndarray  # ImageOrientationPatient: row cosine, column cosine
    pixel_spacing: tuple[float, float]  # (between rows, between columns), mm
    slope: float
    intercept: float
    sop_instance_uid: str

    def where(self) -> str:
        return f"{self.path.name}" + (f" frame {self.frame + 1}" if self.frame is not None else "")


def read_series(path: str | os.PathLike, *, series_uid: str | None = None, workers: int | None = None) -> Volume:
    """Read a DICOM series (a folder, or one multi-frame file) into a Volume.

    ``series_uid`` picks one series from a folder holding several; ``workers``
    sizes the thread pool that reads pixel data (default: up to 8).
    """
    headers = _read_headers(_dicom_files(Path(path)), workers)
    series = _select_series(_image_headers(headers, Path(path)), series_uid, Path(path))
    ordered, step = _order([frame for file, ds in series for frame in _slices(file, ds)])
    pixels = _read_pixels(ordered, dict(series), workers)
    return Volume(_rescale(pixels, ordered), _affine(ordered[0], step), _metadata(series[0][1], ordered))


def list_series(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The image series in a folder: uid, modality, description and number of files each."""
    headers = _image_headers(_read_headers(_dicom_files(Path(path)), None), Path(path))
    series: dict[str, dict[str, Any]] = {}
    for _, ds in headers:
        uid = str(ds.get("SeriesInstanceUID", ""))
        entry = series.setdefault(uid, {"series_uid": uid, "modality": str(ds.get("Modality", "")),
                                        "description": str(ds.get("SeriesDescription", "")), "files": 0})
        entry["files"] += 1
    return list(series.values())


# -- files and headers -----------------------------------------------------------------
def _dicom_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise InputError(f"expected a DICOM series folder or file at {path}, found nothing there")
    files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise InputError(f"expected DICOM files in {path}, the folder is empty")
    return files


def _read_header(path: Path):
    """The dataset up to (not including) its pixel data, or None when ``path`` is not DICOM."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        if int(ds.get("NumberOfFrames", 1) or 1) > 1:
            # Functional groups (5200,9229/9230) follow the pixel data: parse them, defer the pixels.
            ds = pydicom.dcmread(path, defer_size=4096)
        return ds
    except (InvalidDicomError, EOFError, OSError):
        return None


def _read_headers(files: Sequence[Path], workers: int | None) -> list[tuple[Path, Any]]:
    with ThreadPoolExecutor(_workers(workers)) as pool:
        headers = list(pool.map(_read_header, files))
    found = [(path, ds) for path, ds in zip(files, headers) if ds is not None]
    skipped = len(files) - len(found)
    if skipped:
        log.warning("skipped %d file(s) that are not DICOM (e.g. %s)", skipped,
                    next(p for p, ds in zip(files, headers) if ds is None))
    if not found:
        raise InputError(f"expected DICOM files (with the DICM preamble), found none among {len(files)} file(s), "
                         f"e.g. {files[0]}")
    return found


def _workers(workers: int | None) -> int:
    return workers or min(8, (os.cpu_count() or 1) + 2)


def _sop_class_name(ds) -> str:
    uid = ds.get("SOPClassUID")
    return getattr(uid, "name", None) or str(uid or "unknown SOP class")


def _image_headers(headers: list[tuple[Path, Any]], where: Path) -> list[tuple[Path, Any]]:
    """Headers of image objects; non-image ones (SR, RTPLAN, SEG...) are skipped with a warning, or rejected if alone."""
    images, others = [], []
    for path, ds in headers:
        is_image = "Rows" in ds and "Columns" in ds and str(ds.get("SOPClassUID", "")) not in NOT_VOLUMES
        (images if is_image else others).append((path, ds))
    if not images:
        kinds = sorted({f"{_sop_class_name(ds)} ({ds.get('Modality', '?')})" for _, ds in others})
        raise InputError(f"expected DICOM images in {where}, found only non-image objects: {', '.join(kinds)}; "
                         "structured reports, RT plans, segmentations and the like are not volumes")
    if others:
        log.warning("ignoring %d non-image DICOM object(s) in %s: %s", len(others), where,
                    ", ".join(sorted({_sop_class_name(ds) for _, ds in others})))
    return images


def _select_series(headers: list[tuple[Path, Any]], series_uid: str | None, where: Path) -> list[tuple[Path, Any]]:
    groups: dict[str, list[tuple[Path, Any]]] = {}
    for path, ds in headers:
        groups.setdefault(str(ds.get("SeriesInstanceUID", "")), []).append((path, ds))
    if series_uid is not None:
        if series_uid not in groups:
            raise InputError(f"expected series {series_uid} in {where}, found {sorted(groups)}")
        return groups[series_uid]
    if len(groups) > 1:
        listing = "; ".join(
            f"{uid} ({members[0][1].get('Modality', '?')}, {str(members[0][1].get('SeriesDescription', '')) or 'no description'}, "
            f"{len(members)} file(s))" for uid, members in groups.items())
        raise InputError(f"expected one series in {where}, found {len(groups)} mixed together: {listing}; "
                         "pass series_uid= to read one (medical.dicom.list_series lists them)")
    return next(iter(groups.values()))


# -- slices and their order ------------------------------------------------------------
def _slices(path: Path, ds) -> list[Slice]:
    """The frames of one file with their geometry: enhanced multi-frame or classic single-frame."""
    if int(ds.get("SamplesPerPixel", 1)) != 1:
        raise InputError(f"{path.name}: expected grey-level images for a volume, got {ds.get('SamplesPerPixel')} samples "
                         f"per pixel ({ds.get('PhotometricInterpretation')}); read colour images with read_image")
    if "PerFrameFunctionalGroupsSequence" in ds:
        shared = ds.get("SharedFunctionalGroupsSequence", [None])[0]
        return [_frame_slice(path, ds, i, frame, shared) for i, frame in enumerate(ds.PerFrameFunctionalGroupsSequence)]
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise InputError(f"{path.name}: a {frames}-frame {_sop_class_name(ds)} object without per-frame functional "
                         "groups has no position per frame, so it cannot be placed as a volume")
    return [Slice(path, None, *_plane(ds, path), float(ds.get("RescaleSlope", 1) or 1),
                  float(ds.get("RescaleIntercept", 0) or 0), str(ds.get("SOPInstanceUID", "")))]


def _plane(ds, path: Path, what: str = "") -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """(ImagePositionPatient, ImageOrientationPatient, PixelSpacing) of a dataset or functional-group item."""
    missing = [k for k in ("ImagePositionPatient", "ImageOrientationPatient") if k not in ds]
    if missing:
        raise InputError(f"{path.name}{what}: expected {' and '.join(missing)} to place the image in the patient, "
                         "found none (a projection or ultrasound image is not a volume; read it with read_image)")
    spacing = ds.get("PixelSpacing") or [1.0, 1.0]
    return (np.asarray(ds.ImagePositionPatient, dtype=float), np.asarray(ds.ImageOrientationPatient, dtype=float),
            (float(spacing[0]), float(spacing[1])))


def _frame_slice(path: Path, ds, index: int, frame, shared) -> Slice:
    """One frame of an enhanced multi-frame object; each group comes from the frame, else from the shared groups."""
    def group(name: str):
        for source in (frame, shared):
            if source is not None and name in source:
                return source[name][0]
        return None

    what = f" frame {index + 1}"
    position, orientation, measures = group("PlanePositionSequence"), group("PlaneOrientationSequence"), group("PixelMeasuresSequence")
    if position is None or orientation is None:
        raise InputError(f"{path.name}{what}: expected PlanePositionSequence and PlaneOrientationSequence "
                         "in the per-frame or shared functional groups, found none")
    spacing = measures.get("PixelSpacing") if measures is not None else None
    rescale = group("PixelValueTransformationSequence")
    slope = float(rescale.get("RescaleSlope", 1)) if rescale is not None else float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(rescale.get("RescaleIntercept", 0)) if rescale is not None else float(ds.get("RescaleIntercept", 0) or 0)
    return Slice(path, index, np.asarray(position.ImagePositionPatient, dtype=float),
                 np.asarray(orientation.ImageOrientationPatient, dtype=float),
                 (float(spacing[0]), float(spacing[1])) if spacing else (1.0, 1.0), slope, intercept,
                 str(ds.get("SOPInstanceUID", "")))


def slice_normal(orientation: np.ndarray) -> np.ndarray:
    """The unit normal of an image plane: row cosine × column cosine."""
    normal = np.cross(orientation[:3], orientation[3:])
    return normal / np.linalg.norm(normal)


def _order(slices: list[Slice]) -> tuple[list[Slice], np.ndarray]:
    """Slices sorted along the normal, and the step vector between neighbours (LPS mm); checks consistency."""
    first = slices[0]
    for s in slices[1:]:
        if not np.allclose(s.orientation, first.orientation, atol=COSINE_TOLERANCE):
            raise InputError(f"inconsistent orientation in the series: {first.where()} has ImageOrientationPatient "
                             f"{first.orientation.round(5).tolist()}, {s.where()} has {s.orientation.round(5).tolist()}")
        if not np.allclose(s.pixel_spacing, first.pixel_spacing, rtol=GAP_TOLERANCE):
            raise InputError(f"inconsistent pixel spacing in the series: {first.where()} has {first.pixel_spacing}, "
                             f"{s.where()} has {s.pixel_spacing}")
    normal = slice_normal(first.orientation)
    ordered = sorted(slices, key=lambda s: float(s.position @ normal))
    if len(ordered) == 1:
        return ordered, normal * min(first.pixel_spacing)  # one slice: a nominal thickness
    distances = np.array([float(s.position @ normal) for s in ordered])
    gaps = np.diff(distances)
    duplicates = [(a, b) for a, b, gap in zip(ordered, ordered[1:], gaps) if abs(gap) < POSITION_TOLERANCE_MM]
    if duplicates:
        pairs = "; ".join(f"{a.where()} and {b.where()} at {a.position.round(3).tolist()}" for a, b in duplicates[:5])
        raise InputError(f"duplicated slices: {len(duplicates)} pair(s) share a position ({pairs}); remove the copies, "
                         "or read each acquisition (echo, phase, time point) as its own series")
    step_size = float(np.median(gaps))
    irregular = np.flatnonzero(np.abs(gaps - step_size) > max(GAP_TOLERANCE * step_size, POSITION_TOLERANCE_MM))
    if len(irregular):
        i = int(irregular[0])
        ratio = gaps[i] / step_size
        what = (f"missing slices: about {round(ratio) - 1} slice(s) missing between" if abs(ratio - round(ratio)) < 0.1 and ratio > 1.5
                else "inconsistent slice spacing: a gap of")
        raise InputError(f"{what} {ordered[i].where()} and {ordered[i + 1].where()} "
                         f"({gaps[i]:.3f} mm apart where the series steps {step_size:.3f} mm; {len(irregular)} irregular "
                         "gap(s) in all); a volume needs evenly spaced slices")
    step = (ordered[-1].position - ordered[0].position) / (len(ordered) - 1)  # keeps a gantry tilt's shear
    expected = ordered[0].position + np.arange(len(ordered))[:, None] * step
    off_line = np.linalg.norm(np.stack([s.position for s in ordered]) - expected, axis=1)
    if off_line.max() > max(POSITION_TOLERANCE_MM, GAP_TOLERANCE * step_size):
        worst = ordered[int(off_line.argmax())]
        raise InputError(f"inconsistent slice positions: {worst.where()} lies {off_line.max():.3f} mm off the line "
                         "through the other slices")
    return ordered, step


def _affine(first: Slice, step: np.ndarray) -> np.ndarray:
    """Voxel (slice, row, column) → LPS mm."""
    row_cosine, column_cosine = first.orientation[:3], first.orientation[3:]
    affine = np.eye(4)
    # Moving down a row follows the column cosine; along a row, the row cosine.
    affine[:3, 0] = step
    affine[:3, 1] = column_cosine * first.pixel_spacing[0]
    affine[:3, 2] = row_cosine * first.pixel_spacing[1]
    affine[:3, 3] = first.position
    return affine


# -- pixels ----------------------------------------------------------------------------
def check_decodable(ds, path: Path | str = "") -> None:
    """Raise InputError naming the plugin to install when ``ds``'s transfer syntax needs a missing one."""
    import importlib

    syntax = str(ds.file_meta.get("TransferSyntaxUID", "")) if hasattr(ds, "file_meta") else ""
    if syntax not in DECODER_PLUGINS:
        return
    module, package = DECODER_PLUGINS[syntax]
    missing = []
    for name, dist in (("pylibjpeg", "pylibjpeg"), (module, package)):
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(dist)
    if missing:
        raise InputError(f"{Path(path).name or 'the image'} is compressed with {ds.file_meta.TransferSyntaxUID.name}, "
                         f"which needs {' and '.join(missing)} to decode; install it "
                         f"(pip install {' '.join(missing)}, or pip install 'domain-zoo[medical]')")


def _read_pixels(ordered: list[Slice], headers: dict[Path, Any], workers: int | None) -> list[np.ndarray]:
    """One 2-D array per ordered slice; each file is decoded once, on a thread pool."""
    paths = list(dict.fromkeys(s.path for s in ordered))
    with ThreadPoolExecutor(_workers(workers)) as pool:
        decoded = dict(zip(paths, pool.map(lambda p: _file_pixels(p, headers[p]), paths)))
    pixels = [decoded[s.path] if s.frame is None else decoded[s.path][s.frame] for s in ordered]
    for s, p in zip(ordered, pixels):
        if p.shape != pixels[0].shape:
            raise InputError(f"inconsistent image sizes in the series: {ordered[0].where()} is {pixels[0].shape}, "
                             f"{s.where()} is {p.shape} (rows, columns)")
    return pixels


def _file_pixels(path: Path, header) -> np.ndarray:
    """The stored pixel values of one file: by offset when native, else through pydicom's decoders."""
    native = _native_pixels(path, header)
    if native is not None:
        return native
    import pydicom

    check_decodable(header, path)
    ds = pydicom.dcmread(path)
    try:
        pixels = ds.pixel_array
    except Exception as exc:  # the decoders raise many types; say which file and why
        raise InputError(f"{path.name}: could not decode its pixel data "
                         f"({ds.file_meta.TransferSyntaxUID.name}): {type(exc).__name__}: {exc}") from None
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    return pixels if frames > 1 or "PerFrameFunctionalGroupsSequence" not in ds else pixels[None]


def _native_pixels(path: Path, header) -> np.ndarray | None:
    """Uncompressed little-endian single-frame pixel data read at its offset, or None to fall back to pydicom."""
    syntax = str(header.file_meta.get("TransferSyntaxUID", ""))
    if (syntax not in NATIVE_LITTLE_ENDIAN or int(header.get("NumberOfFrames", 1) or 1) != 1
            or "PerFrameFunctionalGroupsSequence" in header or header.get("BitsAllocated") not in (8, 16, 32)):
        return None
    rows, columns, bits = int(header.Rows), int(header.Columns), int(header.BitsAllocated)
    dtype = np.dtype(f"<{'i' if header.get('PixelRepresentation', 0) else 'u'}{bits // 8}")
    size = rows * columns * dtype.itemsize
    padded = size + (size & 1)
    explicit = syntax == "1.2.840.10008.1.2.1"
    prefix = 12 if explicit else 8
    with open(path, "rb") as f:
        f.seek(-(padded + prefix), os.SEEK_END)
        element = f.read(prefix)
        length = int.from_bytes(element[-4:], "little")
        if element[:4] != _PIXEL_DATA_TAG or length != padded:
            return None  # something follows the pixel data, or it is encapsulated: let pydicom read it
        pixels = np.fromfile(f, dtype=dtype, count=rows * columns).reshape(rows, columns)
    stored = int(header.get("BitsStored", bits))
    if stored < bits:  # mask out bits above BitsStored (overlays in old files), sign-extending when signed
        shift = bits - stored
        pixels = (pixels << shift) >> shift if dtype.kind == "i" else pixels & ((1 << stored) - 1)
    return pixels


def _rescale(pixels: list[np.ndarray], ordered: list[Slice]) -> np.ndarray:
    """Stack the slices and apply each slice's RescaleSlope/Intercept (int16 when exact, else float32)."""
    slopes = np.array([s.slope for s in ordered])
    intercepts = np.array([s.intercept for s in ordered])
    integral = np.all(slopes == 1) and np.all(intercepts == np.round(intercepts))
    if integral:
        low = min(int(p.min()) for p in pixels) + int(intercepts.min())
        high = max(int(p.max()) for p in pixels) + int(intercepts.max())
        if -32768 <= low and high <= 32767:
            out = np.empty((len(pixels), *pixels[0].shape), dtype=np.int16)
            for k, (p, b) in enumerate(zip(pixels, intercepts)):
                np.add(p, np.int32(b), out=out[k], dtype=np.int32, casting="unsafe")
            return out
    out = np.empty((len(pixels), *pixels[0].shape), dtype=np.float32)
    for k, (p, m, b) in enumerate(zip(pixels, slopes, intercepts)):
        np.multiply(p, m, out=out[k], casting="unsafe")
        out[k] += b
    return out


def _metadata(ds, ordered: list[Slice]) -> dict[str, Any]:
    modality = str(ds.get("Modality", ""))
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    return {
        "source": "dicom",
        "modality": modality,
        "units": "HU" if modality == "CT" else str(ds.get("RescaleType", "") or "stored values"),
        "sop_class_uid": str(ds.get("SOPClassUID", "")),
        "study_instance_uid": str(ds.get("StudyInstanceUID", "")),
        "series_instance_uid": str(ds.get("SeriesInstanceUID", "")),
        "frame_of_reference_uid": str(ds.get("FrameOfReferenceUID", "")),
        "series_description": str(ds.get("SeriesDescription", "")),
        "window": [_first_number(width), _first_number(center)] if center is not None and width is not None else None,
        "files": [str(s.path) for s in ordered],
        "frames": [s.frame for s in ordered],
        "sop_instance_uids": [s.sop_instance_uid for s in ordered],
    }


def _first_number(value) -> float:
    """A DS/IS value or the first of several (WindowCenter may hold one per window)."""
    from pydicom.multival import MultiValue

    return float(value[0] if isinstance(value, (MultiValue, list, tuple)) else value)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """One DICOM image file as grey float32 values: ``rows × columns`` (or ``frames × rows × columns``).

    For 2-D classification (radiographs, ultrasound, a CT slice): the modality
    rescale is applied; colour and palette images become luminance (ITU-R BT.601).
    """
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_color_lut, apply_modality_lut, convert_color_space

    path = Path(path)
    try:
        ds = pydicom.dcmread(path)
    except (InvalidDicomError, OSError) as exc:
        raise InputError(f"expected a DICOM file at {path}: {exc}") from None
    if "PixelData" not in ds:
        raise InputError(f"expected a DICOM image at {path}, got a {_sop_class_name(ds)} object without pixel data")
    check_decodable(ds, path)
    pixels = ds.pixel_array
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if photometric == "PALETTE COLOR":
        pixels = apply_color_lut(pixels, ds)
    elif photometric.startswith("YBR") and int(ds.get("SamplesPerPixel", 1)) == 3:
        pixels = convert_color_space(pixels, photometric, "RGB")
    if pixels.shape[-1] == 3 and int(ds.get("SamplesPerPixel", 1)) == 3 or photometric == "PALETTE COLOR":
        return (pixels[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32))
    values = apply_modality_lut(pixels, ds).astype(np.float32)
    return values.max() - values if photometric == "MONOCHROME1" else values
