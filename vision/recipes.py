"""Vision recipes on the shared Trainer."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping

import numpy as np

from zoo.recipes import RecipeResult, TrainerRecipe, bounded


@dataclass
class ImageClassificationRecipe(TrainerRecipe):
    """Fine-tune (or train from scratch) an image classifier on a dataset id, a class-folder tree or a CSV.

    A new head is fitted for the data's classes; ``freeze_backbone`` trains only
    the head (a linear probe). ``augment``: ``"trivial"`` (flip + TrivialAugment
    on the image, for photos), ``"affine"`` (small shifts/rotations after
    preprocessing, for tiny images such as 8×8 digits) or ``"none"``.
    ``image_size`` trains (and later predicts) at another resolution than the
    weights' default — smaller is much faster on CPU. ``train.ema_decay`` keeps and
    saves an exponential moving average of the weights.
    """

    name: ClassVar[str] = "image-classification"
    train_defaults: ClassVar[Mapping[str, Any]] = {
        "lr": 3e-3, "precision": "auto", "deterministic": True, "monitor": "val_accuracy", "monitor_mode": "max",
    }

    model: str = "vision/digits_cnn.sklearn"
    data: str = "vision/digits"
    pretrained: bool = True
    label_smoothing: float = bounded(0.1, "[0, 1)")
    augment: str = "trivial"
    image_size: int | None = bounded(None, "[1, inf)")
    freeze_backbone: bool = False
    val_fraction: float = bounded(0.2, "(0, 1)")  # the best epoch is picked on val

    def run(self, out_dir: str | Path, *, resume: bool | str = False, progress: bool = True) -> RecipeResult:
        import torch

        from backends.seed import seed_everything, set_deterministic
        from vision.datasets import load_splits
        from zoo.hub import load
        from zoo.metrics import classification_metrics
        from zoo.train import Trainer

        seed_everything(self.seed)
        set_deterministic(self.train.deterministic)
        splits = load_splits(self.data, val_fraction=self.val_fraction)
        model = load(self.model, pretrained=self.pretrained, num_classes=len(splits.classes), device=self.train.device)
        model.card.labels = list(splits.classes)
        if self.image_size is not None:
            model.card.preprocessing["size"] = [self.image_size, self.image_size]
            # The card's input is what zoo export traces the graph at: the new size (the FLOPs were the old size's).
            channels = (model.card.input or {}).get("shape", [model.card.preprocessing.get("channels", 3)])[0]
            model.card.input = {"shape": [channels, self.image_size, self.image_size], "dtype": "float32"}
        model.adapter = type(model.adapter)(model.card)  # labels and size are the adapter's
        if self.freeze_backbone:
            _freeze_all_but_head(model.net)
        transform = model.transform
        train_transform = _train_transform(self.augment, transform)
        trainer = Trainer(
            model,
            splits.train.with_transform(train_transform),
            splits.val.with_transform(transform),
            config=self.train_config(progress),
            out_dir=out_dir,
            loss_fn=torch.nn.CrossEntropyLoss(label_smoothing=self.label_smoothing),
            metrics_fn=classification_metrics,
            provenance=self.provenance(splits.fingerprint),
        )
        test = splits.test.with_transform(transform) if splits.test is not None else None
        model.card.metrics = metrics = self.fit_and_score(trainer, test, resume)
        if trainer.env.is_main:  # under torchrun every rank gets here; one writes
            model.save(out_dir)
        return RecipeResult(Path(out_dir), metrics)


AUGMENTATIONS = ("trivial", "affine", "none")


def _train_transform(augment: str, transform):
    if augment not in AUGMENTATIONS:
        from zoo.errors import InputError

        raise InputError(f"augment must be one of {AUGMENTATIONS}, got {augment!r}")
    return {"trivial": _TrivialAugmented, "affine": _AffineJittered}.get(augment, lambda t: t)(transform)


class _AffineJittered:
    """Small random affine jitter after preprocessing, filling with the normalised background."""

    def __init__(self, transform):
        from torchvision.transforms import v2

        self.transform = transform
        fill = [-m / s for m, s in zip(transform.mean, transform.std)]
        self.jitter = v2.RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1), fill=fill)

    def __call__(self, image):
        return self.jitter(self.transform(image))


class _TrivialAugmented:
    """Horizontal flip and TrivialAugmentWide, then the weights' mean/std.

    They run on the preprocessed image as 8-bit pixels, so every input the
    datasets produce (grey, colour, 16-bit, float arrays) is augmented alike.
    """

    def __init__(self, transform):
        from torchvision.transforms import v2

        self.transform = transform
        self.augment = v2.Compose([v2.RandomHorizontalFlip(), v2.TrivialAugmentWide()])

    def __call__(self, image):
        import torch

        pixels = torch.from_numpy(np.rint(self.transform.to_unit(image) * 255).astype(np.uint8))
        augmented = self.augment(pixels).numpy().astype(np.float32) / 255
        return torch.from_numpy(self.transform.normalize(augmented))


def _freeze_all_but_head(net) -> None:
    head = set(map(id, net.get_classifier().parameters()))
    for param in net.parameters():
        param.requires_grad = id(param) in head
