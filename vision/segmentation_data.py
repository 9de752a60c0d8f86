"""Segmentation masks in a folder: ``DIR/images/*`` with ``DIR/masks/<same stem>.png``; or a COCO folder's
polygons and RLE painted into class maps (:class:`CocoSegmentationDataset`).

A mask's pixel value is the class index of the pixel in its image (8-bit grey or palette PNG,
or 16-bit grey), 255 means "ignore" (borders, unlabelled pixels); ``DIR/classes.txt`` names the
classes, one a line, else they are ``class_0`` up to the largest value the masks use. Images
under ``images/train/``, ``images/val/``, ``images/test/`` (masks likewise) are those splits;
otherwise ``val_fraction`` of them is drawn at random.

An item is ``(tv_tensors.Image [3, H, W] float in [0, 1], tv_tensors.Mask [H, W] int64)``, so
``torchvision.transforms.v2`` transforms both alike (:func:`segmentation_train_transform`).
Refused with :class:`InputError` naming the files: a mask whose size differs from its image, a
mask that is not single-channel, a value that is no class (nor 255). Skipped, counted in
``skipped`` and logged: an image without a mask, a mask without an image.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from vision.datasets import ImageSplits
from vision.detection_data import (SPLIT_FOLDERS, DetectionDataset, coco, coco_files, has_split_folders, image_files,
                                   read_classes, registered_or_folder)
from zoo.data import check_fractions, fingerprint
from zoo.errors import InputError

log = logging.getLogger(__name__)

IGNORE_INDEX = 255
_MASK_MODES = ("L", "P", "I;16", "I;16L", "I;16B", "I")


class SegmentationDataset(Dataset):
    """``(image, mask)`` pairs of files; indexing reads both, checks them and applies ``transform(image, mask)``."""

    def __init__(self, pairs: Sequence[tuple[Path, Path]], classes: Sequence[str], transform: Callable | None = None):
        self.pairs, self.classes, self.transform = list(pairs), list(classes), transform

    def __len__(self) -> int:
        return len(self.pairs)

    def raw(self, index: int) -> tuple[Any, Any]:
        from torchvision import tv_tensors

        from vision.images import read_image
        from vision.transforms import picture_unit

        image_path, mask_path = self.pairs[index]
        image = tv_tensors.Image(torch.from_numpy(picture_unit(read_image(image_path))))
        mask = read_mask(mask_path, len(self.classes))
        if mask.shape != tuple(image.shape[-2:]):
            raise InputError(f"{mask_path}: the mask is {mask.shape[1]}×{mask.shape[0]}, its image {image_path} is "
                             f"{image.shape[-1]}×{image.shape[-2]}; expected the same size")
        return image, tv_tensors.Mask(torch.from_numpy(mask))

    def __getitem__(self, index: int):
        image, mask = self.raw(index)
        return self.transform(image, mask) if self.transform else (image, mask)

    def with_transform(self, transform: Callable | None) -> "SegmentationDataset":
        return SegmentationDataset(self.pairs, self.classes, transform)


@dataclass
class SegmentationSplits(ImageSplits):
    """Classification's splits record (train/val/test, classes, fingerprint, source, ``skipped``: files
    without their pair) over :class:`SegmentationDataset` splits, and the mask value that means "ignore"."""

    ignore_index: int = IGNORE_INDEX


class CocoSegmentationDataset(Dataset):
    """A COCO detection dataset's object masks (polygons, RLE) painted into one class map per image:
    0 is background, each object's pixels its label, later annotations over earlier ones."""

    def __init__(self, objects: DetectionDataset, transform: Callable | None = None):
        self.objects, self.classes, self.transform = objects, objects.classes, transform

    def __len__(self) -> int:
        return len(self.objects)

    def raw(self, index: int) -> tuple[Any, Any]:
        from torchvision import tv_tensors

        image, target = self.objects.raw(index)
        mask = torch.zeros(image.shape[-2:], dtype=torch.int64)
        for object_mask, label in zip(target["masks"], target["labels"]):
            mask[object_mask.bool()] = label
        return image, tv_tensors.Mask(mask)

    def __getitem__(self, index: int):
        image, mask = self.raw(index)
        return self.transform(image, mask) if self.transform else (image, mask)

    def with_transform(self, transform: Callable | None) -> "CocoSegmentationDataset":
        return CocoSegmentationDataset(self.objects, transform)


def read_mask(path: Path, n_classes: int | None = None) -> np.ndarray:
    """A mask PNG as an H×W int64 array of class indices (255: ignore), checked before and after decoding."""
    from PIL import Image

    from vision.images import FORMATS, PIL_DECODING_ERRORS, check_image_size

    try:
        with Image.open(path, formats=FORMATS) as image:
            check_image_size(*image.size, source=path)
            if image.mode not in _MASK_MODES:
                raise InputError(f"{path}: expected a single-channel mask (grey or palette PNG whose values are "
                                 f"class indices), got mode {image.mode}")
            mask = np.asarray(image).astype(np.int64)
    except InputError:
        raise
    except (PIL_DECODING_ERRORS + (Image.DecompressionBombError,)) as exc:
        raise InputError(f"could not read the mask {path}: {type(exc).__name__}: {exc}") from None
    if n_classes is not None:
        bad = np.unique(mask[(mask != IGNORE_INDEX) & ((mask < 0) | (mask >= n_classes))])
        if bad.size:
            raise InputError(f"{path}: values {bad[:5].tolist()} are no class index (0 to {n_classes - 1}, "
                             f"or {IGNORE_INDEX} to ignore)")
    return mask


def mask_folder(root: str | Path, val_fraction: float = 0.2, seed: int = 0) -> SegmentationSplits:
    """``DIR/images/*`` + ``DIR/masks/*.png`` (same stem, same sub-folder), optional ``DIR/classes.txt``;
    or ``DIR/train``, ``DIR/val`` [, ``DIR/test``] folders that are each such a folder (their splits)."""
    root = Path(root)
    if not (root / "images").is_dir() and has_split_folders(root, "masks"):
        return _split_mask_folders(root)
    named, classes, skipped = _mask_pairs(root)
    named = _named_splits(named, root, val_fraction, seed)
    return _mask_splits(root, named, classes, skipped)


def _split_mask_folders(root: Path) -> SegmentationSplits:
    named, classes, skipped = {}, None, []
    for split in SPLIT_FOLDERS:
        if (root / split).is_dir():
            by_split, found, left_out = _mask_pairs(root / split)
            if classes is not None and found != classes:
                raise InputError(f"{root / split}: its classes differ from the other split's: {found} vs {classes}")
            named[split], classes, skipped = sum(by_split.values(), []), found, skipped + left_out
    return _mask_splits(root, named, classes, skipped)


def _mask_splits(root: Path, named: dict[str, list], classes: list[str], skipped: list) -> SegmentationSplits:
    parts = [f"{name}:{i.relative_to(root)}:{m.relative_to(root)}" for name in sorted(named) for i, m in named[name]]
    make = lambda name: SegmentationDataset(named[name], classes) if name in named else None  # noqa: E731
    return SegmentationSplits(train=make("train"), val=make("val"), test=make("test"), classes=classes,
                              fingerprint=fingerprint(*parts, *classes), source=str(root), skipped=skipped)


def _mask_pairs(root: Path) -> tuple[dict[str, list], list[str], list]:
    """One mask folder's (image, mask) pairs by sub-folder, its classes and the files left without a pair."""
    if not (root / "images").is_dir() or not (root / "masks").is_dir():
        raise InputError(f"{root}: expected images/ and masks/ folders (a mask PNG per image, same name)")
    masks = {p.relative_to(root / "masks").with_suffix(""): p for p in image_files(root / "masks")}
    images = {p.relative_to(root / "images").with_suffix(""): p for p in image_files(root / "images")}
    skipped = [(str(images[k]), "no mask") for k in sorted(set(images) - set(masks))]
    skipped += [(str(masks[k]), "no image") for k in sorted(set(masks) - set(images))]
    if skipped:
        log.warning("%s: skipped %d files without their pair; first: %s (%s)", root, len(skipped), *skipped[0])
    keys = sorted(set(images) & set(masks))
    if not keys:
        raise InputError(f"{root}: no image in images/ has a mask of the same name in masks/")
    classes = read_classes(root / "classes.txt") or _classes_from_masks([masks[k] for k in keys])
    by_split: dict[str, list] = {}
    for key in keys:
        split = key.parts[0] if len(key.parts) > 1 else "all"
        by_split.setdefault(split, []).append((images[key], masks[key]))
    return by_split, classes, skipped


def _classes_from_masks(paths: Sequence[Path]) -> list[str]:
    """``class_0`` up to the largest value any mask uses (255 aside), when no classes.txt names them."""
    largest = max(int(np.max(mask[mask != IGNORE_INDEX], initial=0)) for mask in map(read_mask, paths))
    return [f"class_{i}" for i in range(largest + 1)]


def _named_splits(by_split: dict[str, list], root: Path, val_fraction: float, seed: int) -> dict[str, list]:
    if set(by_split) <= {"train", "val", "test"} and {"train", "val"} <= set(by_split):
        return by_split
    pairs = [pair for name in sorted(by_split) for pair in by_split[name]]
    check_fractions({"val": val_fraction})
    n_val = int(round(len(pairs) * val_fraction))
    if len(pairs) < 2 or n_val in (0, len(pairs)):
        raise InputError(f"{root}: {len(pairs)} images cannot be split into train and val with val_fraction={val_fraction}")
    order = np.random.default_rng(seed).permutation(len(pairs))
    return {"train": [pairs[i] for i in sorted(order[n_val:])], "val": [pairs[i] for i in sorted(order[:n_val])]}


def segmentation_train_transform(size: int | tuple[int, int], scale: tuple[float, float] = (0.3, 1.0)):
    """Mask-aware training augmentation (``torchvision.transforms.v2``): photometric distortion, a random
    resized crop to ``size`` (the mask resized with nearest neighbours), a horizontal flip."""
    from torchvision.transforms import v2

    return v2.Compose([
        v2.RandomPhotometricDistort(p=0.5),
        v2.RandomResizedCrop(size, scale=scale, antialias=True),
        v2.RandomHorizontalFlip(p=0.5),
    ])


def load_segmentation(data: str | Path, val_fraction: float = 0.2, seed: int = 0) -> SegmentationSplits:
    """A registered ``semantic-segmentation`` dataset id, a mask folder (``images/`` + ``masks/``), or a COCO
    folder whose annotations carry polygons or RLE (:class:`CocoSegmentationDataset`)."""
    data = registered_or_folder(data, SegmentationSplits)
    if isinstance(data, SegmentationSplits):
        return data
    if coco_files(Path(data)) and not (Path(data) / "masks").is_dir():
        objects = coco(data, val_fraction, seed, masks=True)
        painted = {name: CocoSegmentationDataset(d) if d is not None else None
                   for name, d in (("train", objects.train), ("val", objects.val), ("test", objects.test))}
        return SegmentationSplits(**painted, classes=objects.classes, fingerprint=objects.fingerprint,
                                  source=objects.source, skipped=objects.skipped)
    return mask_folder(data, val_fraction, seed)
