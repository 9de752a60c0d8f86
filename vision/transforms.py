"""Preprocessing bound to weights: a raw image (PIL or array) → the tensor a network takes.

The card's ``preprocessing`` dict is the single description of it, so a saved or
exported model preprocesses exactly as it was trained.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from vision.images import check_image_size, read_image
from zoo.errors import InputError

INTERPOLATIONS = ("nearest", "box", "bilinear", "hamming", "bicubic", "lanczos")
# PIL modes holding one high-depth grey plane, and the value that means white in each.
_HIGH_DEPTH_WHITE = {"I;16": 65535, "I;16L": 65535, "I;16B": 65535, "I;16N": 65535, "I": 65535, "F": 255}
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


@dataclass(frozen=True)
class ImageTransform:
    """Resize a raw image, scale it to [0, 1], normalise with ``mean``/``std``.

    Geometry:

    * ``crop_pct=None`` (small fixed-size models such as the digits CNN): a PIL
      image is resized to exactly ``size``; arrays must already have ``size``.
    * ``crop_pct`` set (ImageNet style): the image is resized, keeping its aspect
      ratio, so that it covers ``size / crop_pct`` (for a square ``size``: the
      shorter side becomes ``floor(size / crop_pct)``), then the central ``size``
      is cropped. ``uint8`` arrays of any size shaped H×W×3, H×W×4 or H×W are
      pictures too (read as ``PIL.Image.fromarray`` would).

    ``interpolation`` is the PIL filter of that resize (``"box"``, ``"bilinear"``,
    ``"bicubic"``...). Other arrays (float, or C×H×W) are taken as already
    resized: they must have ``size`` and values in ``array_range``, the range raw
    arrays come in (e.g. ``[0, 16]`` for scikit-learn's digits).

    Inputs that need care:

    * transparency (RGBA, LA, PA, or a palette/RGB image with a transparent
      colour) is composited over white, not dropped: the colour under fully
      transparent pixels is arbitrary (often black), while such images are shown
      on white;
    * grey images and 2-D arrays given to a 3-channel model are replicated into
      the three channels (what ``Image.convert("RGB")`` does); colour images given
      to a 1-channel model are converted to grey (ITU-R 601 luma);
    * 16-bit grey images (PIL modes ``I;16*`` and ``I``) are scaled by 65535, not
      clipped at 255, and resized in floating point; mode ``F`` is taken on PIL's
      0–255 scale. Values outside the scale raise :class:`InputError`;
    * images (or pictures given as arrays) beyond the size limits raise
      :class:`InputError` before any decoding or resizing: more pixels than
      ``$ZOO_MAX_IMAGE_PIXELS``, else ``max_pixels``, else PIL's decompression-bomb
      limit (~89.5 megapixels); a longer side more than ``$ZOO_MAX_IMAGE_ASPECT``
      (default 100) times the shorter (see :mod:`vision.images`);
    * other PIL modes (CMYK, YCbCr, LAB, HSV...) are converted through RGB.
    """

    size: tuple[int, int]
    channels: int = 3
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    array_range: tuple[float, float] = (0.0, 255.0)
    crop_pct: float | None = None
    interpolation: str = "box"
    max_pixels: int | None = None

    def __post_init__(self):
        if self.interpolation not in INTERPOLATIONS:
            raise InputError(f"interpolation must be one of {INTERPOLATIONS}, got {self.interpolation!r}")
        if self.crop_pct is not None and not 0 < self.crop_pct <= 1:
            raise InputError(f"crop_pct must be in (0, 1], got {self.crop_pct!r}")
        if self.channels not in (1, 3):
            raise InputError(f"channels must be 1 or 3, got {self.channels!r}")
        self._check_numbers()

    def _check_numbers(self) -> None:
        """Sizes, statistics and ranges as a card or bundle may give them wrongly (they are data, not code)."""
        if len(self.size) != 2 or not all(_is_int(n) and n >= 1 for n in self.size):
            raise InputError(f"size must be [height, width], two positive integers, got {list(self.size)!r:.80}")
        for name in ("mean", "std"):
            values = getattr(self, name)
            if len(values) not in (1, self.channels) or not all(_is_finite(v) for v in values):
                raise InputError(f"{name} must be 1 or {self.channels} (channels) finite numbers, got {list(values)!r:.80}")
        if 0 in self.std:
            raise InputError(f"std must not be 0, got {list(self.std)}")
        if len(self.array_range) != 2 or not all(_is_finite(v) for v in self.array_range) \
                or not self.array_range[0] < self.array_range[1]:
            raise InputError(f"array_range must be [low, high] with low < high, got {list(self.array_range)!r:.80}")
        if self.max_pixels is not None and not (_is_int(self.max_pixels) and self.max_pixels >= 1):
            raise InputError(f"max_pixels must be a positive integer or null, got {self.max_pixels!r}")

    @classmethod
    def from_preprocessing(cls, spec: dict[str, Any]) -> "ImageTransform":
        """The transform a card's (or bundle's) ``preprocessing`` describes; :class:`InputError` when it is malformed."""
        try:
            return cls._from_spec(spec)
        except InputError as exc:
            raise InputError(f"preprocessing: {exc}") from None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InputError(f"preprocessing: expected an image preprocessing dict with a size, got {spec!r} "
                             f"({type(exc).__name__}: {exc})") from None

    @classmethod
    def _from_spec(cls, spec: dict[str, Any]) -> "ImageTransform":
        crop_pct = spec.get("crop_pct")
        return cls(
            size=tuple(spec["size"]),
            channels=int(spec.get("channels", 3)),
            mean=tuple(spec.get("mean", (0.0,))),
            std=tuple(spec.get("std", (1.0,))),
            array_range=tuple(spec.get("array_range", (0.0, 255.0))),
            crop_pct=None if crop_pct is None else float(crop_pct),
            interpolation=spec.get("interpolation", "box"),
            max_pixels=None if spec.get("max_pixels") is None else int(spec["max_pixels"]),
        )

    def to_preprocessing(self) -> dict[str, Any]:
        h, w = self.size
        colour = "grey" if self.channels == 1 else "RGB (alpha composited over white, grey replicated)"
        if self.crop_pct is None:
            geometry = f"resize to {h}×{w} with the {self.interpolation} filter"
        else:
            geometry = (f"resize ({self.interpolation}, aspect kept) to cover {h}/{self.crop_pct:g}×{w}/{self.crop_pct:g}, "
                        f"center-crop {h}×{w}")
        return {
            "size": list(self.size),
            "channels": self.channels,
            "mean": list(self.mean),
            "std": list(self.std),
            "array_range": list(self.array_range),
            "crop_pct": self.crop_pct,
            "interpolation": self.interpolation,
            **({} if self.max_pixels is None else {"max_pixels": self.max_pixels}),
            "pil": f"convert to {colour}, {geometry}, scale 0-255 (16-bit: 0-65535) to 0-1",
        }

    @property
    def expected(self) -> str:
        h, w = self.size
        lo, hi = self.array_range
        shape = f"{h}×{w}" if self.channels == 1 else f"{h}×{w}×{self.channels} or {self.channels}×{h}×{w}"
        pictures = ", a uint8 H×W×3 array of any size" if self.crop_pct is not None else ""
        return f"a PIL image{pictures} or a {shape} array with values in [{lo:g}, {hi:g}]"

    def __call__(self, image: Any):
        """The network's input tensor ``[C, H, W]`` for one raw image."""
        import torch

        return torch.from_numpy(self.to_array(image))

    def to_array(self, image: Any) -> np.ndarray:
        """:meth:`__call__` as a float32 numpy array (no torch: the exported-model runtime uses it)."""
        return self.normalize(self.to_unit(image))

    def to_unit(self, image: Any) -> np.ndarray:
        """One raw image → ``[C, H, W]`` float32 in [0, 1] at the model's size, before mean/std
        (training augmentations work on this, whatever the input's mode or dtype)."""
        if _is_pil(image):
            return self._pil_to_unit(image)
        if self.crop_pct is not None and _is_picture_array(image):
            from PIL import Image

            check_image_size(image.shape[1], image.shape[0], card_limit=self.max_pixels)
            return self._pil_to_unit(Image.fromarray(np.ascontiguousarray(image)))
        return self._array_to_unit(image)

    def normalize(self, unit: np.ndarray) -> np.ndarray:
        """``[C, H, W]`` values in [0, 1] → the network's input: ``(unit - mean) / std`` as float32."""
        mean = np.asarray(self.mean, dtype=np.float32).reshape(-1, 1, 1)
        std = np.asarray(self.std, dtype=np.float32).reshape(-1, 1, 1)
        return np.ascontiguousarray((unit - mean) / std, dtype=np.float32)

    # -- PIL images ---------------------------------------------------------
    def _pil_to_unit(self, image) -> np.ndarray:
        check_image_size(*image.size, card_limit=self.max_pixels)
        if image.mode in _HIGH_DEPTH_WHITE:
            return self._high_depth_to_unit(image)
        image = _converted(_flatten_alpha(image), "L" if self.channels == 1 else "RGB")
        array = np.asarray(self._resized(image), dtype=np.float32) / 255.0
        return _to_chw(array, self.channels)

    def _high_depth_to_unit(self, image) -> np.ndarray:
        """A 16/32-bit grey image: scaled by its own white, resized in float (no 8-bit clipping)."""
        from PIL import Image

        white = _HIGH_DEPTH_WHITE[image.mode]
        grey = np.asarray(image).astype(np.float32)
        if grey.size and (grey.min() < 0 or grey.max() > white or not np.isfinite(grey).all()):
            raise InputError(f"expected a {image.mode} image with values in [0, {white}], "
                             f"got values in [{grey.min():g}, {grey.max():g}]")
        unit = np.asarray(self._resized(Image.fromarray(grey / np.float32(white))), dtype=np.float32)  # mode F
        chw = np.clip(unit, 0.0, 1.0)[None]  # bicubic overshoots a little
        return chw if self.channels == 1 else np.repeat(chw, 3, axis=0)

    def _resized(self, image):
        """``image`` (PIL) resized (and center-cropped when ``crop_pct`` is set) to ``size``."""
        from PIL import Image

        h, w = self.size
        resample = getattr(Image.Resampling, self.interpolation.upper())
        if self.crop_pct is None:
            if image.size == (w, h):
                return image
            check_image_size(w, h, card_limit=self.max_pixels, source="the resize target")  # a card's size
            return image.resize((w, h), resample)
        # Rounding as torchvision's Resize(int) + CenterCrop, so results match timm's eval transform.
        iw, ih = image.size
        th, tw = math.floor(h / self.crop_pct), math.floor(w / self.crop_pct)
        if th * iw >= tw * ih:  # the height binds: it becomes th, the width follows the aspect ratio
            rh, rw = th, max(tw, int(th * iw / ih))
        else:
            rh, rw = max(th, int(tw * ih / iw)), tw
        if (rw, rh) != (iw, ih):
            # The aspect-ratio limit bounds this intermediate; checked again so no spec can make it huge.
            check_image_size(rw, rh, card_limit=self.max_pixels, source="the resize target")
            image = image.resize((rw, rh), resample)
        left, top = int(round((rw - w) / 2.0)), int(round((rh - h) / 2.0))
        return image.crop((left, top, left + w, top + h))

    # -- arrays -------------------------------------------------------------
    def _array_to_unit(self, image: Any) -> np.ndarray:
        array = image.detach().cpu().numpy() if type(image).__module__.startswith("torch") else image
        if not isinstance(array, np.ndarray):
            raise InputError(f"expected {self.expected}, got {type(image).__name__}")
        if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
            raise InputError(f"expected {self.expected}, got an array of dtype {array.dtype}")
        chw = self._check_shape(array.astype(np.float32))
        lo, hi = self.array_range
        if not np.isfinite(chw).all():
            raise InputError(f"expected {self.expected}, got an array with NaN or inf values")
        if chw.min() < lo or chw.max() > hi:
            raise InputError(f"expected {self.expected}, got values in [{chw.min():g}, {chw.max():g}]")
        return (chw - lo) / (hi - lo)

    def _check_shape(self, array: np.ndarray) -> np.ndarray:
        h, w = self.size
        if array.shape == (h, w):  # grey: one channel, replicated for colour models
            return array[None] if self.channels == 1 else np.repeat(array[None], self.channels, axis=0)
        if array.shape == (self.channels, h, w):
            return array
        if array.shape == (h, w, self.channels):
            return array.transpose(2, 0, 1)
        raise InputError(f"expected {self.expected}, got an array of shape {tuple(array.shape)}")


def _to_chw(array: np.ndarray, channels: int) -> np.ndarray:
    return array[None] if channels == 1 else array.transpose(2, 0, 1)


def _converted(image, mode: str):
    """``image.convert(mode)``, through RGB for modes PIL cannot convert directly (LAB → L)."""
    for steps in ((mode,), ("RGB", mode)):
        try:
            converted = image
            for step in steps:
                converted = converted.convert(step)
            return converted
        except ValueError:
            continue
    raise InputError(f"expected an image PIL can convert to {mode}, got one of mode {image.mode}")


def _flatten_alpha(image):
    """Composite a PIL image with transparency over white; others pass through unchanged."""
    if image.mode not in _ALPHA_MODES and "transparency" not in image.info:
        return image
    from PIL import Image

    rgba = _converted(image, "RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def _is_picture_array(image: Any) -> bool:
    """A uint8 H×W, H×W×3 or H×W×4 numpy array: a picture, read like ``PIL.Image.fromarray``."""
    return (
        isinstance(image, np.ndarray)
        and image.dtype == np.uint8
        and (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4)))
        and min(image.shape[:2]) > 0
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_finite(value: Any) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and math.isfinite(value)


def _is_pil(image: Any) -> bool:
    return type(image).__module__.startswith("PIL.")


class ImageBatcher:
    """Runtime preprocessing for an exported image model: images (or their paths) → ``{"input": N×C×H×W}``."""

    def __init__(self, transform: ImageTransform):
        self.transform = transform

    @classmethod
    def from_bundle(cls, files, spec: dict[str, Any]) -> "ImageBatcher":
        return cls(ImageTransform.from_preprocessing(spec))

    def __call__(self, raw_inputs) -> dict[str, np.ndarray]:
        return {"input": np.stack([self.transform.to_array(self._opened(x)) for x in raw_inputs])}

    def _opened(self, image: Any) -> Any:
        """A path read by :func:`vision.images.read_image` (errors name the file); anything else as given."""
        if isinstance(image, (str, bytes)) or hasattr(image, "__fspath__"):
            return read_image(image, card_limit=self.transform.max_pixels)
        return image


class PictureBatcher:
    """Runtime preprocessing for an exported segmenter: one picture → ``{"input": 1×3×h×w, "sizes": [[H, W]]}``,
    resized and normalised as :class:`vision.segmentation.SemanticSegmentation` does (in float, antialiased),
    ``sizes`` the picture's own, to which the masks are scaled back."""

    def __init__(self, spec: dict[str, Any]):
        self.size = picture_target_size(spec)
        self.interpolation = spec.get("interpolation", "bilinear")
        self.max_pixels = spec.get("max_pixels")
        self.mean = np.asarray(spec.get("mean", (0.0,)), dtype=np.float32).reshape(-1, 1, 1)
        self.std = np.asarray(spec.get("std", (1.0,)), dtype=np.float32).reshape(-1, 1, 1)
        if self.interpolation not in INTERPOLATIONS or (self.std == 0).any() \
                or not {len(self.mean), len(self.std)} <= {1, 3}:
            raise InputError(f"expected an interpolation among {INTERPOLATIONS}, and a mean and a non-zero std of "
                             f"1 or 3 values, got {self.interpolation!r}, {spec.get('mean')} and {spec.get('std')}")

    @classmethod
    def from_bundle(cls, files, spec: dict[str, Any]) -> "PictureBatcher":
        return cls(spec)

    def __call__(self, raw_inputs) -> dict[str, np.ndarray]:
        unit = one_picture(raw_inputs, self.max_pixels)
        resized = np.clip(self._resized(unit), 0.0, 1.0)
        return {"input": ((resized - self.mean) / self.std)[None].astype(np.float32),
                "sizes": np.asarray([unit.shape[1:]], dtype=np.int64)}

    def _resized(self, unit: np.ndarray) -> np.ndarray:
        """``[3, H, W]`` → the network's size, each channel resized by PIL in float (as torchvision's antialias)."""
        from PIL import Image

        height, width = unit.shape[1:]
        if self.size is None:
            return unit
        if len(self.size) == 2:
            target_h, target_w = self.size
        elif height <= width:  # the shorter side becomes the size, rounding as torchvision's Resize(int)
            target_h, target_w = self.size[0], int(self.size[0] * width / height)
        else:
            target_h, target_w = int(self.size[0] * height / width), self.size[0]
        if (target_h, target_w) == (height, width):
            return unit
        check_image_size(target_w, target_h, card_limit=self.max_pixels, source="the resize target")
        resample = getattr(Image.Resampling, self.interpolation.upper())
        return np.stack([np.asarray(Image.fromarray(channel).resize((target_w, target_h), resample), dtype=np.float32)
                         for channel in unit])


class DetectorBatcher:
    """Runtime preprocessing for an exported detector: one picture → ``{"input": 1×3×h×w, "sizes": [[H, W]],
    "resized": [[h', w']]}`` as torchvision's ``GeneralizedRCNNTransform`` prepares it in eval mode: normalised,
    resized (bilinear, no antialias) so the shorter side is ``min_size`` and the longer at most ``max_size`` (or to
    ``fixed_size``, (width, height)), zero-padded to a multiple of ``size_divisible``; ``resized`` is the picture's
    size before the padding (boxes are clipped to it), ``sizes`` its own (boxes are scaled back to it)."""

    def __init__(self, spec: dict[str, Any]):
        self.min_size, self.max_size = int(spec["min_size"]), int(spec["max_size"])
        self.fixed_size = [int(s) for s in spec["fixed_size"]] if spec.get("fixed_size") else None
        self.size_divisible = int(spec.get("size_divisible", 32))
        self.max_pixels = spec.get("max_pixels")
        self.mean = np.asarray(spec["mean"], dtype=np.float32).reshape(-1, 1, 1)
        self.std = np.asarray(spec["std"], dtype=np.float32).reshape(-1, 1, 1)
        if min(self.min_size, self.max_size, self.size_divisible, *(self.fixed_size or [1])) < 1 \
                or len(self.fixed_size or [0, 0]) != 2 or (self.std == 0).any() or len(self.mean) != 3 \
                or len(self.std) != 3:
            raise InputError(f"expected positive min_size, max_size, size_divisible (and fixed_size [W, H]), and a "
                             f"mean and a non-zero std of 3 values, got {spec!r:.200}")

    @classmethod
    def from_bundle(cls, files, spec: dict[str, Any]) -> "DetectorBatcher":
        return cls(spec)

    def resized_size(self, height: int, width: int) -> tuple[int, int]:
        """The picture's size inside the network (torch's ``interpolate`` with a recomputed scale factor)."""
        if self.fixed_size:
            return self.fixed_size[1], self.fixed_size[0]
        scale = min(self.min_size / min(height, width), self.max_size / max(height, width))
        return math.floor(height * scale), math.floor(width * scale)

    def __call__(self, raw_inputs) -> dict[str, np.ndarray]:
        from zoo.runtime import resize_bilinear

        unit = one_picture(raw_inputs, self.max_pixels)
        height, width = self.resized_size(*unit.shape[1:])
        check_image_size(width, height, card_limit=self.max_pixels, source="the resize target")
        resized = resize_bilinear((unit - self.mean) / self.std, height, width)
        step = self.size_divisible
        padded = np.zeros((1, 3, -(-height // step) * step, -(-width // step) * step), dtype=np.float32)
        padded[0, :, :height, :width] = resized
        return {"input": padded, "sizes": np.asarray([unit.shape[1:]], dtype=np.int64),
                "resized": np.asarray([[height, width]], dtype=np.int64)}


def one_picture(raw_inputs, max_pixels: int | None) -> np.ndarray:
    """The one picture of a runtime batch (a path is read) as ``[3, H, W]`` in [0, 1]."""
    if len(raw_inputs) != 1:
        raise InputError(f"pictures differ in size: expected one picture a batch, got {len(raw_inputs)}")
    image = raw_inputs[0]
    if isinstance(image, (str, bytes)) or hasattr(image, "__fspath__"):
        image = read_image(image, card_limit=max_pixels)
    return picture_unit(image, max_pixels=max_pixels)


def picture_target_size(spec: dict[str, Any]) -> list[int] | None:
    """The network input size a picture preprocessing asks for: ``[short side]``, ``[H, W]``, or None (as is)."""
    try:
        if spec.get("resize_size") is not None:
            size = [int(spec["resize_size"])]
        elif spec.get("size") is not None:
            size = [int(v) for v in spec["size"]]
        else:
            return None
    except (TypeError, ValueError):
        size = []
    if len(size) not in (1, 2) or min(size) < 1:
        raise InputError(f"preprocessing: expected resize_size (an int) or size ([H, W]) of positive integers, "
                         f"got {spec.get('resize_size', spec.get('size'))!r}")
    return size


def picture_unit(image: Any, *, max_pixels: int | None = None) -> np.ndarray:
    """One raw picture at its own size → ``[3, H, W]`` float32 in [0, 1] (what detectors and segmenters take).

    A PIL image (any mode, handled as :class:`ImageTransform` does), or an array of 0–255 values shaped
    H×W, H×W×3 or 3×H×W; nothing is resized, so boxes and masks stay in the input's pixels.
    """
    if _is_pil(image):
        width, height = image.size
    else:
        array = image.detach().cpu().numpy() if type(image).__module__.startswith("torch") else image
        if not isinstance(array, np.ndarray) or array.ndim not in (2, 3):
            raise InputError(f"expected a PIL image or an H×W, H×W×3 or 3×H×W array, got {type(image).__name__} "
                             f"{getattr(array, 'shape', '')}")
        chw = array.ndim == 3 and array.shape[0] == 3 and array.shape[-1] != 3
        height, width = array.shape[1:] if chw else array.shape[:2]
        image = array
    check_image_size(width, height, card_limit=max_pixels)
    return ImageTransform(size=(height, width), channels=3, max_pixels=max_pixels).to_unit(image)
