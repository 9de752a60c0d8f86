"""Medical recipes on the shared Trainer: ``segmentation-3d`` (U-Net on volumes) and ``classification-2d``."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from zoo.recipes import RecipeResult, TrainerRecipe, bounded, card_metrics


@dataclass
class Segmentation3DRecipe(TrainerRecipe):
    """Train (or fine-tune) a 3-D segmentation network on a dataset id or a Decathlon folder.

    Volumes are brought to the canonical orientation and ``spacing`` (mm), CT
    values normalised through ``window`` (width, level in HU). Training draws
    ``patches_per_epoch`` random ``patch_size`` patches a epoch, a
    ``foreground_fraction`` of them centred on a voxel of a random foreground
    class present in the volume (small structures get seen), the rest anywhere.
    The loss is soft Dice (foreground classes) + cross-entropy. Validation Dice is
    measured on fixed patches of the val volumes; the final model is then
    evaluated on the test volumes (or val, when there is no test split) end to
    end: sliding-window inference with ``overlap`` and Gaussian blending, mapped
    back to each volume's own grid, Dice and HD95 there. ``num_threads`` caps torch's
    CPU threads (on a busy machine one thread often trains fastest).
    """

    name: ClassVar[str] = "segmentation-3d"
    train_defaults: ClassVar[Mapping[str, Any]] = {
        "epochs": 6, "batch_size": 4, "lr": 3e-3, "weight_decay": 1e-4, "deterministic": True,
        "monitor": "val_dice", "monitor_mode": "max",
    }

    model: str = "medical/unet3d.ct_phantom"
    data: str = "medical/ct-phantom"
    pretrained: bool = True
    max_train_cases: int | None = bounded(None, "[1, inf)")
    max_eval_cases: int | None = bounded(None, "[1, inf)")
    patches_per_epoch: int = bounded(480, "[1, inf)")
    patch_size: tuple[int, int, int] = bounded((32, 32, 32), "[1, inf)", "[1, inf)", "[1, inf)")
    spacing: tuple[float, float, float] = bounded((4.0, 4.0, 4.0), "(0, inf)", "(0, inf)", "(0, inf)")
    window: tuple[float, float] = bounded((400.0, 40.0), "(0, inf)", "(-inf, inf)")
    foreground_fraction: float = bounded(0.67, "[0, 1]")
    overlap: float = bounded(0.5, "[0, 1)")
    val_patches_per_case: int = bounded(8, "[1, inf)")
    num_threads: int | None = bounded(None, "[1, inf)")

    def run(self, out_dir: str | Path, *, resume: bool | str = False, progress: bool = True) -> RecipeResult:
        import torch

        from backends.seed import seed_everything, set_deterministic
        from medical.datasets import load_segmentation
        from medical.tasks import Segmentation3D
        from zoo.hub import load
        from zoo.train import Trainer

        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        seed_everything(self.seed)
        set_deterministic(self.train.deterministic)
        splits = load_segmentation(self.data)
        model = load(self.model, pretrained=self.pretrained, num_classes=len(splits.labels), device=self.train.device)
        _start_fresh_card(model, self.model if self.pretrained else None)
        model.card.labels = list(splits.labels)
        model.card.preprocessing = self.preprocessing()
        model.card.input = {"shape": [1, *self.patch_size], "dtype": "float32", "layout": "[channels, slice, row, column]"}
        model.adapter = Segmentation3D(model.card)
        train_cases = splits.train[: self.max_train_cases]
        eval_cases = (splits.test or splits.val)[: self.max_eval_cases]
        eval_split = "test" if splits.test else "val"
        train = PatchDataset(*_model_grid(train_cases, model.card.preprocessing), patch_size=self.patch_size,
                             length=self.patches_per_epoch, foreground_fraction=self.foreground_fraction, seed=self.seed)
        val_images, val_labels = _model_grid(splits.val[: self.max_eval_cases], model.card.preprocessing)
        val = PatchDataset(val_images, val_labels, patch_size=self.patch_size, length=self.val_patches_per_case * len(val_images),
                           foreground_fraction=self.foreground_fraction, seed=self.seed + 10_000)
        trainer = Trainer(
            model,
            train,
            val,
            config=self.train_config(progress),
            out_dir=out_dir,
            loss_fn=DiceCELoss(),
            metrics_fn=lambda logits, targets: patch_dice(logits, targets, splits.labels),
            provenance={**self.provenance(splits.fingerprint), "data_card": dict(splits.card)},
        )
        result = trainer.fit(resume=resume)
        # Patch Dice (what training monitored) is named apart from the end-to-end Dice below.
        metrics = [{**m, "name": "patch_dice"} for m in card_metrics(
            {k: v for k, v in result.best_metrics.items() if k == "val_dice"}, "val", self.data)]
        scores = evaluate_segmentation(model, eval_cases, splits.labels)
        metrics += [{"name": name, "value": round(value, 6), "dataset": self.data, "split": eval_split,
                     "cases": len(eval_cases), "measured": "end to end on each volume's own grid"}
                    for name, value in scores.items()]
        model.card.metrics = metrics
        model.save(out_dir)
        return RecipeResult(Path(out_dir), metrics)

    def preprocessing(self) -> dict[str, Any]:
        """What the card records so inference prepares volumes exactly as training did."""
        return {"orientation": "canonical: axes (slice, row, column) towards (+S, +P, +L)",
                "spacing": [float(s) for s in self.spacing], "intensity": "window",
                "window": [float(w) for w in self.window], "patch_size": [int(p) for p in self.patch_size],
                "overlap": float(self.overlap)}


def _start_fresh_card(model, started_from: str | None) -> None:
    """Drop the metrics and provenance a loaded card carries: they describe the run that made it, not this one."""
    model.card.metrics = []
    model.card.provenance = {"finetune_from": started_from} if started_from else {}


def _model_grid(cases: Sequence, preprocessing: dict) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Every case's image and label map on the model grid, as arrays."""
    from medical.tasks import model_grid_image, model_grid_labels

    images, labels = [], []
    for case in cases:
        image, label = case.load()
        images.append(model_grid_image(image, preprocessing).array)
        labels.append(model_grid_labels(label, preprocessing).array)
    return images, labels


class PatchDataset:
    """Random patches of volumes: item ``i`` is drawn from volume ``i % len(volumes)`` by a generator seeded with ``(seed, i)``.

    A ``foreground_fraction`` of items are centred on a voxel of one foreground
    class (picked uniformly among those present), the rest anywhere; outside the
    volume the image is padded with -1 (air after normalisation) and labels with 0.
    Deterministic, so the Trainer's exact resume holds.
    """

    def __init__(self, images: list[np.ndarray], labels: list[np.ndarray], *, patch_size, length: int,
                 foreground_fraction: float = 0.67, seed: int = 0):
        from zoo.errors import InputError

        if not images:
            raise InputError("expected at least one volume to draw patches from, got none")
        self.images, self.labels = images, labels
        self.patch_size = np.asarray(patch_size, dtype=int)
        self.length, self.foreground_fraction, self.seed = length, foreground_fraction, seed
        self.classes = [np.unique(label) for label in labels]

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        import torch

        volume = index % len(self.images)
        rng = np.random.default_rng([self.seed, index])
        image, labels = self.images[volume], self.labels[volume]
        foreground = [c for c in self.classes[volume] if c != 0]
        if foreground and rng.random() < self.foreground_fraction:
            voxels = np.argwhere(labels == rng.choice(foreground))
            centre = voxels[rng.integers(len(voxels))]
        else:
            centre = np.array([rng.integers(0, s) for s in image.shape])
        start = centre - self.patch_size // 2
        return (torch.from_numpy(_crop(image, start, self.patch_size, -1.0))[None],
                torch.from_numpy(_crop(labels, start, self.patch_size, 0).astype(np.int64)))


def _crop(array: np.ndarray, start: np.ndarray, size: np.ndarray, fill) -> np.ndarray:
    out = np.full(tuple(size), fill, dtype=array.dtype)
    lo, hi = np.maximum(start, 0), np.minimum(start + size, array.shape)
    if np.all(hi > lo):
        out[tuple(slice(a - s, b - s) for a, b, s in zip(lo, hi, start))] = array[tuple(slice(a, b) for a, b in zip(lo, hi))]
    return out


class DiceCELoss:
    """Cross-entropy plus (1 − soft Dice) averaged over the foreground classes, Dice summed over the batch."""

    def __call__(self, logits, targets):
        import torch.nn.functional as F

        probabilities = logits.float().softmax(dim=1)
        one_hot = F.one_hot(targets, logits.shape[1]).movedim(-1, 1).float()
        dims = (0, *range(2, logits.ndim))
        intersection = (probabilities * one_hot).sum(dims)
        total = probabilities.sum(dims) + one_hot.sum(dims)
        soft_dice = (2 * intersection + 1e-5) / (total + 1e-5)
        return F.cross_entropy(logits.float(), targets) + 1 - soft_dice[1:].mean()


def patch_dice(logits, targets, labels: Sequence[str]) -> dict[str, float]:
    """Dice of the arg-max over all patches together: ``dice`` (foreground mean) and ``dice_NAME``."""
    from medical.metrics import dice

    prediction = logits.argmax(dim=1).cpu().numpy()
    target = targets.cpu().numpy()
    scores = {f"dice_{name}": dice(prediction, target, i) for i, name in enumerate(labels) if i > 0}
    return {"dice": float(np.mean(list(scores.values()))), **scores}


def evaluate_segmentation(model, cases: Sequence, labels: Sequence[str]) -> dict[str, float]:
    """Mean Dice and HD95 (overall and per class) of ``model.predict`` over the cases, on each volume's own grid."""
    from medical.metrics import segmentation_scores

    per_case = []
    for case in cases:
        image, target = case.load()
        prediction = model.predict(image)
        per_case.append(segmentation_scores(prediction.array, target.array, list(labels), spacing=image.spacing))
    return {name: float(np.mean([scores[name] for scores in per_case])) for name in per_case[0]}


@dataclass
class Classification2DRecipe(TrainerRecipe):
    """Train a 2-D classifier on grey images: a MedMNIST ``.npz`` (or flag, e.g. ``pneumoniamnist``, downloaded
    and MD5-checked if missing) or a CSV of DICOM ``path,label[,split]``.

    ``model`` is a registered ``classification-2d`` model (``medical/classifier2d.resnet18``)
    or a saved model directory; ``backbone`` swaps in any timm architecture.
    ``pretrained`` starts from timm's ImageNet weights (fetched through the Hugging
    Face Hub cache) with the RGB stem summed into one grey channel. Images are
    scaled to [0, 1] (by the data's fixed range, else per-image percentiles),
    resized to ``image_size`` and normalised to [-1, 1]. Reports accuracy and
    one-vs-rest AUC on val (and test when the data has one).
    """

    name: ClassVar[str] = "classification-2d"
    train_defaults: ClassVar[Mapping[str, Any]] = {
        "batch_size": 128, "weight_decay": 1e-4, "deterministic": True, "monitor": "val_auc", "monitor_mode": "max",
    }

    model: str = "medical/classifier2d.resnet18"
    data: str = ""
    backbone: str | None = None
    pretrained: bool = False
    image_size: int = bounded(28, "[1, inf)")
    max_train_images: int | None = bounded(None, "[1, inf)")
    val_fraction: float = bounded(0.2, "(0, 1)")  # the best epoch is picked on val
    num_threads: int | None = bounded(None, "[1, inf)")

    def run(self, out_dir: str | Path, *, resume: bool | str = False, progress: bool = True) -> RecipeResult:
        import torch

        from backends.seed import seed_everything, set_deterministic
        from medical.datasets import ImageDataset, load_classification
        from medical.tasks import ImageClassification2D
        from zoo.errors import InputError
        from zoo.hub import load
        from zoo.train import Trainer

        if not self.data:
            raise InputError("classification-2d needs data: a MedMNIST .npz or a CSV of DICOM path,label rows (--data)")
        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        seed_everything(self.seed)
        set_deterministic(self.train.deterministic)
        splits = load_classification(self.data, **({"val_fraction": self.val_fraction} if self.data.endswith(".csv") else {}))
        from_saved = Path(self.model).is_dir()  # a model this recipe wrote: continue from its weights
        model = load(self.model, pretrained=from_saved, num_classes=len(splits.classes), device=self.train.device)
        _start_fresh_card(model, self.model if from_saved else None)
        if self.backbone or self.pretrained:
            from medical.models.classifier2d import classifier2d
            from zoo.cache import hf_offline

            model.card.arch_args["backbone"] = self.backbone or model.card.arch_args["backbone"]
            try:
                with hf_offline():  # timm fetches the backbone through huggingface_hub
                    net = classifier2d(**model.card.arch_args, pretrained=self.pretrained)
                model.net = net.to(model.device)
            except (OSError, RuntimeError) as exc:  # huggingface_hub's offline and missing-file errors are OSErrors
                raise InputError(f"could not get timm's pretrained weights for {model.card.arch_args['backbone']!r} "
                                 f"({type(exc).__name__}: {exc}); fetch them while online, or train from scratch "
                                 "(pretrained=false, --scratch)") from None
        model.card.labels = list(splits.classes)
        model.card.preprocessing = {"size": [self.image_size] * 2, "mean": 0.5, "std": 0.5,
                                    "array_range": list(splits.value_range) if splits.value_range else None}
        model.card.input = {"shape": [1, self.image_size, self.image_size], "dtype": "float32"}
        model.adapter = ImageClassification2D(model.card)
        train = splits.train
        if self.max_train_images is not None and len(train) > self.max_train_images:
            keep = np.random.default_rng(self.seed).choice(len(train), self.max_train_images, replace=False)
            train = ImageDataset([train.images[i] for i in keep], train.labels[keep])
        transform = model.transform
        trainer = Trainer(
            model,
            train.with_transform(transform),
            splits.val.with_transform(transform),
            config=self.train_config(progress),
            out_dir=out_dir,
            loss_fn=torch.nn.CrossEntropyLoss(),
            metrics_fn=classification_scores,
            provenance=self.provenance(splits.fingerprint),
        )
        test = splits.test.with_transform(transform) if splits.test is not None else None
        model.card.metrics = metrics = self.fit_and_score(trainer, test, resume)
        model.save(out_dir)
        return RecipeResult(Path(out_dir), metrics)


def classification_scores(logits, targets) -> dict[str, float]:
    """Accuracy and AUC (binary, or macro one-vs-rest) from logits, as MedMNIST reports them."""
    from sklearn.metrics import roc_auc_score

    probabilities = logits.float().softmax(dim=-1).cpu().numpy()
    target = targets.cpu().numpy()
    accuracy = float((probabilities.argmax(axis=1) == target).mean())
    present = np.unique(target)
    if len(present) < 2:
        auc = float("nan")
    elif probabilities.shape[1] == 2:
        auc = float(roc_auc_score(target, probabilities[:, 1]))
    else:
        auc = float(np.mean([roc_auc_score(target == c, probabilities[:, c]) for c in present]))
    return {"accuracy": accuracy, "auc": auc}
