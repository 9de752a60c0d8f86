"""The ``object-detection`` and ``semantic-segmentation`` recipes on the shared Trainer.

Each builds its network from a registered architecture for the data's classes and, with
``pretrained``, copies the ImageNet weights of ``model`` (``vision/efficientnet_lite0.in1k``)
into its feature extractor; the heads start fresh. A ``model`` of the recipe's own task (a
folder it wrote) is trained further instead. Data is a dataset id
(``vision/fashion_composite``) or a folder the readers of :mod:`vision.detection_data` /
:mod:`vision.segmentation_data` take (COCO, VOC, YOLO, mask folders). Training augments
boxes and masks through ``torchvision.transforms.v2`` (``augment=False``: none).

The detector computes its own losses in train mode (torchvision's API), so the Trainer's
loss is the sum of its loss dict; it is scored by COCO mAP (``val_map50`` picks the best
epoch). The segmenter is trained with cross-entropy (pixels of value 255 ignored) and
scored by mIoU and pixel accuracy.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, Mapping

from zoo.recipes import RecipeResult, TrainerRecipe, bounded

IGNORE_INDEX = 255  # the mask value no loss or score counts (vision.segmentation_data)
DENSE_TRAIN_DEFAULTS = {"batch_size": 16, "weight_decay": 1e-4, "precision": "auto", "deterministic": True,
                        "monitor_mode": "max"}  # both monitor a score (mAP50, mIoU): higher is better


@dataclass
class DenseRecipe(TrainerRecipe):
    """What the two recipes share: the network from ``architecture`` on ``model``'s weights, the data."""

    architecture: ClassVar[str]
    task: ClassVar[str]

    # The ImageNet classifier whose features the network is built on, or a network of this recipe's task
    # (an id or a folder it wrote) to train further on data with the same classes.
    model: str = "vision/efficientnet_lite0.in1k"
    pretrained: bool = True  # False: the backbone starts from random init too (the control arm)
    data: str = "vision/fashion_composite"
    image_size: int = bounded(320, "[32, inf)")
    augment: bool = True
    val_fraction: float = bounded(0.2, "(0, 1)")  # folders without a val split: this share of train

    def build(self, classes: list[str], arch_args: dict[str, Any], preprocessing: dict[str, Any]):
        """The network for ``classes`` as a ``zoo.Model``: ``model`` itself when it is one of this task (its
        classes must be the data's), else a fresh one whose feature extractor gets ``model``'s weights
        when ``pretrained``."""
        from zoo.card import ModelCard
        from zoo.errors import InputError
        from zoo.hub import build, info, load

        if info(self.model).task == self.task:
            model = load(self.model)
            if list(model.card.labels or []) != list(classes):
                raise InputError(f"{self.model} detects/segments {model.card.labels}, the data {self.data} has "
                                 f"{list(classes)}; train from the backbone (model=vision/efficientnet_lite0.in1k) "
                                 "for other classes")
            return model
        card = ModelCard(
            id=f"vision/{self.architecture}.custom", domain="vision", task=self.task, architecture=self.architecture,
            arch_args={"num_classes": len(classes), **arch_args}, labels=list(classes), preprocessing=preprocessing,
            description=f"{self.architecture} trained by the {self.name} recipe on {self.data}",
            license="Apache-2.0")
        model = build(card)
        if self.pretrained:
            self.load_backbone(model.net)
        return model

    def load_backbone(self, net) -> None:
        from vision.models.efficientnet import load_classifier_weights
        from zoo.hub import load

        load_classifier_weights(features_of(net), load(self.model).net.state_dict())

    def fit(self, model, splits, train_transform, val_transform, out_dir, resume, progress, **trainer_options):
        """Train ``model`` on ``splits`` with the shared Trainer, score it, save it into ``out_dir``."""
        from zoo.train import Trainer

        trainer = Trainer(model, splits.train.with_transform(train_transform),
                          splits.val.with_transform(val_transform), config=self.train_config(progress),
                          out_dir=out_dir, provenance=self.provenance(splits.fingerprint), **trainer_options)
        test = splits.test.with_transform(val_transform) if splits.test is not None else None
        model.card.metrics = metrics = self.fit_and_score(trainer, test, resume)
        if trainer.env.is_main:  # under torchrun every rank gets here; one writes
            model.save(out_dir)
        return RecipeResult(Path(out_dir), metrics)


def features_of(net):
    """The timm feature extractor inside one of the dense networks (FCOS's FPN body or the segmenter's)."""
    backbone = net.backbone
    return getattr(backbone, "body", backbone)


@dataclass
class ObjectDetectionRecipe(DenseRecipe):
    """Train a detector (FCOS + FPN on EfficientNet-Lite0) on boxes: a dataset id or a COCO/VOC/YOLO folder.

    Pictures are resized inside the network to ``image_size`` (shorter side); training crops them at
    random to ``image_size`` squares. ``score_thresh`` is the lowest score a prediction keeps.
    """

    name: ClassVar[str] = "object-detection"
    task: ClassVar[str] = "object-detection"
    architecture: ClassVar[str] = "fcos_efficientnet_lite0"
    train_defaults: ClassVar[Mapping[str, Any]] = {**DENSE_TRAIN_DEFAULTS, "lr": 1e-3, "monitor": "val_map50"}

    score_thresh: float = bounded(0.2, "[0, 1)")

    def run(self, out_dir: str | Path, *, resume: bool | str = False, progress: bool = True) -> RecipeResult:
        from backends.seed import seed_everything, set_deterministic
        from vision.detection_data import detection_train_transform, load_detection
        from vision.upstream_dense import detector_preprocessing
        from zoo.metrics import detection_map

        seed_everything(self.seed)
        set_deterministic(self.train.deterministic)
        splits = load_detection(self.data, val_fraction=self.val_fraction, seed=self.seed)
        model = self.build(splits.classes, {"image_size": self.image_size, "score_thresh": self.score_thresh}, {})
        model.card.preprocessing, model.card.input = detector_preprocessing(model.net)
        train_transform = detection_train_transform(self.image_size) if self.augment else None
        return self.fit(model, splits, train_transform, None, out_dir, resume, progress,
                        loss_fn=detector_loss, metrics_fn=detection_map, collate_fn=detector_batch)


def detector_batch(batch) -> tuple[dict, list]:
    """A batch for a torchvision-style detector: ``forward(images=..., targets=...)`` (train mode needs the
    targets; eval mode ignores them), and the targets again for the metrics."""
    from vision.detection_data import collate_detection

    images, targets = collate_detection(batch)
    return {"images": images, "targets": targets}, targets


def detector_loss(outputs, targets):
    """The sum of a detector's train-mode loss dict; None for its eval-mode detections (no loss there)."""
    if isinstance(outputs, Mapping):
        return sum(outputs.values())
    return None


@dataclass
class SemanticSegmentationRecipe(DenseRecipe):
    """Train a segmenter (LR-ASPP or a semantic FPN on EfficientNet-Lite0) on masks: a dataset id, a mask
    folder or COCO masks.

    It trains and predicts at ``image_size`` × ``image_size`` (predictions are scaled back to each
    picture's size). ``decoder`` picks the decoder (``DECODERS``); ``fine_channels`` sizes its stride-4 and
    stride-2 refinements (0: none).
    """

    name: ClassVar[str] = "semantic-segmentation"
    task: ClassVar[str] = "semantic-segmentation"
    train_defaults: ClassVar[Mapping[str, Any]] = {**DENSE_TRAIN_DEFAULTS, "lr": 3e-3, "monitor": "val_miou"}
    DECODERS: ClassVar[Mapping[str, str]] = {"lraspp": "lraspp_efficientnet_lite0", "fpn": "fpn_efficientnet_lite0"}

    decoder: str = "lraspp"
    fine_channels: int = bounded(32, "[0, inf)")

    def __post_init__(self):
        super().__post_init__()
        if self.decoder not in self.DECODERS:
            from zoo.errors import InputError

            raise InputError(f"decoder must be one of {sorted(self.DECODERS)}, got {self.decoder!r}")

    @property
    def architecture(self) -> str:
        return self.DECODERS[self.decoder]

    def run(self, out_dir: str | Path, *, resume: bool | str = False, progress: bool = True) -> RecipeResult:
        import torch

        from backends.seed import seed_everything, set_deterministic
        from vision.models.efficientnet import LITE_MEAN, LITE_STD
        from vision.segmentation_data import load_segmentation, segmentation_train_transform
        from zoo.metrics import segmentation_scores

        seed_everything(self.seed)
        set_deterministic(self.train.deterministic)
        splits = load_segmentation(self.data, val_fraction=self.val_fraction, seed=self.seed)
        size = [self.image_size, self.image_size]
        preprocessing = {"channels": 3, "array_range": [0, 255], "size": size, "mean": LITE_MEAN, "std": LITE_STD,
                         "interpolation": "bilinear"}
        model = self.build(splits.classes, {"fine_channels": self.fine_channels}, preprocessing)
        model.card.input = {"shape": [3, *size], "dtype": "float32"}
        resize = _resize(size)
        train_transform = SegmentationInputs(segmentation_train_transform(size) if self.augment else resize)
        return self.fit(model, splits, train_transform, SegmentationInputs(resize), out_dir, resume, progress,
                        loss_fn=torch.nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX),
                        kept_outputs_fn=class_masks, metrics_fn=partial(segmentation_scores,
                                                                         num_classes=len(splits.classes),
                                                                         ignore_index=IGNORE_INDEX))


def _resize(size: list[int]):
    from torchvision.transforms import v2

    return v2.Resize(size, antialias=True)  # masks follow with nearest neighbours


class SegmentationInputs:
    """``(image, mask)`` → the network's normalised input and the mask as int64 class indices, after
    ``transform`` (a ``torchvision.transforms.v2`` pipeline that moves both)."""

    def __init__(self, transform):
        self.transform = transform

    def __call__(self, image, mask):
        import torch
        from torchvision.transforms.v2 import functional as F

        from vision.models.efficientnet import LITE_MEAN, LITE_STD

        image, mask = self.transform(image, mask)
        inputs = F.normalize(image.as_subclass(torch.Tensor).float(), LITE_MEAN, LITE_STD)
        return inputs, mask.as_subclass(torch.Tensor).long()


def class_masks(logits):
    """Logits ``[B, C, H, W]`` → the best class per pixel ``[B, H, W]``, as small integers (what the
    evaluation keeps of each batch: 1 byte a pixel up to 256 classes, not 4 per class)."""
    import torch

    return logits.argmax(dim=1).to(torch.uint8 if logits.shape[1] <= 256 else torch.int32)
