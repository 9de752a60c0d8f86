"""Task adapters: how a vision model's raw inputs and outputs look to a user."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from vision.transforms import ImageTransform
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
