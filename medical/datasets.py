"""The medical dataset catalog and readers for your own data.

* ``medical/ct-phantom`` — synthetic CT series (real DICOM files) with label maps,
  generated deterministically on first use into ``$ZOO_DATA/ct-phantom-v1`` (or
  the zoo cache);
* :func:`decathlon` — image/label NIfTI pairs in the Medical Segmentation Decathlon layout;
* :func:`dicom_csv` — DICOM images (files or series folders) with a CSV of labels, for classification;
* :func:`medmnist` — a MedMNIST v2 ``.npz`` file (``train_images``, ``train_labels``, ``val_*``, ``test_*``);
  :func:`fetch_medmnist` finds or downloads (MD5-checked) the official files.
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import shutil
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from medical.io.volume import Volume
from zoo.data import fingerprint, stratified_split
from zoo.errors import InputError
from zoo.hashing import sha256_file

log = logging.getLogger(__name__)

PHANTOM_VERSION = "ct-phantom-v1"
PHANTOM_SPLITS = {"train": range(0, 24), "val": range(100, 104), "test": range(200, 206)}
MASK_FILE = "mask.nii.gz"
SERIES_DIR = "series"


@dataclass(frozen=True)
class SegmentationCase:
    """One image and its label map: a DICOM series folder (or a NIfTI file) and a NIfTI label file."""

    image: Path
    label: Path
    name: str = ""

    def load(self) -> tuple[Volume, Volume]:
        """(image, label map), checked to lie on the same grid."""
        from medical.io import read_volume
        from medical.io.nifti import read_nifti

        image = read_volume(self.image)
        labels = read_nifti(self.label, dtype=np.uint8)
        if labels.shape != image.shape:
            raise InputError(f"label map {self.label} has shape {labels.shape}, its image {self.image} has {image.shape}; "
                             "every label map must match its image voxel for voxel")
        if not labels.same_grid(image, atol=1e-2):
            raise InputError(f"label map {self.label} is not on the grid of its image {self.image} (their affines differ: "
                             f"{np.round(labels.affine, 3).tolist()} vs {np.round(image.affine, 3).tolist()})")
        return image, image.with_array(labels.array)


@dataclass
class SegmentationSplits:
    """Train/val/test cases of one segmentation dataset, the label names and a fingerprint."""

    train: list[SegmentationCase]
    val: list[SegmentationCase]
    test: list[SegmentationCase]
    labels: list[str]
    fingerprint: str
    source: str
    card: dict[str, Any] = field(default_factory=dict)


# -- the CT phantom --------------------------------------------------------------------
def phantom_root() -> Path:
    """Where phantom cases are written: ``$ZOO_DATA/ct-phantom-v1``, else ``$ZOO_HOME/datasets/ct-phantom-v1``."""
    from zoo.cache import zoo_home

    base = Path(os.environ["ZOO_DATA"]).expanduser() if os.environ.get("ZOO_DATA") else zoo_home() / "datasets"
    return base / PHANTOM_VERSION


@dataclass(frozen=True)
class PhantomCase(SegmentationCase):
    """A phantom case, written to disk on first ``load`` (or ``materialize``)."""

    seed: int = 0

    def materialize(self) -> "PhantomCase":
        phantom_case(self.seed, self.image.parent.parent)
        return self

    def load(self) -> tuple[Volume, Volume]:
        return SegmentationCase.load(self.materialize())


def phantom_case(seed: int, root: Path | None = None) -> SegmentationCase:
    """Phantom ``seed`` on disk (written atomically on first use): a CT series folder and its label map."""
    import filelock

    from medical.io.dicom_writer import write_ct_series
    from medical.io.nifti import write_nifti
    from medical.phantom import ct_phantom
    from zoo.cache import zoo_home

    root = root or phantom_root()
    folder = root / f"case_{seed:04d}"
    case = SegmentationCase(folder / SERIES_DIR, folder / MASK_FILE, folder.name)
    if case.label.is_file():
        return case
    locks = zoo_home() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(locks / f"{PHANTOM_VERSION}.{seed}.lock")):
        if case.label.is_file():
            return case
        tmp = root / f".{folder.name}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            ct, labels = ct_phantom(seed)
            write_ct_series(ct, tmp / SERIES_DIR, uid_seed=f"{PHANTOM_VERSION}/{seed}", patient_id=f"PHANTOM{seed:04d}",
                            series_description=f"synthetic CT phantom {seed}")
            write_nifti(labels, tmp / MASK_FILE)
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return case


def ct_phantom(n_train: int | None = None, n_val: int | None = None, n_test: int | None = None,
               root: str | Path | None = None) -> SegmentationSplits:
    """The synthetic CT phantoms: 24 train, 4 val and 6 test cases by default (fewer if asked; seeds are fixed per split).

    A case is generated and written (a DICOM series and a NIfTI label map) the first
    time it is loaded, then read from disk.
    """
    from medical.phantom import LABELS

    root = Path(root) if root is not None else phantom_root()
    counts = {"train": n_train, "val": n_val, "test": n_test}
    seeds = {name: list(PHANTOM_SPLITS[name])[: counts[name] if counts[name] is not None else None] for name in PHANTOM_SPLITS}
    cases = {name: [PhantomCase(root / f"case_{seed:04d}" / SERIES_DIR, root / f"case_{seed:04d}" / MASK_FILE,
                                f"case_{seed:04d}", seed) for seed in split] for name, split in seeds.items()}
    return SegmentationSplits(
        **cases,
        labels=list(LABELS),
        fingerprint=fingerprint(PHANTOM_VERSION, *(np.asarray(s, dtype=np.int64) for s in seeds.values())),
        source=str(root),
        card={"synthetic": True},
    )


# -- Medical Segmentation Decathlon layout -----------------------------------------------
def decathlon(root: str | Path, val_fraction: float = 0.2, seed: int = 0) -> SegmentationSplits:
    """A Medical Segmentation Decathlon task folder: ``dataset.json`` plus ``imagesTr/`` and ``labelsTr/``.

    ``dataset.json``'s ``labels`` (``{"0": "background", ...}``) names the classes and
    ``training`` lists ``{"image", "label"}`` pairs (paths relative to ``root``);
    they are split into train/val deterministically. An image may also be a DICOM
    series folder (label maps are NIfTI on its grid). Single-modality images only.
    """
    root = Path(root)
    manifest_path = root / "dataset.json"
    if not manifest_path.is_file():
        raise InputError(f"expected a Decathlon dataset.json in {root}, found none")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        labels = manifest["labels"]
        pairs = manifest["training"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InputError(f"{manifest_path}: expected JSON with 'labels' and 'training', got an error: {exc}") from None
    names = [labels[str(i)] for i in range(len(labels))] if all(str(i) in labels for i in range(len(labels))) else None
    if names is None:
        raise InputError(f"{manifest_path}: expected labels keyed 0..{len(labels) - 1}, got {sorted(labels)}")
    modalities = manifest.get("modality", {"0": "CT"})
    if len(modalities) != 1:
        raise InputError(f"{manifest_path}: expected a single-modality task, got modalities {modalities}")
    cases, missing = [], []
    for pair in pairs:
        image, label = root / pair["image"], root / pair["label"]
        missing += [str(p) for p in (image, label) if not p.exists()]
        cases.append(SegmentationCase(image, label, image.name.split(".")[0]))
    if missing:
        raise InputError(f"{manifest_path} lists files that do not exist: {', '.join(missing[:5])}")
    if len(cases) < 2:
        raise InputError(f"expected at least 2 training pairs in {manifest_path} to split train/val, found {len(cases)}")
    index = stratified_split(np.zeros(len(cases), dtype=np.int64), {"val": val_fraction}, seed=seed)
    if not len(index["val"]):
        index = {"train": np.arange(1, len(cases)), "val": np.arange(1)}
    hashes = "".join(_path_digest(p) for case in cases for p in (case.image, case.label))
    return SegmentationSplits(
        train=[cases[i] for i in index["train"]],
        val=[cases[i] for i in index["val"]],
        test=[],
        labels=names,
        fingerprint=fingerprint(hashes, index["train"], index["val"]),
        source=str(root.resolve()),
        card={"name": manifest.get("name", root.name), "modality": modalities["0"]},
    )


def _path_digest(path: Path) -> str:
    """sha256 of a file, or of a folder's files (names and contents) in name order."""
    if not path.is_dir():
        return sha256_file(path)
    return hashlib.sha256("".join(f"{p.relative_to(path)}:{sha256_file(p)}" for p in sorted(path.rglob("*"))
                                  if p.is_file()).encode()).hexdigest()



def load_segmentation(data: str | Path, **options: Any) -> SegmentationSplits:
    """A registered dataset id (``medical/ct-phantom``) or a Decathlon folder."""
    from zoo.registry import get_registry, resolve_ref

    registry = get_registry()
    if str(data) in registry.datasets:
        return resolve_ref(registry.dataset(str(data)).loader)(**options)
    if (Path(data) / "dataset.json").is_file():
        return decathlon(data, **options)
    raise InputError(f"expected a segmentation dataset id ({', '.join(d for d in registry.datasets if d.startswith('medical/'))}) "
                     f"or a Decathlon folder with a dataset.json, got {data}")


# -- 2-D classification ----------------------------------------------------------------
class ImageDataset:
    """Grey 2-D images (arrays) with integer labels; indexing yields ``(transform(image), label)``."""

    def __init__(self, images: Sequence[np.ndarray], labels: np.ndarray, transform=None):
        if len(images) != len(labels):
            raise InputError(f"expected one label per image, got {len(images)} images and {len(labels)} labels")
        self.images, self.labels, self.transform = images, np.asarray(labels, dtype=np.int64), transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        image = self.images[index]
        return (self.transform(image) if self.transform else image), int(self.labels[index])

    def with_transform(self, transform) -> "ImageDataset":
        return ImageDataset(self.images, self.labels, transform)


@dataclass
class ClassificationSplits:
    """Train/val/test splits of a 2-D classification dataset; ``value_range`` is the images' fixed range, if any."""

    train: ImageDataset
    val: ImageDataset
    test: ImageDataset | None
    classes: list[str]
    fingerprint: str
    source: str
    value_range: tuple[float, float] | None = None


# Class names from MedMNIST's medmnist/info.py for the grey single-label 2-D sets.
MEDMNIST_CLASSES = {
    "pneumoniamnist": ["normal", "pneumonia"],
    "breastmnist": ["malignant", "normal, benign"],
    "octmnist": ["choroidal neovascularization", "diabetic macular edema", "drusen", "normal"],
    "organamnist": ["bladder", "femur-left", "femur-right", "heart", "kidney-left", "kidney-right", "liver",
                    "lung-left", "lung-right", "pancreas", "spleen"],
}
MEDMNIST_KEYS = ("train_images", "train_labels", "val_images", "val_labels", "test_images", "test_labels")


def medmnist(path: str | Path) -> ClassificationSplits:
    """A MedMNIST v2 ``.npz`` (``{split}_images`` N×H×W uint8, ``{split}_labels`` N×1) with its official splits.

    Colour images become grey (channel mean). Class names come from the file's
    flag (its name, e.g. ``pneumoniamnist.npz`` or ``pneumoniamnist_64.npz``) when
    known; multi-label sets (ChestMNIST) are refused.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in MEDMNIST_KEYS if k not in archive.files]
            if missing:
                raise InputError(f"{path.name}: expected MedMNIST arrays {', '.join(MEDMNIST_KEYS)}, missing {', '.join(missing)}")
            arrays = {k: archive[k] for k in MEDMNIST_KEYS}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:  # a truncated or altered archive
        raise InputError(f"expected a MedMNIST .npz file at {path}: {exc}") from None
    splits, all_labels = {}, []
    for split in ("train", "val", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if labels.ndim == 2 and labels.shape[1] > 1:
            raise InputError(f"{path.name}: {labels.shape[1]} labels per image (multi-label) is not supported by classification-2d")
        if images.ndim == 4:
            images = images.mean(axis=-1)
        if images.ndim != 3 or len(images) != len(labels):
            raise InputError(f"{path.name}: expected {split}_images N×H×W and N labels, got {images.shape} and {labels.shape}")
        labels = labels.reshape(-1).astype(np.int64)
        splits[split] = (images, labels)
        all_labels.append(labels)
    flag = path.name.split(".")[0].split("_")[0]
    count = int(max(labels.max() for labels in all_labels)) + 1
    classes = MEDMNIST_CLASSES.get(flag) or [f"class_{i}" for i in range(count)]
    if count > len(classes):
        raise InputError(f"{path.name}: labels go up to {count - 1}, but {flag} has {len(classes)} classes")
    return ClassificationSplits(
        **{split: ImageDataset(list(images), labels) for split, (images, labels) in splits.items()},
        classes=list(classes),
        fingerprint=fingerprint(sha256_file(path)),
        source=str(path.resolve()),
        value_range=(0.0, 255.0),
    )


# The official MedMNIST v2 files (28×28) on Zenodo, with the MD5s medmnist/info.py pins.
MEDMNIST_URL = "https://zenodo.org/records/5208230/files/{flag}.npz?download=1"
MEDMNIST_MD5 = {
    "pneumoniamnist": "28209eda62fecd6e6a2d98b1501bb15f",
    "breastmnist": "750601b1f35ba3300ea97c75c52ff8f6",
    "octmnist": "c68d92d5b585d8d81f7112f81e2d0842",
    "organamnist": "866b832ed4eeba67bfb9edee1d5544e6",
}


def medmnist_locations() -> list[Path]:
    """Folders searched for ``{flag}.npz``: ``$ZOO_DATA/medmnist`` (when set), then ``$ZOO_HOME/datasets/medmnist``."""
    from zoo.cache import zoo_home

    data = [Path(os.environ["ZOO_DATA"]).expanduser() / "medmnist"] if os.environ.get("ZOO_DATA") else []
    return data + [zoo_home() / "datasets" / "medmnist"]


def medmnist_files() -> dict[str, Path]:
    """The known grey MedMNIST sets already on this machine (flag → path); never downloads."""
    found = {}
    for flag in MEDMNIST_CLASSES:
        path = next((folder / f"{flag}.npz" for folder in medmnist_locations() if (folder / f"{flag}.npz").is_file()), None)
        if path is not None:
            found[flag] = path
    return found


def fetch_medmnist(flag: str, progress: bool = False) -> Path:
    """``{flag}.npz`` from :func:`medmnist_locations`, else fetched from Zenodo into the first of them through the
    zoo store (MD5-pinned: the digest MedMNIST publishes)."""
    from zoo import cache
    from zoo.errors import OfflineError
    from zoo.registry import WeightFile

    if flag not in MEDMNIST_MD5:
        raise InputError(f"expected a MedMNIST flag in {sorted(MEDMNIST_MD5)}, got {flag!r}")
    existing = medmnist_files().get(flag)
    if existing is not None:
        return existing
    target = medmnist_locations()[0] / f"{flag}.npz"
    url = MEDMNIST_URL.format(flag=flag)
    wf = WeightFile(target.name, None, url, format="raw", digest=f"md5:{MEDMNIST_MD5[flag]}")
    try:
        return cache.fetch(wf, dest=target, progress=progress)
    except OfflineError:
        raise OfflineError(f"{flag}.npz is not on this machine and {cache.offline_reason()}; download {url} "
                           f"into {target.parent} (MD5 {MEDMNIST_MD5[flag]}), then retry") from None


def dicom_csv(csv_path: str | Path, val_fraction: float = 0.2, test_fraction: float = 0.0, seed: int = 0) -> ClassificationSplits:
    """DICOM images listed in a CSV with header ``path,label`` and an optional ``split`` column.

    A path (relative to the CSV's folder, or absolute) is a DICOM image file (its
    first frame) or a series folder (its middle slice along the slice normal).
    Without a split column each class is split stratified by ``val_fraction`` and
    ``test_fraction``.
    """
    from medical.io.dicom import read_series
    from medical.io.dicom_file import read_image

    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise InputError(f"expected a CSV of path,label rows at {csv_path}, found no file")
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"path", "label"} <= {k.strip().lower() for k in rows[0]}:
        raise InputError(f"expected a header row path,label[,split] and at least one row in {csv_path}")
    rows = [{k.strip().lower(): (v or "").strip() for k, v in row.items()} for row in rows]
    classes = sorted({row["label"] for row in rows})
    if len(classes) < 2:
        raise InputError(f"expected at least 2 classes in the label column of {csv_path}, found {classes}")
    images, labels, splits = [], [], []
    for line, row in enumerate(rows, start=2):
        path = Path(row["path"]) if Path(row["path"]).is_absolute() else csv_path.parent / row["path"]
        if not path.exists():
            raise InputError(f"{csv_path} line {line}: {row['path']} does not exist")
        if path.is_dir():
            volume = read_series(path)
            images.append(np.asarray(volume.array[volume.shape[0] // 2], dtype=np.float32))
        else:
            image = read_image(path)
            images.append(image[0] if image.ndim == 3 else image)
        labels.append(classes.index(row["label"]))
        splits.append(row.get("split") or None)
    labels = np.asarray(labels, dtype=np.int64)
    if all(splits):
        index = {name: np.flatnonzero(np.asarray(splits) == name) for name in ("train", "val", "test")}
    else:
        index = stratified_split(labels, {"val": val_fraction, **({"test": test_fraction} if test_fraction else {})}, seed=seed)
    make = lambda name: ImageDataset([images[i] for i in index[name]], labels[index[name]])  # noqa: E731
    return ClassificationSplits(
        train=make("train"), val=make("val"), test=make("test") if len(index.get("test", [])) else None,
        classes=classes,
        fingerprint=fingerprint(*(np.ascontiguousarray(image) for image in images), labels),
        source=str(csv_path.resolve()),
    )


def load_classification(data: str | Path, **options: Any) -> ClassificationSplits:
    """A MedMNIST ``.npz`` (or a flag such as ``pneumoniamnist``, fetched if missing) or a CSV of DICOM rows."""
    if str(data) in MEDMNIST_MD5:
        return medmnist(fetch_medmnist(str(data)))
    path = Path(data)
    if path.suffix == ".npz":
        return medmnist(path)
    if path.suffix.lower() == ".csv":
        return dicom_csv(path, **options)
    raise InputError(f"expected a MedMNIST .npz file or a CSV of DICOM path,label rows, got {data}")
