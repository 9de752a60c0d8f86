"""The ``semantic-segmentation`` task: images in, a class index per pixel out.

A segmentation network takes ``[B, 3, H, W]`` (the picture resized and normalised as the
card's ``preprocessing`` says) and returns class logits ``[B, C, h, w]``, or torchvision's
``{"out": logits, "aux": ...}``. The adapter scales the logits back to the input's size
(bilinear) and takes the best class per pixel, so ``predict`` gives, per image,
``{"mask": H×W int array at the input size, "labels": {index: name}}``.

Preprocessing (the card's ``preprocessing``): ``mean``/``std`` over [0, 1] pixels, and
either ``resize_size`` (the shorter side becomes it, aspect kept: torchvision's
``SemanticSegmentation`` preset) or ``size`` ``[H, W]`` (exactly that); ``interpolation``
``bilinear`` (antialiased) by default.

``zoo predict --out`` writes the mask as a PNG whose pixel values are the class
indices (8-bit, 16-bit beyond 256 classes: the format the mask-folder reader takes),
and ``--draw`` the picture with the mask laid over it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from vision.tasks import PictureTask, save_png
from vision.transforms import INTERPOLATIONS, picture_target_size
from zoo.card import ModelCard
from zoo.errors import InputError

BACKGROUND_NAMES = ("__background__", "background")  # classes --draw leaves uncoloured
PARITY_PHOTOS = ("astronaut", "coffee", "chelsea")  # real photos the exported masks are checked on
MIN_PIXEL_AGREEMENT = 0.999


class SemanticSegmentation(PictureTask):
    """Pictures in (any size); ``{"mask", "labels"}`` per picture out."""

    output_suffixes = (".png",)
    draw_suffix = "_mask.png"

    def __init__(self, card: ModelCard, files: Mapping[str, Path] | None = None):
        super().__init__(card, files)
        spec = dict(card.preprocessing or {})
        self.mean = torch.tensor([float(v) for v in spec.get("mean", (0.0,))]).reshape(-1, 1, 1)
        self.std = torch.tensor([float(v) for v in spec.get("std", (1.0,))]).reshape(-1, 1, 1)
        self.size = picture_target_size(spec)
        self.interpolation = spec.get("interpolation", "bilinear")
        if self.interpolation not in INTERPOLATIONS or (self.std == 0).any():
            raise InputError(f"{card.id}: preprocessing expects an interpolation among {INTERPOLATIONS} and a "
                             f"non-zero std, got {self.interpolation!r} and {spec.get('std')}")

    @property
    def transform(self):
        """One raw picture → the network's ``[3, h, w]`` input (resized, normalised)."""
        return lambda image: self._prepared(self.unit(image))

    def _prepared(self, unit: torch.Tensor) -> torch.Tensor:
        """``[3, H, W]`` in [0, 1] → the network's input."""
        from torchvision.transforms.v2 import InterpolationMode
        from torchvision.transforms.v2 import functional as F

        if self.size is not None:
            mode = InterpolationMode(self.interpolation)
            unit = F.resize(unit, self.size, interpolation=mode, antialias=True).clamp_(0, 1)
        return (unit - self.mean) / self.std

    # -- export (zoo export: vision.transforms.PictureBatcher and the runtime's "segmentation" postprocessing) --
    @property
    def fixed_size(self) -> bool:
        """Whether every picture becomes the same ``[H, W]`` (else its short side is resized and sizes vary)."""
        return self.size is not None and len(self.size) == 2

    @property
    def export_axes(self) -> tuple[int, ...]:
        # Dynamic height and width only where sizes vary: they make the export many times slower.
        return (0,) if self.fixed_size else (0, 2, 3)

    def export_module(self, net: torch.nn.Module) -> torch.nn.Module:
        return SegmentationLogits(net)

    def example_inputs(self) -> list[torch.Tensor]:
        """Two batches of different sizes (and, where pictures keep their aspect, of different heights and widths),
        so parity covers every dynamic axis of the graph."""
        side = self.size[0] if self.size else 64
        height, width = self.size if self.fixed_size else (side, side)
        grow = (0, 0) if self.fixed_size else (32, 16)
        generator = torch.Generator().manual_seed(0)
        return [torch.rand((2, 3, height, width), generator=generator),
                torch.rand((1, 3, height + grow[0], width + grow[1]), generator=generator)]

    def runtime_preprocessing(self) -> dict[str, Any]:
        return {"ref": "vision.transforms:PictureBatcher", "spec": dict(self.card.preprocessing or {})}

    def runtime_postprocessing(self) -> dict[str, Any]:
        return {"kind": "segmentation"}

    def bundle_checks(self, model, bundle) -> dict[str, Any]:
        """Pixel agreement of the bundle's masks with eager ones on real photos (scikit-image's samples)."""
        from skimage import data

        rows = []
        for name in PARITY_PHOTOS:
            photo = getattr(data, name)()
            eager, exported = model.predict(photo)["mask"], bundle.predict(photo)["mask"]
            rows.append({"photo": f"skimage.data.{name}", "size": list(eager.shape),
                         "pixel_agreement": float((eager == exported).mean()) if eager.shape == exported.shape else 0.0})
        worst = min(row["pixel_agreement"] for row in rows)
        return {"measure": "pixel_agreement", "min": worst, "required": MIN_PIXEL_AGREEMENT,
                "passed": worst >= MIN_PIXEL_AGREEMENT, "photos": rows}

    def predict(self, module, raw_inputs: Sequence[Any], *, device: torch.device, **options: Any) -> list[dict]:
        """One forward per picture (pictures differ in size); logits scaled back to each picture's size."""
        if options:
            raise InputError(f"task {self.card.task!r} takes no predict options, got {sorted(options)}")
        predictions = []
        for image in raw_inputs:
            unit = self.unit(image)
            logits = class_logits(module(self._prepared(unit)[None].to(device)))
            logits = torch.nn.functional.interpolate(logits.float(), size=tuple(unit.shape[1:]), mode="bilinear",
                                                     align_corners=False)
            predictions.extend(self.postprocess(logits))
        return predictions

    def postprocess(self, outputs: Any) -> list[dict[str, Any]]:
        """Logits ``[B, C, H, W]`` (or ``{"out": ...}``) → a mask of class indices per image."""
        logits = class_logits(outputs)
        labels = {index: str(name) for index, name in enumerate(self.card.labels or [])}
        if logits.shape[1] != len(labels):
            raise InputError(f"{self.card.id}: the network gave {logits.shape[1]} classes, the card names {len(labels)}")
        masks = logits.argmax(dim=1).cpu().numpy().astype(np.int64)
        return [{"mask": mask, "labels": labels} for mask in masks]

    def describe(self, prediction: Any, top_k: int = 1) -> str:
        """``mask H×W: name share%, ...``, the largest classes first."""
        mask = np.asarray(prediction["mask"])
        counts = np.bincount(mask.ravel(), minlength=len(prediction["labels"]))
        order = np.argsort(counts)[::-1][:max(top_k, 3)]
        shown = ", ".join(f"{prediction['labels'].get(int(i), i)} {counts[i] / mask.size:.1%}"
                          for i in order if counts[i])
        return f"mask {mask.shape[0]}×{mask.shape[1]}: {shown}"

    # -- files --------------------------------------------------------------
    def write(self, prediction: Any, path: str | os.PathLike, *, source: str | os.PathLike | None = None) -> Path:
        """The mask as a PNG of class indices (8-bit, or 16-bit for more than 256 classes)."""
        mask = np.asarray(prediction["mask"])
        return save_png(mask.astype(np.uint8 if mask.max(initial=0) < 256 else np.uint16), path)

    def draw(self, raw_input: Any, prediction: Any, path: str | os.PathLike) -> Path:
        """The picture with each class's pixels tinted in its own colour, as a PNG."""
        from torchvision.utils import draw_segmentation_masks

        pixels = self.pixels(raw_input)
        mask = torch.from_numpy(np.asarray(prediction["mask"]))
        shown = [int(i) for i in mask.unique() if prediction["labels"].get(int(i)) not in BACKGROUND_NAMES]
        if shown:
            masks = torch.stack([mask == index for index in shown])
            pixels = draw_segmentation_masks(pixels, masks, alpha=0.5, colors=[class_colour(i) for i in shown])
        return save_png(pixels.permute(1, 2, 0).numpy(), path)


class SegmentationLogits(torch.nn.Module):
    """A segmenter with one tensor out (torchvision's return ``{"out", "aux"}``): what ``zoo export`` writes."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return class_logits(self.net(images))


def class_logits(outputs: Any) -> torch.Tensor:
    """The class logits of a segmentation network's output: the tensor itself or torchvision's ``"out"``."""
    logits = outputs["out"] if isinstance(outputs, Mapping) else outputs
    if not isinstance(logits, torch.Tensor) or logits.ndim != 4:
        raise InputError(f"expected segmentation logits [B, C, H, W] (or a dict with 'out'), got "
                         f"{type(logits).__name__} {tuple(getattr(logits, 'shape', ()))}")
    return logits


def class_colour(index: int) -> tuple[int, int, int]:
    """The Pascal VOC palette's colour for a class index (distinct for neighbouring indices)."""
    rgb = [0, 0, 0]
    for bit in range(8):
        for channel in range(3):
            rgb[channel] |= ((index >> (3 * bit + channel)) & 1) << (7 - bit)
    return tuple(rgb)
