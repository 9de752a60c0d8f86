"""DICOM series → :class:`medical.io.volume.Volume`, keeping geometry.

A folder is read as one series. Which files belong to it:

* A file is DICOM when it says so: the ``DICM`` marker at byte 128 (PS3.10), a
  ``.dcm``/``.dicom`` name, or content that is a cut-short prefix of the standard
  preamble (an empty or truncated copy). Other files (a README, a JSON sidecar)
  are skipped with a warning.
* Non-image objects (SR, RT plans, presentation states, SEG, RT dose, DICOMDIR)
  are skipped with a warning.
* Image objects are grouped by SeriesInstanceUID (a folder holding several
  series raises an error listing them; pick one with ``series_uid=``).
* A DICOM file that cannot be used — it is cut short, cannot be parsed, has no
  or too little pixel data, or an unreadable or non-finite value (position,
  orientation, spacing, size, frame count...) — belongs to the series its
  SeriesInstanceUID names when intact files share that uid, else to whichever
  series is read (its uid may be missing or itself cut short). It raises :class:`zoo.errors.InputError` naming the file, unless
  ``skip_damaged=True`` asks to leave such files out (they are then listed in a
  warning and in ``metadata["skipped_files"]``; the spacing checks below still
  refuse a series with a gap).

Slices are ordered by their position along the slice normal (the cross product
of ImageOrientationPatient's two cosines, dotted with ImagePositionPatient —
never by file name or InstanceNumber), and the slice step is taken from those
positions, not from SliceThickness. Missing or duplicated slices, inconsistent
orientation, pixel spacing, image size or slice spacing raise InputError naming
the files involved: a volume is never silently shorter or misordered. Sizes are
checked from the headers before any pixel is decoded
(:func:`medical.io.volume.max_voxels`).

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medical.io.dicom_file import (
    DEFER_BYTES,
    PREAMBLE,
    PixelFormat,
    check_decodable,
    decoded_pixels,
    display_window,
    header_numbers,
    is_image,
    native_pixels,
    pixel_format,
    sop_class_name,
    why_cut_short,
)
from medical.io.volume import Volume, check_voxel_count
from zoo.errors import InputError

log = logging.getLogger(__name__)

# Relative tolerance on slice gaps and absolute tolerance (mm) on positions and cosines.
GAP_TOLERANCE = 0.01
POSITION_TOLERANCE_MM = 0.05
COSINE_TOLERANCE = 1e-4
# How far ImageOrientationPatient's cosines may be from unit length and perpendicular.
ORIENTATION_TOLERANCE = 1e-2
DICOM_SUFFIXES = (".dcm", ".dicom")


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
    shape: tuple[int, int] = (0, 0)  # rows, columns

    def where(self) -> str:
        return f"{self.path.name}" + (f" frame {self.frame + 1}" if self.frame is not None else "")


@dataclass(eq=False)
class DicomFile:
    """One DICOM file of a folder as the header scan found it."""

    path: Path
    ds: Any = None  # the dataset with its large values (pixel data) deferred; None when it could not be parsed
    is_image: bool = True
    series_uid: str = ""  # "" when the file has none or it could not be read
    problem: str = ""  # why the file cannot be part of a volume ("" when it can)
    pixels: PixelFormat | None = None
    slices: list[Slice] = field(default_factory=list)

    def text(self, keyword: str) -> str:
        """A header value as text, "" when absent or unreadable (for listings)."""
        try:
            return str(self.ds.get(keyword, "") or "") if self.ds is not None else ""
        except Exception:  # pydicom raises many types converting a damaged value
            return ""


def read_series(path: str | os.PathLike, *, series_uid: str | None = None, workers: int | None = None,
                skip_damaged: bool = False) -> Volume:
    """Read a DICOM series (a folder, or one multi-frame file) into a Volume.

    ``series_uid`` picks one series from a folder holding several; ``workers``
    sizes the thread pool that reads headers and pixel data (default: up to 8).
    A file of the series that cannot be read raises InputError naming it, unless
    ``skip_damaged=True`` (then the volume is read without it if the remaining
    slices are still evenly spaced, and ``metadata["skipped_files"]`` lists it).
    """
    where = Path(path)
    series = _select_series(_image_files(_scan(where, workers), where), series_uid, where)
    files, skipped = _usable(series, skip_damaged, where)
    ordered, step = _order_files(files, where)
    for file in files:
        check_decodable(file.ds, file.path)
    pixels = _read_pixels(files, workers)
    if len(pixels) < len(files):  # pixel data that would not decode
        files, more = _usable(files, skip_damaged, where)
        skipped += more
        ordered, step = _order_files(files, where)
    stack = [pixels[s.path] if s.frame is None else pixels[s.path][s.frame] for s in ordered]
    return Volume(_rescale(stack, ordered), _affine(ordered[0], step), _metadata(files[0], ordered, skipped))


def list_series(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The image series in a folder: uid, modality, description, number of files and of damaged files each."""
    where = Path(path)
    series: dict[str, dict[str, Any]] = {}
    for file in _image_files(_scan(where, None), where):
        entry = series.setdefault(file.series_uid, {"series_uid": file.series_uid, "modality": "", "description": "",
                                                    "files": 0, "damaged": 0})
        entry["files"] += 1
        entry["damaged"] += bool(file.problem)
        entry["modality"] = entry["modality"] or file.text("Modality")
        entry["description"] = entry["description"] or file.text("SeriesDescription")
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


def _claims_dicom(path: Path) -> bool:
    """Whether a file says it is DICOM: a .dcm/.dicom name, the DICM marker, or a cut-short standard preamble."""
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    with open(path, "rb") as f:
        head = f.read(len(PREAMBLE))
    return head[128:] == b"DICM" or (len(head) < len(PREAMBLE) and PREAMBLE.startswith(head))


def _scan_file(path: Path) -> DicomFile | None:
    """What one file is: None when it is not DICOM, else a DicomFile whose ``problem`` says why it is unusable."""
    import pydicom

    try:
        if not _claims_dicom(path):
            return None
        ds = pydicom.dcmread(path, defer_size=DEFER_BYTES)
    except Exception as exc:  # pydicom raises many types for a damaged file
        return DicomFile(path, problem=f"{path.name}: cannot be parsed as DICOM ({type(exc).__name__}: {exc})")
    file = DicomFile(path, ds)
    try:
        cut_short = why_cut_short(ds, path)
        file.series_uid = str(ds.get("SeriesInstanceUID", "") or "")
        file.is_image = is_image(ds, path, intact=not cut_short)
        if file.is_image:
            if cut_short:
                raise InputError(cut_short)
            file.pixels = pixel_format(ds, path)
            file.slices = _slices(path, ds, file.pixels)
    except InputError as exc:
        file.problem = str(exc)
    except Exception as exc:  # pydicom raises many types (its own included) converting a damaged value
        file.problem = f"{path.name}: an unreadable header ({type(exc).__name__}: {exc})"
    return file


def _scan(where: Path, workers: int | None) -> list[DicomFile]:
    files = _dicom_files(where)
    with ThreadPoolExecutor(_workers(workers)) as pool:
        scanned = list(pool.map(_scan_file, files))
    not_dicom = [path for path, file in zip(files, scanned) if file is None]
    if not_dicom:
        log.warning("skipped %d file(s) that are not DICOM (no DICM marker at byte 128), e.g. %s",
                    len(not_dicom), not_dicom[0])
    found = [file for file in scanned if file is not None]
    if not found:
        raise InputError(f"expected DICOM files (with the DICM preamble), found none among {len(files)} file(s), "
                         f"e.g. {files[0]}")
    return found


def _workers(workers: int | None) -> int:
    return workers or min(8, (os.cpu_count() or 1) + 2)


def _image_files(files: list[DicomFile], where: Path) -> list[DicomFile]:
    """Image files (damaged ones included); non-image objects are skipped with a warning, or rejected if alone."""
    images = [file for file in files if file.is_image]
    others = [file for file in files if not file.is_image]
    if not images:
        kinds = sorted({f"{sop_class_name(file.ds)} ({file.text('Modality') or '?'})" for file in others})
        raise InputError(f"expected DICOM images in {where}, found only non-image objects: {', '.join(kinds)}; "
                         "structured reports, RT plans, segmentations and the like are not volumes")
    if others:
        log.warning("ignoring %d non-image DICOM object(s) in %s: %s", len(others), where,
                    ", ".join(sorted({sop_class_name(file.ds) for file in others})))
    return images


def _select_series(images: list[DicomFile], series_uid: str | None, where: Path) -> list[DicomFile]:
    """The files of one series, with the damaged files no intact file shares a series with (they may be its slices:
    their SeriesInstanceUID may be missing or itself cut short)."""
    intact = {file.series_uid for file in images if not file.problem}
    strays = [file for file in images if file.problem and file.series_uid not in intact]
    groups: dict[str, list[DicomFile]] = {}
    for file in images:
        if file not in strays:
            groups.setdefault(file.series_uid, []).append(file)
    if series_uid is not None:
        if series_uid not in groups:
            raise InputError(f"expected series {series_uid} in {where}, found {sorted(groups)}")
        return groups[series_uid] + strays
    if len(groups) > 1:
        listing = "; ".join(f"{uid} ({_describe(members)}, {len(members)} file(s))" for uid, members in groups.items())
        raise InputError(f"expected one series in {where}, found {len(groups)} mixed together: {listing}; "
                         "pass series_uid= to read one (medical.io.dicom.list_series lists them)")
    return next(iter(groups.values()), []) + strays


def _describe(members: list[DicomFile]) -> str:
    modality = next((m.text("Modality") for m in members if m.text("Modality")), "?")
    description = next((m.text("SeriesDescription") for m in members if m.text("SeriesDescription")), "no description")
    return f"{modality}, {description}"


def _usable(files: list[DicomFile], skip_damaged: bool, where: Path) -> tuple[list[DicomFile], list[Path]]:
    """The files without a problem, and the paths left out; InputError naming the others unless skipping them."""
    damaged = [file for file in files if file.problem]
    usable = [file for file in files if not file.problem]
    if damaged and len(files) == 1:
        raise InputError(damaged[0].problem)
    if damaged and not skip_damaged:
        listed = "; ".join(file.problem for file in damaged[:5]) + ("; ..." if len(damaged) > 5 else "")
        raise InputError(f"{len(damaged)} of the series' {len(files)} file(s) in {where} cannot be read: {listed}; "
                         "replace or remove them, or pass skip_damaged=True to read the series without them")
    if not usable:
        raise InputError(f"no readable image left in {where}: every file of the series is damaged ({damaged[0].problem})")
    if damaged:
        log.warning("skipping %d damaged file(s) of the series in %s (skip_damaged=True): %s", len(damaged), where,
                    "; ".join(file.problem for file in damaged))
    return usable, [file.path for file in damaged]


# -- slices and their order ------------------------------------------------------------
def _slices(path: Path, ds, pixels: PixelFormat) -> list[Slice]:
    """The frames of one file with their geometry: enhanced multi-frame or classic single-frame."""
    if pixels.samples != 1:
        raise InputError(f"{path.name}: expected grey-level images for a volume, got {pixels.samples} samples "
                         f"per pixel ({ds.get('PhotometricInterpretation')}); read colour images with read_image")
    if "PerFrameFunctionalGroupsSequence" in ds:
        shared = ds.get("SharedFunctionalGroupsSequence") or [None]
        frames = ds.PerFrameFunctionalGroupsSequence
        if len(frames) != pixels.frames:
            raise InputError(f"{path.name}: NumberOfFrames is {pixels.frames} but the per-frame functional groups "
                             f"describe {len(frames)} frame(s)")
        return [_frame_slice(path, ds, i, frame, shared[0], pixels) for i, frame in enumerate(frames)]
    if pixels.frames > 1:
        raise InputError(f"{path.name}: a {pixels.frames}-frame {sop_class_name(ds)} object without per-frame "
                         "functional groups has no position per frame, so it cannot be placed as a volume")
    where = path.name
    return [Slice(path, None, *_plane(ds, where), header_numbers(ds, "RescaleSlope", where, 1, [1.0])[0],
                  header_numbers(ds, "RescaleIntercept", where, 1, [0.0])[0], str(ds.get("SOPInstanceUID", "")),
                  pixels.plane)]


def _plane(ds, where: str) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """(ImagePositionPatient, ImageOrientationPatient, PixelSpacing) of a dataset or functional-group item, checked."""
    missing = [k for k in ("ImagePositionPatient", "ImageOrientationPatient") if k not in ds]
    if missing:
        raise InputError(f"{where}: expected {' and '.join(missing)} to place the image in the patient, "
                         "found none (a projection or ultrasound image is not a volume; read it with read_image)")
    return header_numbers(ds, "ImagePositionPatient", where, 3), _orientation(ds, where), _pixel_spacing(ds, where)


def _orientation(ds, where: str) -> np.ndarray:
    cosines = header_numbers(ds, "ImageOrientationPatient", where, 6)
    row, column = cosines[:3], cosines[3:]
    if (abs(np.linalg.norm(row) - 1) > ORIENTATION_TOLERANCE or abs(np.linalg.norm(column) - 1) > ORIENTATION_TOLERANCE
            or abs(row @ column) > ORIENTATION_TOLERANCE):
        raise InputError(f"{where}: expected two perpendicular unit cosines in ImageOrientationPatient, "
                         f"found {cosines.tolist()}")
    return cosines


def _pixel_spacing(item, where: str) -> tuple[float, float]:
    """PixelSpacing of ``item`` (1 mm when it or its value is missing): two positive numbers."""
    spacing = header_numbers(item, "PixelSpacing", where, 2, [1.0, 1.0]) if item is not None else np.ones(2)
    if np.any(spacing <= 0):
        raise InputError(f"{where}: expected a positive PixelSpacing, found {spacing.tolist()}")
    return float(spacing[0]), float(spacing[1])


def _frame_slice(path: Path, ds, index: int, frame, shared, pixels: PixelFormat) -> Slice:
    """One frame of an enhanced multi-frame object; each group comes from the frame, else from the shared groups."""
    def group(name: str):
        for source in (frame, shared):
            if source is not None and source.get(name):
                return source[name][0]
        return None

    where = f"{path.name} frame {index + 1}"
    position, orientation, measures = group("PlanePositionSequence"), group("PlaneOrientationSequence"), group("PixelMeasuresSequence")
    if position is None or orientation is None:
        raise InputError(f"{where}: expected PlanePositionSequence and PlaneOrientationSequence "
                         "in the per-frame or shared functional groups, found none")
    rescale = group("PixelValueTransformationSequence")
    values = rescale if rescale is not None else ds
    return Slice(path, index, header_numbers(position, "ImagePositionPatient", where, 3), _orientation(orientation, where),
                 _pixel_spacing(measures, where),
                 header_numbers(values, "RescaleSlope", where, 1, [1.0])[0],
                 header_numbers(values, "RescaleIntercept", where, 1, [0.0])[0], str(ds.get("SOPInstanceUID", "")),
                 pixels.plane)


def slice_normal(orientation: np.ndarray) -> np.ndarray:
    """The unit normal of an image plane: row cosine × column cosine."""
    normal = np.cross(orientation[:3], orientation[3:])
    return normal / np.linalg.norm(normal)


def _order_files(files: list[DicomFile], where: Path) -> tuple[list[Slice], np.ndarray]:
    """The slices of ``files`` in order and their step, after checking the volume's size against the limit."""
    ordered, step = _order([s for file in files for s in file.slices])
    check_voxel_count((len(ordered), *ordered[0].shape), where.name)
    return ordered, step


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
        if s.shape != first.shape:
            raise InputError(f"inconsistent image sizes in the series: {first.where()} is {first.shape}, "
                             f"{s.where()} is {s.shape} (rows, columns)")
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


def _read_pixels(files: list[DicomFile], workers: int | None) -> dict[Path, np.ndarray]:
    """Each file's stored values, decoded once on a thread pool; a file that fails gets its ``problem`` set instead."""
    def decode(file: DicomFile) -> np.ndarray | None:
        try:
            return _file_pixels(file)
        except InputError as exc:
            file.problem = str(exc)
            return None

    with ThreadPoolExecutor(_workers(workers)) as pool:
        decoded = dict(zip((file.path for file in files), pool.map(decode, files)))
    return {path: pixels for path, pixels in decoded.items() if pixels is not None}


def _file_pixels(file: DicomFile) -> np.ndarray:
    """The stored values of one file, ``rows × columns`` (``frames × rows × columns`` for an enhanced object)."""
    layout = file.pixels
    enhanced = "PerFrameFunctionalGroupsSequence" in file.ds
    shape = (layout.frames, *layout.plane) if enhanced else layout.plane
    if layout.native_offset is not None:
        return native_pixels(file.path, layout).reshape(shape)
    pixels = decoded_pixels(file.path, file.ds)
    pixels = pixels[None] if enhanced and layout.frames == 1 else pixels
    if pixels.shape != shape:
        raise InputError(f"{file.path.name}: its pixel data decodes to shape {pixels.shape}, the header says {shape}")
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


def _metadata(file: DicomFile, ordered: list[Slice], skipped: list[Path]) -> dict[str, Any]:
    modality = file.text("Modality")
    return {
        "source": "dicom",
        "modality": modality,
        "units": "HU" if modality == "CT" else file.text("RescaleType") or "stored values",
        "sop_class_uid": file.text("SOPClassUID"),
        "study_instance_uid": file.text("StudyInstanceUID"),
        "series_instance_uid": file.text("SeriesInstanceUID"),
        "frame_of_reference_uid": file.text("FrameOfReferenceUID"),
        "series_description": file.text("SeriesDescription"),
        "window": display_window(file.ds),
        "files": [str(s.path) for s in ordered],
        "frames": [s.frame for s in ordered],
        "sop_instance_uids": [s.sop_instance_uid for s in ordered],
        "skipped_files": [str(path) for path in skipped],
    }


