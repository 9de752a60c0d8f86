"""Preprocessing bound to weights: a raw image (PIL or array) → the tensor a network takes.

The card's ``preprocessing`` dict is the single description of it, so a saved or
exported model preprocesses exactly as it was trained.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from zoo.errors import InputError


@dataclass(frozen=True)
class ImageTransform:
    """Resize a PIL image (arrays must already have ``size``), scale to [0, 1], normalise.

    ``array_range`` is the value range raw arrays come in (e.g. ``[0, 16]`` for
    scikit-learn's digits); PIL images are always 0–255.
    """

    size: tuple[int, int]
    channels: int = 3
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    array_range: tuple[float, float] = (0.0, 255.0)

    @classmethod
    def from_preprocessing(cls, spec: dict[str, Any]) -> "ImageTransform":
        return cls(
            size=tuple(spec["size"]),
            channels=int(spec.get("channels", 3)),
            mean=tuple(spec.get("mean", (0.0,))),
            std=tuple(spec.get("std", (1.0,))),
            array_range=tuple(spec.get("array_range", (0.0, 255.0))),
        )

    def to_preprocessing(self) -> dict[str, Any]:
        return {
            "size": list(self.size),
            "channels": self.channels,
            "mean": list(self.mean),
            "std": list(self.std),
            "array_range": list(self.array_range),
            "pil": "convert to L/RGB, resize with box filter, scale 0-255 to 0-1",
        }

    @property
    def expected(self) -> str:
        h, w = self.size
        lo, hi = self.array_range
        shape = f"{h}×{w}" if self.channels == 1 else f"{h}×{w}×{self.channels} or {self.channels}×{h}×{w}"
        return f"a PIL image or a {shape} array with values in [{lo:g}, {hi:g}]"

    def __call__(self, image: Any) -> torch.Tensor:
        chw = self._pil_to_unit(image) if _is_pil(image) else self._array_to_unit(image)
        mean = torch.tensor(self.mean, dtype=torch.float32).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(-1, 1, 1)
        return (chw - mean) / std

    def _pil_to_unit(self, image) -> torch.Tensor:
        from PIL import Image

        image = image.convert("L" if self.channels == 1 else "RGB")
        h, w = self.size
        if image.size != (w, h):
            image = image.resize((w, h), Image.Resampling.BOX)
        array = np.asarray(image, dtype=np.float32) / 255.0
        return _to_chw(array, self.channels)

    def _array_to_unit(self, image: Any) -> torch.Tensor:
        array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else image
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
        return torch.from_numpy((chw - lo) / (hi - lo))

    def _check_shape(self, array: np.ndarray) -> np.ndarray:
        h, w = self.size
        if array.shape == (h, w) and self.channels == 1:
            return array[None]
        if array.shape == (self.channels, h, w):
            return array
        if array.shape == (h, w, self.channels):
            return array.transpose(2, 0, 1)
        raise InputError(f"expected {self.expected}, got an array of shape {tuple(array.shape)}")


def _to_chw(array: np.ndarray, channels: int) -> torch.Tensor:
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    return tensor[None] if channels == 1 else tensor.permute(2, 0, 1)


def _is_pil(image: Any) -> bool:
    return type(image).__module__.startswith("PIL.")
