"""Reading image files: the one entry point, with size limits checked from the header before decoding.

Two limits guard against decompression bombs (a few hundred bytes of PNG that
decode to gigabytes) and resize bombs (a 100000×1 image whose shorter side,
scaled to 256, makes a 25.6M×256 intermediate):

* ``ZOO_MAX_IMAGE_PIXELS``: the most pixels (width × height) an image may have.
  Default: a model card's ``preprocessing.max_pixels`` where it sets one, else
  PIL's own ``PIL.Image.MAX_IMAGE_PIXELS`` (~89.5 megapixels).
* ``ZOO_MAX_IMAGE_ASPECT``: how many times longer than the shorter side the
  longer side may be. Default 100.

Both are read on every call, so ``os.environ[...] = ...`` takes effect at once.
"""
from __future__ import annotations

import os
import struct
import warnings
import zlib
from typing import Any

from zoo.errors import InputError

PIXELS_VARIABLE = "ZOO_MAX_IMAGE_PIXELS"
ASPECT_VARIABLE = "ZOO_MAX_IMAGE_ASPECT"
DEFAULT_MAX_ASPECT = 100.0
# The raster formats photos come in; PIL's other plugins (EPS runs Ghostscript, say) are not offered untrusted files.
FORMATS = ("PNG", "JPEG", "TIFF", "BMP", "GIF", "WEBP")  # JPEG covers MPO (multi-picture) files


def pixel_limit(card_limit: int | None = None) -> int | None:
    """The most pixels an image may have: ``$ZOO_MAX_IMAGE_PIXELS``, else ``card_limit``, else PIL's (None: no limit)."""
    if os.environ.get(PIXELS_VARIABLE):
        return int(_positive_setting(PIXELS_VARIABLE))
    if card_limit is not None:
        return card_limit
    from PIL import Image

    return Image.MAX_IMAGE_PIXELS


def aspect_limit() -> float:
    """The largest ratio of an image's longer side to its shorter side: ``$ZOO_MAX_IMAGE_ASPECT``, else 100."""
    if os.environ.get(ASPECT_VARIABLE):
        return _positive_setting(ASPECT_VARIABLE)
    return DEFAULT_MAX_ASPECT


def _positive_setting(variable: str) -> float:
    text = os.environ[variable]
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= 1 or value == float("inf"):
        raise InputError(f"expected {variable} to be a number of at least 1, got {text!r}")
    return value


def check_image_size(width: int, height: int, *, card_limit: int | None = None, source: Any = None) -> None:
    """Raise :class:`InputError` for an empty image, or one beyond the pixel or aspect-ratio limit.

    Call it with the size from the header, before the image is decoded or resized.
    """
    where = f"{source}: " if source is not None else ""
    if width < 1 or height < 1:
        raise InputError(f"{where}expected an image of at least 1×1 pixels, got an empty {width}×{height} image")
    pixels, limit = width * height, pixel_limit(card_limit)
    if limit is not None and pixels > limit:
        raise InputError(
            f"{where}image of {width}×{height} = {pixels:,} pixels is larger than the limit of {limit:,} pixels "
            f"(a decompression bomb?); downscale it, or raise the limit: {PIXELS_VARIABLE}={pixels}"
        )
    aspect, most = max(width, height) / min(width, height), aspect_limit()
    if aspect > most:
        raise InputError(
            f"{where}image of {width}×{height} has an aspect ratio of {aspect:,.4g}:1, beyond the limit of "
            f"{most:g}:1 (its resize would be huge); crop it, or raise the limit: {ASPECT_VARIABLE}={aspect:.0f}"
        )


# What PIL's plugins raise on corrupt files: listed, not ``Exception``, so that an interrupt or a timeout still ends a read.
PIL_DECODING_ERRORS = (OSError, SyntaxError, ValueError, TypeError, IndexError, KeyError, struct.error, EOFError,
                       ArithmeticError, AttributeError, RuntimeError, zlib.error)


def read_image(path: str | os.PathLike, *, card_limit: int | None = None) -> Any:
    """The image in the file ``path``: a decoded PIL image, upright (EXIF orientation applied).

    A ``.npy`` file gives its array instead (2-D grey or 3-D). The size is
    checked (:func:`check_image_size`) before the pixels are decoded; a file PIL
    cannot read, or a corrupt one, raises :class:`InputError` naming it.
    """
    if os.fsdecode(path).endswith(".npy"):
        return _read_array(path)
    from PIL import Image, ImageOps

    try:
        with warnings.catch_warnings():
            # PIL warns above its own limit; ours is checked next, and a warning would break the one-line error.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path, formats=FORMATS)
        with image:
            check_image_size(*image.size, card_limit=card_limit, source=path)
            # What phones and cameras write: the pixels as the sensor saw them, the rotation in EXIF.
            return ImageOps.exif_transpose(image)  # a decoded copy, turned upright
    except InputError:
        raise
    except Image.DecompressionBombError as exc:  # PIL's own fence, when ours was raised above twice PIL's
        raise InputError(f"{path}: {exc} Downscale it, or raise both PIL.Image.MAX_IMAGE_PIXELS and "
                         f"{PIXELS_VARIABLE}") from None
    except PIL_DECODING_ERRORS as exc:
        raise InputError(f"expected a PNG, JPEG, TIFF, BMP, GIF or WebP image (or a .npy array), "
                         f"could not read {path}: {type(exc).__name__}: {exc}") from None


def _read_array(path) -> Any:
    from zoo.arrays import read_npy

    array = read_npy(path)
    if array.ndim not in (2, 3):
        raise InputError(f"{path}: expected an image array of 2 (H×W) or 3 (H×W×C, C×H×W) dimensions, "
                         f"got shape {array.shape}")
    return array
