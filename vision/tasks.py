"""Task adapters: how a vision model's raw inputs and outputs look to a user."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from vision.transforms import ImageTransform, picture_unit
from zoo.atomic import atomic_path
from zoo.card import ModelCard
from zoo.errors import InputError
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

    # int8: static QDQ (a CNN's time goes to convolutions, which need their activations' ranges beforehand).
    int8 = "static"
    #: The int8 bundle's top-1 may be at most this (1 point) below the fp32 bundle's.
    int8_tolerance = 0.01
    #: How many training images calibrate the activation ranges, drawn at random with this seed.
    int8_calibration_samples = 256
    int8_calibration_seed = 0
    #: Operator types left fp32 (none: every convolution, addition, pool and the head quantize within 1 point).
    int8_fp32_op_types: tuple[str, ...] = ()
    #: The most test images the int8 quality is measured on (the first ones of the split).
    int8_quality_samples = 10_000

    def quantize_int8(self, model, source: Path, target: Path, *, calibration: str | None = None) -> dict[str, Any]:
        """Static QDQ int8, calibrated on ``int8_calibration_samples`` training images of ``calibration`` (else the
        dataset the model was trained on); bundle.json's ``"quantization"`` records which ones."""
        from backends.quantize import quantize_static_int8

        batches, record = self.int8_calibration(calibration)
        report = quantize_static_int8(source, target, batches, fp32_op_types=self.int8_fp32_op_types)
        return {**report, "calibration": record}

    def int8_calibration(self, data: str | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Batches of preprocessed training images of ``data`` (else the card's training dataset) to calibrate
        on, and the record of which: ``{"dataset", "split", "samples", "seed", "indices", "fingerprint"}``."""
        import numpy as np

        from vision.datasets import load_splits

        data = data or self._trained_on()
        splits = load_splits(data)
        train = splits.train
        count = min(self.int8_calibration_samples, len(train))
        if count == 0 or len(splits.classes) != len(self.card.labels or splits.classes):
            raise InputError(f"{self.card.id}: the calibration set {data!r} must have training images of the "
                             f"model's {len(self.card.labels or [])} classes, got {len(train)} images of "
                             f"{len(splits.classes)} classes")
        indices = np.sort(np.random.default_rng(self.int8_calibration_seed).choice(len(train), count, replace=False))
        images = np.stack([self._transform.to_array(train.raw(int(i))) for i in indices])
        batches = [{"input": images[start:start + 32]} for start in range(0, count, 32)]
        return batches, {"dataset": str(data), "split": "train", "samples": count, "seed": self.int8_calibration_seed,
                         "indices": indices.tolist(), "fingerprint": splits.fingerprint}

    def int8_quality(self, model, fp32_bundle, int8_bundle) -> dict[str, Any]:
        """Top-1 of the fp32 and the int8 bundle on the test split (else validation) of the dataset the card's
        metrics were measured on."""
        from vision.datasets import load_splits
        from zoo.quantize import quality_record

        data = next((m["dataset"] for m in self.card.metrics if m.get("dataset")), None)
        if data is None:
            raise InputError(f"the card of {self.card.id!r} names no dataset in its metrics: the int8 quality is "
                             "measured on the labelled set the model was evaluated on")
        splits = load_splits(data)
        split = "test" if splits.test is not None else "val"
        dataset = splits.split(split)
        count = min(len(dataset), self.int8_quality_samples)
        scores = [_top1(bundle, dataset, count) for bundle in (fp32_bundle, int8_bundle)]
        return quality_record("top1", str(data), split, count, *scores, self.int8_tolerance)

    def _trained_on(self) -> str:
        """The dataset the card's recipe trained on: the model's own calibration set."""
        params = (self.card.provenance.get("recipe") or {}).get("params") or {}
        if not params.get("data"):
            raise InputError(f"{self.card.id}: static int8 calibrates on the model's training data, and its card "
                             "names none (no provenance.recipe.params.data); pass a calibration dataset: "
                             "--calibration DATA (a dataset id, image folder or .csv of its classes)")
        return str(params["data"])

    def postprocess(self, outputs: torch.Tensor) -> list[dict[str, Any]]:
        return top_k_predictions(outputs, self.card.labels, self.top_k)


def _top1(bundle: Any, dataset: Any, count: int, chunk: int = 256) -> float:
    """The fraction of the first ``count`` images of ``dataset`` whose top-1 from ``bundle`` is their label."""
    right = 0
    for start in range(0, count, chunk):
        rows = range(start, min(start + chunk, count))
        predictions = bundle.predict([dataset.raw(i) for i in rows])
        right += sum(p["index"] == int(dataset.labels[i]) for p, i in zip(predictions, rows))
    return right / count


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
