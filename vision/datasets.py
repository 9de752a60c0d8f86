"""The vision dataset catalog and readers for custom image data.

Every loader returns :class:`ImageSplits`: raw images with labels per split,
the class names, and a fingerprint of the exact data and split.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from zoo.errors import InputError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


class ImageDataset(Dataset):
    """Raw images (arrays, or paths opened on access) with integer labels.

    Indexing yields ``(transform(image), label)``; :meth:`raw` gives the untransformed image.
    """

    def __init__(self, images: Sequence[Any], labels: np.ndarray, transform: Callable | None = None):
        if len(images) != len(labels):
            raise InputError(f"expected one label per image, got {len(images)} images and {len(labels)} labels")
        self.images = images
        self.labels = np.asarray(labels, dtype=np.int64)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def raw(self, index: int) -> Any:
        image = self.images[index]
        if isinstance(image, Path):
            from PIL import Image

            with Image.open(image) as opened:
                return opened.copy()
        return image

    def __getitem__(self, index: int):
        image = self.raw(index)
        return (self.transform(image) if self.transform else image), int(self.labels[index])

    def with_transform(self, transform: Callable | None) -> "ImageDataset":
        return ImageDataset(self.images, self.labels, transform)


@dataclass
class ImageSplits:
    """Train/val/test splits of one image-classification dataset."""

    train: ImageDataset
    val: ImageDataset
    test: ImageDataset | None
    classes: list[str]
    fingerprint: str
    source: str
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason) of unreadable images

    def split(self, name: str) -> ImageDataset:
        dataset = getattr(self, name, None)
        if dataset is None:
            raise InputError(f"expected a split in train/val/test that {self.source} has, got {name!r}")
        return dataset


def stratified_split(labels: np.ndarray, fractions: dict[str, float], seed: int = 0) -> dict[str, np.ndarray]:
    """Indices per split, each class divided in the same proportions; deterministic in ``seed``.

    ``fractions`` names the held-out splits (e.g. ``{"val": .15, "test": .2}``); the rest is ``train``.
    """
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], **{name: [] for name in fractions}}
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        start = 0
        for name, fraction in fractions.items():
            count = int(round(len(members) * fraction))
            parts[name].append(members[start : start + count])
            start += count
        parts["train"].append(members[start:])
    return {name: np.sort(np.concatenate(chunks)) for name, chunks in parts.items()}


def fingerprint(*parts: bytes | np.ndarray | str) -> str:
    """sha256 over the given data, labels and split indices."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            part = np.ascontiguousarray(part).tobytes()
        elif isinstance(part, str):
            part = part.encode()
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)
    return digest.hexdigest()


def digits(seed: int = 0) -> ImageSplits:
    """scikit-learn's 1,797 8×8 digits (values 0–16), split 65/15/20 stratified."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = bunch.images.astype(np.float32)
    labels = bunch.target.astype(np.int64)
    index = stratified_split(labels, {"val": 0.15, "test": 0.2}, seed=seed)
    make = lambda name: ImageDataset(images[index[name]], labels[index[name]])  # noqa: E731
    return ImageSplits(
        train=make("train"),
        val=make("val"),
        test=make("test"),
        classes=[str(d) for d in range(10)],
        fingerprint=fingerprint(images, labels, *(index[k] for k in ("train", "val", "test"))),
        source="sklearn.datasets.load_digits",
    )


def image_folder(root: str | Path, val_fraction: float = 0.2, test_fraction: float = 0.0, seed: int = 0) -> ImageSplits:
    """A folder with one sub-folder of images per class; unreadable images are skipped and reported."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"expected a folder of class sub-folders at {root}, found no folder")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise InputError(f"expected at least 2 class sub-folders in {root}, found {classes}")
    paths, labels, skipped = [], [], []
    for label, name in enumerate(classes):
        for path in sorted((root / name).rglob("*")):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            problem = _unreadable(path)
            if problem:
                skipped.append((str(path), problem))
            else:
                paths.append(path)
                labels.append(label)
    for path, problem in skipped:
        log.warning("skipping unreadable image %s: %s", path, problem)
    if not paths:
        raise InputError(f"expected images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {root}, found none readable")
    labels = np.asarray(labels, dtype=np.int64)
    held_out = {"val": val_fraction, **({"test": test_fraction} if test_fraction else {})}
    index = stratified_split(labels, held_out, seed=seed)
    make = lambda name: ImageDataset([paths[i] for i in index[name]], labels[index[name]])  # noqa: E731
    file_hashes = "".join(hashlib.sha256(p.read_bytes()).hexdigest() + str(p.relative_to(root)) for p in paths)
    return ImageSplits(
        train=make("train"),
        val=make("val"),
        test=make("test") if test_fraction else None,
        classes=classes,
        fingerprint=fingerprint(file_hashes, labels, *index.values()),
        source=str(root.resolve()),
        skipped=skipped,
    )


def _unreadable(path: Path) -> str | None:
    """Why PIL cannot decode ``path``, or None when it can."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
    except Exception as exc:  # PIL raises many types for corrupt files
        return f"{type(exc).__name__}: {exc}"
    return None


def load_splits(data: str | Path, val_fraction: float = 0.2) -> ImageSplits:
    """A registered dataset id (``vision/digits``, fixed splits) or an image folder split ``val_fraction``."""
    from zoo.registry import get_registry, resolve_ref

    registry = get_registry()
    if str(data) not in registry.datasets and Path(data).is_dir():
        return image_folder(data, val_fraction=val_fraction)
    return resolve_ref(registry.dataset(str(data)).loader)()


def to_tensor_batch(dataset: ImageDataset, transform: Callable) -> tuple[torch.Tensor, torch.Tensor]:
    """Transform a whole (small) split into one input tensor and a label tensor."""
    inputs = torch.stack([transform(dataset.raw(i)) for i in range(len(dataset))])
    return inputs, torch.from_numpy(dataset.labels)
