"""DICOM series → :class:`medical.volume.Volume`, keeping geometry.

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
(:func:`medical.volume.max_voxels`).

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
from typing import Any, Sequence

import numpy as np

from medical.volume import Volume, check_voxel_count
from zoo.errors import InputError

log = logging.getLogger(__name__)

# Relative tolerance on slice gaps and absolute tolerance (mm) on positions and cosines.
GAP_TOLERANCE = 0.01
POSITION_TOLERANCE_MM = 0.05
COSINE_TOLERANCE = 1e-4
# How far ImageOrientationPatient's cosines may be from unit length and perpendicular.
ORIENTATION_TOLERANCE = 1e-2
# Positions and spacings beyond this many mm are not a patient's (and would overflow the gap arithmetic).
MAX_COORDINATE_MM = 1e6
# Compressed pixel data may claim at most this many times its own size (plus 16 MiB) once decoded.
MAX_COMPRESSION_RATIO = 1000
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
DEFLATED = "1.2.840.10008.1.2.1.99"  # element offsets are in the inflated stream, not the file
DICOM_SUFFIXES = (".dcm", ".dicom")
# Values longer than this are left in the file until needed (pixel data, large sequences).
DEFER_BYTES = 16384
_PREAMBLE = b"\0" * 128 + b"DICM"
_META_START = len(_PREAMBLE) + 12  # the file meta group follows the preamble and its 12-byte group length element
_PIXEL_DATA = 0x7FE00010
_PIXEL_DATA_TAGS = (0x7FE00008, 0x7FE00009, _PIXEL_DATA)  # FloatPixelData, DoubleFloatPixelData, PixelData
_UNDEFINED_LENGTH = 0xFFFFFFFF


@dataclass
class PixelFormat:
    """The pixel data a header describes, checked against what the file holds."""

    rows: int
    columns: int
    frames: int
    samples: int
    bits_allocated: int
    bits_stored: int
    signed: bool
    native_offset: int | None  # where uncompressed little-endian values start in the file, else None

    @property
    def plane(self) -> tuple[int, int]:
        return self.rows, self.columns


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
        head = f.read(len(_PREAMBLE))
    return head[128:] == b"DICM" or (len(head) < len(_PREAMBLE) and _PREAMBLE.startswith(head))


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
        cut_short = _cut_short(ds, path)
        file.series_uid = str(ds.get("SeriesInstanceUID", "") or "")
        file.is_image = _is_image(ds, path, intact=not cut_short)
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


def _sop_classes(ds) -> set[str]:
    """The SOP class UIDs a file names: its dataset's, and its file meta's (which survives a file cut short early)."""
    meta = getattr(ds, "file_meta", None)
    named = (ds.get("SOPClassUID", ""), meta.get("MediaStorageSOPClassUID", "") if meta is not None else "")
    return {str(uid) for uid in named if uid}


def _sop_class_name(ds) -> str:
    from pydicom.uid import UID

    uids = sorted(_sop_classes(ds))
    return UID(uids[0]).name if uids else "unknown SOP class"


def _is_image(ds, path: Path, intact: bool) -> bool:
    """Whether a dataset is an image object (a candidate slice) rather than a report, plan, SEG, directory...

    A file cut short before its image attributes is an image unless its SOP class
    is one pydicom knows as something else; InputError when that cannot be told.
    """
    from pydicom.uid import UID

    classes = _sop_classes(ds)
    if classes & NOT_VOLUMES.keys():
        return False
    has_pixels = any(tag in ds for tag in (0x00280010, 0x00280011, *_PIXEL_DATA_TAGS))  # Rows, Columns, pixel data
    if has_pixels or any("Image Storage" in UID(uid).name for uid in classes):
        return True
    known = bool(classes) and all(UID(uid).name != uid for uid in classes)
    if known or intact:
        return False
    raise InputError(f"{path.name}: a DICOM file cut short before its SOP class and image attributes: it cannot be "
                     "told whether it is an image of the series")


def _cut_short(ds, path: Path) -> str:
    """Why ``path`` is cut short (it ends inside one of ``ds``'s elements), "" when it is not."""
    meta = getattr(ds, "file_meta", None)
    offsets_in_file = (meta.get("TransferSyntaxUID", "") if meta is not None else "") != DEFLATED
    size = path.stat().st_size
    group_length = meta.get("FileMetaInformationGroupLength") if meta is not None else None
    if group_length is not None and _META_START + int(group_length) > size:
        return f"{path.name}: the file ends inside its file meta information ({size} bytes): it is cut short"
    if not len(ds):
        return f"{path.name}: holds no data set after its file meta information: it is cut short"
    for element in _raw_elements(ds):
        length = getattr(element, "length", _UNDEFINED_LENGTH)
        if length == _UNDEFINED_LENGTH or not hasattr(element, "value_tell"):
            continue
        short = (element.value is None and offsets_in_file and element.value_tell + length > size
                 or element.value is not None and len(element.value) < length)
        if short:
            return (f"{path.name}: the file ends inside {_element_name(element.tag)} ({length} bytes from offset "
                    f"{element.value_tell}, the file has {size}): it is cut short")
    return ""


def _raw_elements(ds):
    """The top-level elements as read, deferred values left in the file (``Dataset.elements`` would read them)."""
    return (ds.get_item(tag, keep_deferred=True) for tag in sorted(ds.keys()))


def _element_name(tag) -> str:
    from pydicom.datadict import keyword_for_tag
    from pydicom.tag import Tag

    return keyword_for_tag(tag) or str(Tag(tag))


def _image_files(files: list[DicomFile], where: Path) -> list[DicomFile]:
    """Image files (damaged ones included); non-image objects are skipped with a warning, or rejected if alone."""
    images = [file for file in files if file.is_image]
    others = [file for file in files if not file.is_image]
    if not images:
        kinds = sorted({f"{_sop_class_name(file.ds)} ({file.text('Modality') or '?'})" for file in others})
        raise InputError(f"expected DICOM images in {where}, found only non-image objects: {', '.join(kinds)}; "
                         "structured reports, RT plans, segmentations and the like are not volumes")
    if others:
        log.warning("ignoring %d non-image DICOM object(s) in %s: %s", len(others), where,
                    ", ".join(sorted({_sop_class_name(file.ds) for file in others})))
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
                         "pass series_uid= to read one (medical.dicom.list_series lists them)")
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


# -- values ----------------------------------------------------------------------------
def _value(ds, keyword: str, where: str):
    """A header value, or None when absent or empty; InputError when pydicom cannot convert it."""
    from pydicom.multival import MultiValue

    try:
        value = ds[keyword].value if keyword in ds else None
    except Exception as exc:  # pydicom raises many types (its own included) converting a damaged value
        raise InputError(f"{where}: {keyword} holds an unreadable value ({type(exc).__name__}: {exc})") from None
    if value is None or isinstance(value, (str, bytes, list, MultiValue)) and len(value) == 0:
        return None
    return value


def _integer(ds, keyword: str, where: str, low: int, high: int, default: int | None = None) -> int:
    """An integer header value within [low, high] (``default`` when absent, else required)."""
    value = _value(ds, keyword, where)
    if value is None:
        if default is None:
            raise InputError(f"{where}: expected {keyword}, found none")
        return default
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"{where}: expected an integer {keyword}, found {value!r}") from None
    if not low <= number <= high:
        raise InputError(f"{where}: expected {keyword} between {low} and {high}, found {number}")
    return number


def _numbers(ds, keyword: str, where: str, count: int, default: Sequence[float] | None = None) -> np.ndarray:
    """``count`` finite numbers (of magnitude at most MAX_COORDINATE_MM) from a header value."""
    from pydicom.multival import MultiValue

    value = _value(ds, keyword, where)
    if value is None:
        if default is None:
            raise InputError(f"{where}: expected {keyword}, found none")
        return np.asarray(default, dtype=float)
    items = list(value) if isinstance(value, (MultiValue, list, tuple)) else [value]
    try:
        numbers = np.array([float(item) for item in items])
    except (TypeError, ValueError, OverflowError):
        numbers = np.array([np.nan])
    if numbers.size != count or not np.all(np.isfinite(numbers)) or np.any(np.abs(numbers) > MAX_COORDINATE_MM):
        shown = [str(item) for item in items]
        raise InputError(f"{where}: expected {count} finite number(s) in {keyword}, found {shown}")
    return numbers


def pixel_format(ds, path: Path) -> PixelFormat:
    """The header's pixel description, checked against the pixel data the file holds (InputError when they differ)."""
    from pydicom.uid import UID

    where = path.name
    element = next((e for e in _raw_elements(ds) if e.tag in _PIXEL_DATA_TAGS), None)
    if element is None:
        raise InputError(f"{where}: a {_sop_class_name(ds)} object without pixel data (the file may be cut short)")
    rows, columns = _integer(ds, "Rows", where, 1, 65535), _integer(ds, "Columns", where, 1, 65535)
    frames = _integer(ds, "NumberOfFrames", where, 1, 2**31 - 1, default=1)
    samples = _integer(ds, "SamplesPerPixel", where, 1, 4, default=1)
    bits = _integer(ds, "BitsAllocated", where, 1, 64)
    stored = _integer(ds, "BitsStored", where, 1, bits, default=bits)
    signed = _integer(ds, "PixelRepresentation", where, 0, 1, default=0) == 1
    check_voxel_count((frames, rows, columns * samples), where)
    meta = getattr(ds, "file_meta", None)
    syntax = str(meta.get("TransferSyntaxUID", "") if meta is not None else "")
    needed = (rows * columns * frames * samples * bits + 7) // 8
    length = getattr(element, "length", None)
    if length is None:  # already converted by pydicom (a small value)
        length = len(element.value or b"")
    if length == _UNDEFINED_LENGTH or UID(syntax).is_encapsulated:  # compressed: bound what the decoder allocates
        compressed = path.stat().st_size - getattr(element, "value_tell", 0)
        if needed > MAX_COMPRESSION_RATIO * compressed + 2**24:
            raise InputError(f"{where}: its header claims {rows} × {columns} × {frames} frame(s) of {bits}-bit values "
                             f"({needed:,} bytes) from {compressed:,} bytes of compressed data; Rows, Columns or "
                             "NumberOfFrames is wrong")
        return PixelFormat(rows, columns, frames, samples, bits, stored, signed, None)
    if length not in (needed, needed + 1):
        raise InputError(f"{where}: holds {length:,} bytes of pixel data where Rows × Columns × NumberOfFrames × "
                         f"SamplesPerPixel × BitsAllocated ({rows} × {columns} × {frames} × {samples} × {bits} bits) "
                         f"needs {needed:,}: the file is cut short or its header is wrong")
    native = (syntax in NATIVE_LITTLE_ENDIAN and element.tag == _PIXEL_DATA and bits in (8, 16, 32) and samples == 1
              and hasattr(element, "value_tell"))
    return PixelFormat(rows, columns, frames, samples, bits, stored, signed, element.value_tell if native else None)


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
        raise InputError(f"{path.name}: a {pixels.frames}-frame {_sop_class_name(ds)} object without per-frame "
                         "functional groups has no position per frame, so it cannot be placed as a volume")
    where = path.name
    return [Slice(path, None, *_plane(ds, where), _numbers(ds, "RescaleSlope", where, 1, [1.0])[0],
                  _numbers(ds, "RescaleIntercept", where, 1, [0.0])[0], str(ds.get("SOPInstanceUID", "")),
                  pixels.plane)]


def _plane(ds, where: str) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """(ImagePositionPatient, ImageOrientationPatient, PixelSpacing) of a dataset or functional-group item, checked."""
    missing = [k for k in ("ImagePositionPatient", "ImageOrientationPatient") if k not in ds]
    if missing:
        raise InputError(f"{where}: expected {' and '.join(missing)} to place the image in the patient, "
                         "found none (a projection or ultrasound image is not a volume; read it with read_image)")
    return _numbers(ds, "ImagePositionPatient", where, 3), _orientation(ds, where), _pixel_spacing(ds, where)


def _orientation(ds, where: str) -> np.ndarray:
    cosines = _numbers(ds, "ImageOrientationPatient", where, 6)
    row, column = cosines[:3], cosines[3:]
    if (abs(np.linalg.norm(row) - 1) > ORIENTATION_TOLERANCE or abs(np.linalg.norm(column) - 1) > ORIENTATION_TOLERANCE
            or abs(row @ column) > ORIENTATION_TOLERANCE):
        raise InputError(f"{where}: expected two perpendicular unit cosines in ImageOrientationPatient, "
                         f"found {cosines.tolist()}")
    return cosines


def _pixel_spacing(item, where: str) -> tuple[float, float]:
    """PixelSpacing of ``item`` (1 mm when it or its value is missing): two positive numbers."""
    spacing = _numbers(item, "PixelSpacing", where, 2, [1.0, 1.0]) if item is not None else np.ones(2)
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
    return Slice(path, index, _numbers(position, "ImagePositionPatient", where, 3), _orientation(orientation, where),
                 _pixel_spacing(measures, where),
                 _numbers(values, "RescaleSlope", where, 1, [1.0])[0],
                 _numbers(values, "RescaleIntercept", where, 1, [0.0])[0], str(ds.get("SOPInstanceUID", "")),
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
        return _native_pixels(file.path, layout).reshape(shape)
    pixels = _decoded(file.path, file.ds)
    pixels = pixels[None] if enhanced and layout.frames == 1 else pixels
    if pixels.shape != shape:
        raise InputError(f"{file.path.name}: its pixel data decodes to shape {pixels.shape}, the header says {shape}")
    return pixels


def _decoded(path: Path, header) -> np.ndarray:
    """Pixel data decoded by pydicom (compressed, big-endian, 1-bit...), any decoder failure as an InputError."""
    import pydicom

    try:
        return pydicom.dcmread(path).pixel_array
    except Exception as exc:  # the decoders raise many types; say which file and why
        syntax = getattr(header.file_meta.get("TransferSyntaxUID"), "name", "unknown transfer syntax")
        raise InputError(f"{path.name}: could not decode its pixel data ({syntax}): {type(exc).__name__}: {exc}") from None


def _native_pixels(path: Path, layout: PixelFormat) -> np.ndarray:
    """Uncompressed little-endian values read at their offset (a flat array), bits above BitsStored masked out."""
    count = layout.frames * layout.rows * layout.columns
    dtype = np.dtype(f"<{'i' if layout.signed else 'u'}{layout.bits_allocated // 8}")
    try:
        with open(path, "rb") as f:
            f.seek(layout.native_offset)
            pixels = np.fromfile(f, dtype=dtype, count=count)
    except OSError as exc:
        raise InputError(f"{path.name}: could not read its pixel data: {exc}") from None
    if pixels.size != count:
        raise InputError(f"{path.name}: its pixel data ends after {pixels.size} of {count} values (did the file change "
                         "while it was read?)")
    if layout.bits_stored < layout.bits_allocated:  # overlays in old files; sign-extend when signed
        shift = layout.bits_allocated - layout.bits_stored
        pixels = (pixels << shift) >> shift if dtype.kind == "i" else pixels & ((1 << layout.bits_stored) - 1)
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
        "window": _window(file.ds),
        "files": [str(s.path) for s in ordered],
        "frames": [s.frame for s in ordered],
        "sop_instance_uids": [s.sop_instance_uid for s in ordered],
        "skipped_files": [str(path) for path in skipped],
    }


def _window(ds) -> list[float] | None:
    """[width, centre] of the first display window, None when absent or not finite numbers."""
    from pydicom.multival import MultiValue

    try:
        values = (ds.get("WindowWidth"), ds.get("WindowCenter"))
        window = [float(v[0] if isinstance(v, (MultiValue, list, tuple)) else v) for v in values]
    except Exception:  # pydicom raises many types converting a damaged value
        return None
    return window if all(np.isfinite(window)) else None


def read_image(path: str | os.PathLike) -> np.ndarray:
    """One DICOM image file as grey float32 values: ``rows × columns`` (or ``frames × rows × columns``).

    For 2-D classification (radiographs, ultrasound, a CT slice): the modality
    rescale is applied; colour and palette images become luminance (ITU-R BT.601).
    """
    import pydicom

    path = Path(path)
    try:
        ds = pydicom.dcmread(path, defer_size=DEFER_BYTES)
    except Exception as exc:  # pydicom raises many types for a damaged file
        raise InputError(f"expected a DICOM file at {path}: {type(exc).__name__}: {exc}") from None
    try:
        cut_short = _cut_short(ds, path)
        if cut_short:
            raise InputError(cut_short)
        if not any(tag in ds for tag in _PIXEL_DATA_TAGS):
            raise InputError(f"expected a DICOM image at {path}, got a {_sop_class_name(ds)} object without pixel data")
        pixel_format(ds, path)
    except InputError:
        raise
    except Exception as exc:  # pydicom raises many types (its own included) converting a damaged value
        raise InputError(f"{path.name}: an unreadable header ({type(exc).__name__}: {exc})") from None
    check_decodable(ds, path)
    try:
        return _grey(ds)
    except Exception as exc:  # decoders and LUTs raise many types for damaged data
        raise InputError(f"{path.name}: could not decode its pixel data: {type(exc).__name__}: {exc}") from None


def _grey(ds) -> np.ndarray:
    """A dataset's pixels as grey float32: palette and colour to luminance, modality LUT applied, MONOCHROME1 inverted."""
    from pydicom.pixels import apply_color_lut, apply_modality_lut, convert_color_space

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
