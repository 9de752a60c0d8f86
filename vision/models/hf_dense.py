"""transformers detectors and segmenters with their image processors, under the zoo's network contracts.

``hf_object_detector``: a ``*ForObjectDetection`` model (DETR, RT-DETR, YOLOS, ...) whose forward takes
a list of ``[3, H, W]`` pictures in [0, 1] and returns, per picture, ``{"boxes", "scores", "labels"}`` in
that picture's pixels (:mod:`vision.detection`'s contract): the image processor resizes, normalises and
pads, and its ``post_process_object_detection(threshold=..., target_sizes=...)`` scales the boxes back.

``hf_semantic_segmenter``: a ``*ForSemanticSegmentation`` model (SegFormer, ...) whose forward takes
``[B, 3, H, W]`` pictures in [0, 1], prepares them with its image processor and returns the class
logits; :class:`vision.segmentation.SemanticSegmentation` scales them to the picture's size and takes
the best class per pixel, as the processor's ``post_process_semantic_segmentation(target_sizes=...)``
does (bilinear, then argmax).

Both are rebuilt from a card's ``config`` and ``processor`` dicts (a saved folder loads without the
hub); remote code never runs: the config's ``auto_map`` is dropped and the processor class must be
one of transformers' own.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from zoo.errors import InputError

DEFAULT_THRESHOLD = 0.5  # the score a box needs, as transformers' object-detection pipeline


class HFObjectDetector(nn.Module):
    """A transformers detector and its image processor: pictures in [0, 1] → boxes in their own pixels."""

    def __init__(self, model: nn.Module, processor, threshold: float = DEFAULT_THRESHOLD):
        super().__init__()
        self.model = model
        self.processor = processor
        self.threshold = float(threshold)

    def forward(self, images: list[torch.Tensor], targets: Any = None) -> list[dict[str, torch.Tensor]]:
        if targets is not None:
            raise InputError("hf: detectors are not trained through the zoo's recipes yet; fine-tune the "
                             "transformers model (model.net.model) with its own loss")
        sizes = [tuple(int(s) for s in image.shape[-2:]) for image in images]
        device = images[0].device if len(images) else torch.device("cpu")
        inputs = self.processor(images=[_as_bytes(image) for image in images], return_tensors="pt")
        outputs = self.model(**{name: value.to(device) for name, value in inputs.items()})
        results = self.processor.post_process_object_detection(outputs, threshold=self.threshold, target_sizes=sizes)
        return [_inside(result, size) for result, size in zip(results, sizes)]


class HFSemanticSegmenter(nn.Module):
    """A transformers segmenter and its image processor: ``[B, 3, H, W]`` in [0, 1] → class logits."""

    def __init__(self, model: nn.Module, processor):
        super().__init__()
        self.model = model
        self.processor = processor

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        inputs = self.processor(images=[_as_bytes(image) for image in images], return_tensors="pt")
        return self.model(pixel_values=inputs["pixel_values"].to(images.device)).logits


def _as_bytes(image: torch.Tensor) -> torch.Tensor:
    """A [0, 1] picture as the 0-255 bytes it was read from: the processor then works exactly as on the file
    (it resizes bytes, rounding, before it rescales them)."""
    return (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()


def _inside(result: dict, size: tuple[int, int]) -> dict[str, torch.Tensor]:
    """One picture's detections with the boxes clipped to it (centre-size boxes may reach past its edges)."""
    height, width = size
    boxes = result["boxes"].float().reshape(-1, 4)
    limits = torch.tensor([width, height, width, height], dtype=boxes.dtype, device=boxes.device)
    boxes = torch.minimum(boxes.clamp(min=0), limits)
    return {"boxes": boxes, "scores": result["scores"].float(), "labels": result["labels"].long()}


# -- architectures (rebuilding saved hf models) ------------------------------------
def image_processor(processor: dict[str, Any]):
    """transformers' image processor from its ``preprocessor_config.json`` dict; only transformers' own classes."""
    from transformers.models.auto.image_processing_auto import get_image_processor_class_from_name

    name = processor.get("image_processor_type")
    cls = get_image_processor_class_from_name(name) if isinstance(name, str) and name.isidentifier() else None
    if cls is None:
        raise InputError(f"image_processor_type {name!r} is not an image processor transformers knows; "
                         "custom (remote-code) processors are not built by the zoo")
    return cls.from_dict(dict(processor))


def _model(auto_class, config: dict[str, Any]) -> nn.Module:
    from zoo.hf import config_from_dict

    config = {key: value for key, value in config.items() if key != "auto_map"}  # remote code never runs
    return auto_class.from_config(config_from_dict(config), trust_remote_code=False, dtype=torch.float32)


def hf_object_detector(config: dict[str, Any], processor: dict[str, Any],
                       threshold: float = DEFAULT_THRESHOLD) -> HFObjectDetector:
    """The ``hf_object_detector`` architecture: ``AutoModelForObjectDetection.from_config`` (no network)."""
    from transformers import AutoModelForObjectDetection

    return HFObjectDetector(_model(AutoModelForObjectDetection, config), image_processor(processor), threshold)


def hf_semantic_segmenter(config: dict[str, Any], processor: dict[str, Any]) -> HFSemanticSegmenter:
    """The ``hf_semantic_segmenter`` architecture: ``AutoModelForSemanticSegmentation.from_config`` (no network)."""
    from transformers import AutoModelForSemanticSegmentation

    return HFSemanticSegmenter(_model(AutoModelForSemanticSegmentation, config), image_processor(processor))
