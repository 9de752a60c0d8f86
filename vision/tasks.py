"""Task adapters: how a vision model's raw inputs and outputs look to a user."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from vision.transforms import ImageTransform, picture_unit
from zoo.atomic import atomic_path
from zoo.card import ModelCard
from zoo.model import TaskAdapter
from zoo.metrics import top_k_predictions


class ImageClassification(TaskAdapter):
    """Images in; ``{"label", "index", "score", "top_k"}`` out, scores from softmax."""

    top_k = 5

    def __init__(self, card: ModelCard, files: Mapping[str, Path] | None = None):
        super().__init__(card, files)
        self._transform = ImageTransform.from_preprocessing(card.preprocessing)

    @property
    def transform(self) -> ImageTransform:
        return self._transform

    def read(self, path) -> Any:
        """An image file (checked for size before decoding, EXIF orientation applied), or a ``.npy`` array."""
        from vision.images import read_image

        return read_image(path, card_limit=self._transform.max_pixels)

    def runtime_preprocessing(self) -> dict[str, Any]:
        return {"ref": "vision.transforms:ImageBatcher", "spec": dict(self.card.preprocessing)}

    def runtime_postprocessing(self) -> dict[str, Any]:
        return {"kind": "classification", "top_k": 5}

    def postprocess(self, outputs: torch.Tensor) -> list[dict[str, Any]]:
        return top_k_predictions(outputs, self.card.labels, self.top_k)


class PictureTask(TaskAdapter):
    """The tasks that take pictures at their own size (detection, segmentation): reading, the pixel limit
    (the card's ``preprocessing.max_pixels``), pictures as [0, 1] tensors, and predictions written per picture."""

    writes_folders = True

    def __init__(self, card: ModelCard, files: Mapping[str, Path] | None = None):
        super().__init__(card, files)
        self.max_pixels = (card.preprocessing or {}).get("max_pixels")

    def read(self, path) -> Any:
        """An image file (checked for size before decoding, EXIF orientation applied), or a ``.npy`` array."""
        from vision.images import read_image

        return read_image(path, card_limit=self.max_pixels)

    def unit(self, image: Any) -> torch.Tensor:
        """One raw picture → ``[3, H, W]`` float32 in [0, 1] at its own size."""
        return torch.from_numpy(picture_unit(image, max_pixels=self.max_pixels))

    def pixels(self, image: Any) -> torch.Tensor:
        """One raw picture → ``[3, H, W]`` uint8, to draw on."""
        return (self.unit(image) * 255).round().to(torch.uint8)


def save_png(pixels, path) -> Path:
    """An H×W or H×W×3 uint8 (or uint16 grey) array as a PNG file, written atomically."""
    import numpy as np
    from PIL import Image

    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(pixels)).save(tmp, format="PNG")
    return path
