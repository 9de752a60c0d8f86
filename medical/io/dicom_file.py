"""One DICOM file: its header's values checked, its pixel description, its pixels; :func:`read_image`.

The series reader (:mod:`medical.io.dicom`) asks this module about each file; a
2-D classifier reads one image through :func:`read_image`. Every value that
comes from a header is checked here (present, convertible, finite, in range)
and a failure is an :class:`zoo.errors.InputError` naming the file.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from medical.io.volume import check_voxel_count
from zoo.errors import InputError

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
# Values longer than this are left in the file until needed (pixel data, large sequences).
DEFER_BYTES = 16384
PREAMBLE = b"\0" * 128 + b"DICM"
_META_START = len(PREAMBLE) + 12  # the file meta group follows the preamble and its 12-byte group length element
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



def sop_classes(ds) -> set[str]:
    """The SOP class UIDs a file names: its dataset's, and its file meta's (which survives a file cut short early)."""
    meta = getattr(ds, "file_meta", None)
    named = (ds.get("SOPClassUID", ""), meta.get("MediaStorageSOPClassUID", "") if meta is not None else "")
    return {str(uid) for uid in named if uid}


def sop_class_name(ds) -> str:
    from pydicom.uid import UID

    uids = sorted(sop_classes(ds))
    return UID(uids[0]).name if uids else "unknown SOP class"


def is_image(ds, path: Path, intact: bool) -> bool:
    """Whether a dataset is an image object (a candidate slice) rather than a report, plan, SEG, directory...

    A file cut short before its image attributes is an image unless its SOP class
    is one pydicom knows as something else; InputError when that cannot be told.
    """
    from pydicom.uid import UID

    classes = sop_classes(ds)
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


def why_cut_short(ds, path: Path) -> str:
    """Why ``path`` is cut short (it ends inside one of ``ds``'s elements), "" when it is not."""
    meta = getattr(ds, "file_meta", None)
    offsets_in_file = (meta.get("TransferSyntaxUID", "") if meta is not None else "") != DEFLATED
    size = path.stat().st_size
    group_length = meta.get("FileMetaInformationGroupLength") if meta is not None else None
    if group_length is not None and _META_START + int(group_length) > size:
        return f"{path.name}: the file ends inside its file meta information ({size} bytes): it is cut short"
    if not len(ds):
        return f"{path.name}: holds no data set after its file meta information: it is cut short"
    for element in raw_elements(ds):
        length = getattr(element, "length", _UNDEFINED_LENGTH)
        if length == _UNDEFINED_LENGTH or not hasattr(element, "value_tell"):
            continue
        short = (element.value is None and offsets_in_file and element.value_tell + length > size
                 or element.value is not None and len(element.value) < length)
        if short:
            return (f"{path.name}: the file ends inside {element_name(element.tag)} ({length} bytes from offset "
                    f"{element.value_tell}, the file has {size}): it is cut short")
    return ""


def raw_elements(ds):
    """The top-level elements as read, deferred values left in the file (``Dataset.elements`` would read them)."""
    return (ds.get_item(tag, keep_deferred=True) for tag in sorted(ds.keys()))


def element_name(tag) -> str:
    from pydicom.datadict import keyword_for_tag
    from pydicom.tag import Tag

    return keyword_for_tag(tag) or str(Tag(tag))

# -- values ----------------------------------------------------------------------------
def header_value(ds, keyword: str, where: str):
    """A header value, or None when absent or empty; InputError when pydicom cannot convert it."""
    from pydicom.multival import MultiValue

    try:
        value = ds[keyword].value if keyword in ds else None
    except Exception as exc:  # pydicom raises many types (its own included) converting a damaged value
        raise InputError(f"{where}: {keyword} holds an unreadable value ({type(exc).__name__}: {exc})") from None
    if value is None or isinstance(value, (str, bytes, list, MultiValue)) and len(value) == 0:
        return None
    return value


def header_integer(ds, keyword: str, where: str, low: int, high: int, default: int | None = None) -> int:
    """An integer header value within [low, high] (``default`` when absent, else required)."""
    value = header_value(ds, keyword, where)
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


def header_numbers(ds, keyword: str, where: str, count: int, default: Sequence[float] | None = None) -> np.ndarray:
    """``count`` finite numbers (of magnitude at most MAX_COORDINATE_MM) from a header value."""
    from pydicom.multival import MultiValue

    value = header_value(ds, keyword, where)
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
    element = next((e for e in raw_elements(ds) if e.tag in _PIXEL_DATA_TAGS), None)
    if element is None:
        raise InputError(f"{where}: a {sop_class_name(ds)} object without pixel data (the file may be cut short)")
    rows, columns = header_integer(ds, "Rows", where, 1, 65535), header_integer(ds, "Columns", where, 1, 65535)
    frames = header_integer(ds, "NumberOfFrames", where, 1, 2**31 - 1, default=1)
    samples = header_integer(ds, "SamplesPerPixel", where, 1, 4, default=1)
    bits = header_integer(ds, "BitsAllocated", where, 1, 64)
    stored = header_integer(ds, "BitsStored", where, 1, bits, default=bits)
    signed = header_integer(ds, "PixelRepresentation", where, 0, 1, default=0) == 1
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




def decoded_pixels(path: Path, header) -> np.ndarray:
    """Pixel data decoded by pydicom (compressed, big-endian, 1-bit...), any decoder failure as an InputError."""
    import pydicom

    try:
        return pydicom.dcmread(path).pixel_array
    except Exception as exc:  # the decoders raise many types; say which file and why
        syntax = getattr(header.file_meta.get("TransferSyntaxUID"), "name", "unknown transfer syntax")
        raise InputError(f"{path.name}: could not decode its pixel data ({syntax}): {type(exc).__name__}: {exc}") from None


def native_pixels(path: Path, layout: PixelFormat) -> np.ndarray:
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


def display_window(ds) -> list[float] | None:
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
        cut_short = why_cut_short(ds, path)
        if cut_short:
            raise InputError(cut_short)
        if not any(tag in ds for tag in _PIXEL_DATA_TAGS):
            raise InputError(f"expected a DICOM image at {path}, got a {sop_class_name(ds)} object without pixel data")
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
