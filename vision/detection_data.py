"""Boxes and masks in the formats people have: COCO JSON, Pascal VOC XML, YOLO txt (and mask folders,
in :mod:`vision.segmentation_data`), read into datasets whose targets are torchvision ``tv_tensors``.

An item is ``(image, target)``: the picture as a ``tv_tensors.Image`` ``[3, H, W]`` float in [0, 1]
(what detectors take), the target a dict with ``"boxes"`` (``tv_tensors.BoundingBoxes``, XYXY, in
pixels), ``"labels"`` (int64 indices into ``classes``), ``"image_id"`` and, with ``masks=True``
(COCO polygons or RLE), ``"masks"`` (``tv_tensors.Mask`` ``[N, H, W]``). So box- and mask-aware
augmentation runs through ``torchvision.transforms.v2`` (:func:`detection_train_transform`).
``classes[0]`` is always ``"__background__"`` and labels start at 1, torchvision's convention.

What is refused, and what is skipped (counted in ``skipped`` and logged, never silent):

* refused, :class:`InputError` naming the file and the entry or line: malformed files, coordinates
  that are NaN or infinite, boxes of negative width or height, unknown category ids or class
  numbers, duplicate image ids, annotations of an image that is not listed, image names that
  leave the folder, a missing image file, an image whose size differs from what its annotation says;
* skipped: boxes that are empty once clipped to their image (zero width or height, or wholly
  outside it) and COCO crowd regions (``iscrowd=1``, not objects to detect). Boxes that only
  stick out of their image are clipped to it.
"""
from __future__ import annotations

import json
import logging
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from vision.datasets import IMAGE_SUFFIXES, ImageSplits
from zoo.data import check_fractions, fingerprint
from zoo.errors import InputError

log = logging.getLogger(__name__)

BACKGROUND = "__background__"
SPLIT_FOLDERS = ("train", "val", "test")
MAX_ANNOTATION_BYTES = 2**30  # a COCO JSON beyond 1 GiB is refused before it is parsed


@dataclass(frozen=True)
class BoxRecord:
    """One image's annotation: boxes XYXY in pixels, labels, the size the annotation states, shapes for masks."""

    image: Path
    boxes: np.ndarray
    labels: np.ndarray
    where: str
    size: tuple[int, int] | None = None  # (height, width)
    shapes: tuple = ()  # per box: a COCO segmentation (polygons or RLE), for masks


class DetectionDataset(Dataset):
    """Annotated images; indexing reads one, checks its size and applies ``transform(image, target)``."""

    def __init__(self, records: Sequence[BoxRecord], classes: Sequence[str], transform: Callable | None = None,
                 masks: bool = False):
        self.records, self.classes, self.transform, self.masks = list(records), list(classes), transform, masks

    def __len__(self) -> int:
        return len(self.records)

    def raw(self, index: int) -> tuple[Any, dict[str, Any]]:
        """Item ``index`` before the transform."""
        from torchvision import tv_tensors

        from vision.images import read_image
        from vision.transforms import picture_unit

        record = self.records[index]
        picture = read_image(record.image)
        image = tv_tensors.Image(torch.from_numpy(picture_unit(picture)))
        height, width = image.shape[-2:]
        if record.size is not None and tuple(record.size) != (height, width):
            raise InputError(f"{record.image}: {record.where} says the image is {record.size[1]}×{record.size[0]}, "
                             f"the file is {width}×{height}")
        target = {"boxes": tv_tensors.BoundingBoxes(torch.from_numpy(record.boxes).reshape(-1, 4), format="XYXY",
                                                    canvas_size=(height, width)),
                  "labels": torch.from_numpy(record.labels), "image_id": index}
        if self.masks:
            target["masks"] = tv_tensors.Mask(torch.from_numpy(_decode_shapes(record, height, width)))
        return image, target

    def __getitem__(self, index: int):
        image, target = self.raw(index)
        return self.transform(image, target) if self.transform else (image, target)

    def with_transform(self, transform: Callable | None) -> "DetectionDataset":
        return DetectionDataset(self.records, self.classes, transform, self.masks)


@dataclass
class DetectionSplits(ImageSplits):
    """Classification's splits record (train/val/test, classes, fingerprint, source, ``skipped``: the
    (where, why) of each box left out) over :class:`DetectionDataset` splits, and the format read."""

    format: str = "coco"


# -- boxes ------------------------------------------------------------------
class BoxChecker:
    """Checks boxes against their image: refuses impossible ones, clips those that stick out, skips empty ones."""

    def __init__(self):
        self.skipped: list[tuple[str, str]] = []

    def check(self, xyxy: Sequence[float], size: tuple[int, int] | None, where: str) -> list[float] | None:
        """The box clipped to the image (``size`` = (height, width), None: unknown), or None when it is skipped."""
        x1, y1, x2, y2 = (float(v) for v in xyxy)
        if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
            raise InputError(f"{where}: expected finite box coordinates, got {[x1, y1, x2, y2]}")
        if x2 < x1 or y2 < y1:
            raise InputError(f"{where}: expected a box of non-negative width and height, got x1={x1:g} y1={y1:g} "
                             f"x2={x2:g} y2={y2:g}")
        if size is not None:
            height, width = size
            x1, x2 = min(max(x1, 0.0), width), min(max(x2, 0.0), width)
            y1, y2 = min(max(y1, 0.0), height), min(max(y2, 0.0), height)
        if x2 - x1 <= 0 or y2 - y1 <= 0:
            self.skipped.append((where, "empty box (zero width or height, or outside its image)"))
            return None
        return [x1, y1, x2, y2]


def record_of(image: Path, boxes: list, labels: list, where: str, size=None, shapes=()) -> BoxRecord:
    return BoxRecord(image, np.asarray(boxes, dtype=np.float32).reshape(-1, 4), np.asarray(labels, dtype=np.int64),
                     where, size, tuple(shapes))


def inside(root: Path, name: str, where: str) -> Path:
    """``root / name`` for a name a file gave, refused when it leaves ``root`` (``..``, absolute, a symlink out)."""
    if not isinstance(name, str) or not name or os.path.isabs(name) or ".." in Path(name).parts:
        raise InputError(f"{where}: expected a relative file name inside {root}, got {name!r}")
    path = root / name
    if path.exists() and not path.resolve().is_relative_to(root.resolve()):
        raise InputError(f"{where}: {name!r} leaves {root} (a symlink)")
    return path


def _existing(candidates: Sequence[Path], where: str) -> Path:
    for path in candidates:
        if path.is_file():
            return path
    raise InputError(f"{where}: no image file at {' or '.join(str(p) for p in candidates)}")


# -- COCO -------------------------------------------------------------------
def coco_files(root: Path) -> dict[str, Path]:
    """The COCO annotation files of a folder by split: ``annotations.json`` → ``train``, or
    ``annotations/instances_<split>.json`` (``instances_val2017.json`` → ``val2017``)."""
    if (root / "annotations.json").is_file():
        return {"train": root / "annotations.json"}
    return {path.stem.removeprefix("instances_"): path for path in sorted((root / "annotations").glob("instances_*.json"))}


def read_json(path: Path) -> Any:
    if path.stat().st_size > MAX_ANNOTATION_BYTES:
        raise InputError(f"{path}: {path.stat().st_size:,} bytes is more than the {MAX_ANNOTATION_BYTES:,} an "
                         "annotation file may have")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: expected a JSON file, could not parse it: {exc}") from None


def coco_records(path: Path, root: Path, split: str, checker: BoxChecker,
                 categories: dict[int, str] | None = None) -> tuple[list[BoxRecord], dict[int, str]]:
    """The images and boxes of one COCO JSON file; ``categories`` (id → name) from an earlier split must agree."""
    document = read_json(path)
    if not isinstance(document, dict) or not isinstance(document.get("images"), list) \
            or not isinstance(document.get("annotations", []), list):
        raise InputError(f"{path}: expected a COCO document with 'images' and 'annotations' lists")
    found = _coco_categories(document.get("categories"), path)
    if categories is not None and found != categories:
        raise InputError(f"{path}: its categories differ from the other split's: {found} vs {categories}")
    images = _coco_images(document["images"], path)
    objects: dict[int, list] = {image_id: [] for image_id in images}
    for entry, annotation in enumerate(document.get("annotations", [])):
        where = f"{path} annotation {entry}"
        if not isinstance(annotation, dict) or not isinstance(annotation.get("bbox"), list) \
                or len(annotation["bbox"]) != 4:
            raise InputError(f"{where}: expected an object with a bbox [x, y, width, height], got {annotation!r:.120}")
        where += f" (id {annotation.get('id')})"
        if annotation.get("image_id") not in images:
            raise InputError(f"{where}: image_id {annotation.get('image_id')!r} is not among the file's images")
        if annotation.get("category_id") not in found:
            raise InputError(f"{where}: category_id {annotation.get('category_id')!r} is not among the categories "
                             f"{sorted(found)}")
        if annotation.get("iscrowd", 0):
            checker.skipped.append((where, "crowd region (iscrowd=1), not an object to detect"))
            continue
        objects[annotation["image_id"]].append((annotation, where))
    labels = {category_id: index for index, category_id in enumerate(sorted(found), start=1)}
    records = []
    for image_id, (name, size) in images.items():
        boxes, box_labels, shapes = [], [], []
        for annotation, where in objects[image_id]:
            x, y, w, h = _numbers(annotation["bbox"], where)
            box = checker.check((x, y, x + w, y + h), size, where)
            if box is not None:
                boxes.append(box)
                box_labels.append(labels[annotation["category_id"]])
                shapes.append(annotation.get("segmentation"))
        image = _existing([inside(root / "images", name, path), inside(root, name, path),
                           inside(root / split, name, path)], f"{path} image {image_id}")
        records.append(record_of(image, boxes, box_labels, f"{path} image {image_id}", size, shapes))
    return records, found


def _unique_entries(items: list, path: Path, kind: str, text_key: str) -> Iterator[dict]:
    """The entries of a COCO list: each a dict with a unique int ``id`` and a string ``text_key``."""
    seen: set[int] = set()
    for entry, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("id"), int) or not isinstance(item.get(text_key), str):
            raise InputError(f"{path} {kind} {entry}: expected {{'id': int, '{text_key}': str, ...}}, got {item!r:.120}")
        if item["id"] in seen:
            raise InputError(f"{path} {kind} {entry}: duplicate {kind} id {item['id']}")
        seen.add(item["id"])
        yield item


def _coco_categories(categories: Any, path: Path) -> dict[int, str]:
    if not isinstance(categories, list) or not categories:
        raise InputError(f"{path}: expected a non-empty 'categories' list of {{id, name}}")
    return {category["id"]: category["name"] for category in _unique_entries(categories, path, "category", "name")}


def _coco_images(images: list, path: Path) -> dict[int, tuple[str, tuple[int, int] | None]]:
    found: dict[int, tuple[str, tuple[int, int] | None]] = {}
    for image in _unique_entries(images, path, "image", "file_name"):
        width, height = image.get("width"), image.get("height")
        known = isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0
        found[image["id"]] = (image["file_name"], (height, width) if known else None)
    return found


def _numbers(values: Sequence[Any], where: str) -> list[float]:
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise InputError(f"{where}: expected numbers, got {list(values)!r:.120}")
    return [float(v) for v in values]


def _decode_shapes(record: BoxRecord, height: int, width: int) -> np.ndarray:
    """``[N, H, W]`` uint8 masks from the record's COCO segmentations (polygons, or RLE), through pycocotools."""
    from pycocotools import mask as coco_mask

    masks = np.zeros((len(record.shapes), height, width), dtype=np.uint8)
    for index, shape in enumerate(record.shapes):
        where = f"{record.where} object {index}"
        if isinstance(shape, list):  # polygons: [[x1, y1, x2, y2, ...], ...]
            if not shape or not all(isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0 for p in shape):
                raise InputError(f"{where}: expected polygons of at least 3 (x, y) points, got {shape!r:.120}")
            rle = coco_mask.merge(coco_mask.frPyObjects([_numbers(p, where) for p in shape], height, width))
        elif isinstance(shape, dict) and "counts" in shape and "size" in shape:
            if list(shape["size"]) != [height, width]:
                raise InputError(f"{where}: RLE size {shape['size']} is not the image's [{height}, {width}]")
            rle = coco_mask.frPyObjects(shape, height, width) if isinstance(shape["counts"], list) else shape
        else:
            raise InputError(f"{where}: masks=True needs a 'segmentation' (polygons or RLE), got {shape!r:.120}")
        with warnings.catch_warnings():  # pycocotools' own numpy 2 copy-keyword deprecation
            warnings.simplefilter("ignore", DeprecationWarning)
            masks[index] = coco_mask.decode(rle)
    return masks


def coco(root: str | Path, val_fraction: float = 0.2, seed: int = 0, masks: bool = False) -> DetectionSplits:
    """A COCO folder: ``annotations.json`` (split ``val_fraction`` off at random) or
    ``annotations/instances_<split>.json`` (``train*``, ``val*`` and ``test*`` splits as given);
    images under ``images/``, the folder itself, or ``<split>/``."""
    root = Path(root)
    files = coco_files(root)
    if not files:
        raise InputError(f"{root}: expected annotations.json or annotations/instances_*.json (COCO)")
    checker, categories, by_split = BoxChecker(), None, {}
    for split, path in files.items():
        by_split[split], categories = coco_records(path, root, split, checker, categories)
    classes = [BACKGROUND, *(categories[i] for i in sorted(categories))]
    return splits_of(by_split, classes, root, "coco", checker, val_fraction, seed, masks)


# -- Pascal VOC ---------------------------------------------------------------
MAX_XML_BYTES = 2**20


def voc(root: str | Path, val_fraction: float = 0.2, seed: int = 0) -> DetectionSplits:
    """A Pascal VOC folder: ``Annotations/*.xml`` with images in ``JPEGImages/`` (splits from
    ``ImageSets/Main/{train,val,test}.txt`` when there), or ``*.xml`` beside their images. Classes from
    ``classes.txt`` (one a line) when there, else every name the files use, sorted."""
    root = Path(root)
    folder = root / "Annotations" if (root / "Annotations").is_dir() else root
    images = root / "JPEGImages" if (root / "JPEGImages").is_dir() else folder
    parsed = {path: _voc_file(path, images) for path in sorted(folder.glob("*.xml"))}
    if not parsed:
        raise InputError(f"{folder}: expected Pascal VOC annotation files (*.xml), found none")
    given = read_classes(root / "classes.txt")
    names = given or sorted({name for _, _, objects in parsed.values() for name, _, _ in objects})
    labels = {name: index for index, name in enumerate(names, start=1)}
    checker, records = BoxChecker(), {}
    for path, (image, size, objects) in parsed.items():
        boxes, box_labels = [], []
        for name, box, where in objects:
            if name not in labels:
                raise InputError(f"{where}: class {name!r} is not in {root / 'classes.txt'} ({', '.join(names)})")
            kept = checker.check(box, size, where)
            if kept is not None:
                boxes.append(kept)
                box_labels.append(labels[name])
        records[path.stem] = record_of(image, boxes, box_labels, str(path), size)
    return splits_of(_voc_splits(root, records), [BACKGROUND, *names], root, "voc", checker, val_fraction, seed)


def _voc_file(path: Path, images: Path) -> tuple[Path, tuple[int, int] | None, list]:
    """``(image, (height, width), [(name, xyxy, where), ...])`` of one VOC XML file."""
    import xml.etree.ElementTree as ET

    if path.stat().st_size > MAX_XML_BYTES:
        raise InputError(f"{path}: more than {MAX_XML_BYTES:,} bytes; expected a Pascal VOC annotation")
    try:
        tree = ET.fromstring(path.read_bytes())
    except ET.ParseError as exc:
        raise InputError(f"{path}: expected Pascal VOC XML, could not parse it: {exc}") from None
    name = tree.findtext("filename") or ""
    image = inside(images, name, str(path)) if name else None
    if image is None or not image.is_file():
        image = _existing([images / f"{path.stem}{s}" for s in (".jpg", ".jpeg", ".png")], f"{path} filename {name!r}")
    width, height = tree.findtext("size/width"), tree.findtext("size/height")
    size = (int(height), int(width)) if (width or "").isdigit() and (height or "").isdigit() and int(width) else None
    objects = []
    for index, element in enumerate(tree.findall("object")):
        where = f"{path} object {index}"
        corners = [element.findtext(f"bndbox/{key}") for key in ("xmin", "ymin", "xmax", "ymax")]
        try:
            box = [float(v) for v in corners]
        except (TypeError, ValueError):
            raise InputError(f"{where}: expected a bndbox of numbers xmin, ymin, xmax, ymax, got {corners}") from None
        objects.append(((element.findtext("name") or "").strip(), box, where))
    return image, size, objects


def _voc_splits(root: Path, records: dict[str, BoxRecord]) -> dict[str, list[BoxRecord]]:
    lists = {split: root / "ImageSets" / "Main" / f"{split}.txt" for split in ("train", "val", "test")}
    if not lists["train"].is_file():
        return {"train": list(records.values())}
    out = {}
    for split, path in lists.items():
        if path.is_file():
            stems = [line.split()[0] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            unknown = [stem for stem in stems if stem not in records]
            if unknown:
                raise InputError(f"{path}: lists images with no annotation file: {', '.join(unknown[:5])}")
            out[split] = [records[stem] for stem in stems]
    return out


def read_classes(path: Path) -> list[str] | None:
    """Class names, one a line, from ``classes.txt`` (None when there is none); blank lines skipped."""
    if not path.is_file():
        return None
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not names or len(set(names)) != len(names):
        raise InputError(f"{path}: expected distinct class names, one a line, got {names[:10]}")
    return names


# -- YOLO -------------------------------------------------------------------
def yolo(root: str | Path, val_fraction: float = 0.2, seed: int = 0) -> DetectionSplits:
    """A YOLO folder: ``data.yaml`` (``names``), ``images/[SPLIT/]*`` and ``labels/[SPLIT/]*.txt`` of
    ``class cx cy w h`` lines in [0, 1] of the image (or ``class x1 y1 x2 y2 ...`` polygons, boxed);
    an image without a label file has no objects."""
    root = Path(root)
    names = _yolo_names(root / "data.yaml")
    checker, by_split = BoxChecker(), {}
    for image in image_files(root / "images"):
        relative = image.relative_to(root / "images")
        split = relative.parts[0] if len(relative.parts) > 1 else "train"
        size = _image_size(image)
        label_file = inside(root / "labels", str(relative.with_suffix(".txt")), str(image))
        boxes, labels = _yolo_labels(label_file, size, len(names), checker) if label_file.is_file() else ([], [])
        by_split.setdefault(split, []).append(record_of(image, boxes, labels, str(label_file), size))
    if not by_split:
        raise InputError(f"{root / 'images'}: expected image files, found none")
    return splits_of(by_split, [BACKGROUND, *names], root, "yolo", checker, val_fraction, seed)


def _yolo_names(path: Path) -> list[str]:
    import yaml

    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: expected YAML, could not parse it: {exc}") from None
    names = spec.get("names") if isinstance(spec, dict) else None
    if isinstance(names, dict) and sorted(names) == list(range(len(names))):
        names = [names[i] for i in range(len(names))]
    if not isinstance(names, list) or not names or not all(isinstance(n, (str, int)) for n in names):
        raise InputError(f"{path}: expected 'names', a list of class names or a {{0: name, ...}} map, got {names!r:.120}")
    return [str(n) for n in names]


def _yolo_labels(path: Path, size: tuple[int, int], n_classes: int, checker: BoxChecker) -> tuple[list, list]:
    height, width = size
    boxes, labels = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path} line {number}"
        tokens = line.split()
        try:
            cls, values = int(tokens[0]), [float(v) for v in tokens[1:]]
        except (ValueError, IndexError):
            raise InputError(f"{where}: expected 'class cx cy w h' (numbers), got {line.strip()!r:.120}") from None
        if not 0 <= cls < n_classes:
            raise InputError(f"{where}: class {cls} is not one of the {n_classes} in data.yaml")
        if len(values) == 4:
            cx, cy, w, h = values
            xyxy = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
        elif len(values) >= 6 and len(values) % 2 == 0:  # a polygon: its bounding box
            xyxy = [min(values[0::2]), min(values[1::2]), max(values[0::2]), max(values[1::2])]
        else:
            raise InputError(f"{where}: expected 4 box values or a polygon of x y pairs, got {len(values)} values")
        box = checker.check([xyxy[0] * width, xyxy[1] * height, xyxy[2] * width, xyxy[3] * height], size, where)
        if box is not None:
            boxes.append(box)
            labels.append(cls + 1)
    return boxes, labels


def _image_size(path: Path) -> tuple[int, int]:
    """(height, width) from the image header, checked against the size limits; nothing decoded."""
    from PIL import Image

    from vision.images import FORMATS, PIL_DECODING_ERRORS, check_image_size

    try:
        with Image.open(path, formats=FORMATS) as image:
            width, height = image.size
    except (PIL_DECODING_ERRORS + (Image.DecompressionBombError,)) as exc:
        raise InputError(f"could not read the image {path}: {type(exc).__name__}: {exc}") from None
    check_image_size(width, height, source=path)
    return height, width


# -- splits -----------------------------------------------------------------
def splits_of(by_split: dict[str, list[BoxRecord]], classes: list[str], root: Path, format_: str,
              checker: BoxChecker, val_fraction: float, seed: int, masks: bool = False) -> DetectionSplits:
    """Datasets per split: the named ones (``train*``/``val*``/``test*``), else ``val_fraction`` of one set at random."""
    named = {_split_name(name): records for name, records in by_split.items()}
    if "val" not in named:
        records = [r for name in sorted(named) for r in named[name]]
        check_fractions({"val": val_fraction})
        order = np.random.default_rng(seed).permutation(len(records))
        n_val = int(round(len(records) * val_fraction))
        if len(records) < 2 or (val_fraction > 0 and n_val == 0) or n_val == len(records):
            raise InputError(f"{root}: {len(records)} images cannot be split into train and val with "
                             f"val_fraction={val_fraction}")
        named = {"train": [records[i] for i in sorted(order[n_val:])], "val": [records[i] for i in sorted(order[:n_val])]}
    if "train" not in named:
        raise InputError(f"{root}: expected a train split among {sorted(by_split)}")
    if checker.skipped:
        reasons = sorted({why for _, why in checker.skipped})
        log.warning("%s: left out %d boxes (%s); first: %s", root, len(checker.skipped), "; ".join(reasons),
                    checker.skipped[0][0])
    parts = [f"{name}:{r.image.relative_to(root) if r.image.is_relative_to(root) else r.image.name}:"
             f"{r.boxes.tobytes().hex()}:{r.labels.tobytes().hex()}" for name in sorted(named) for r in named[name]]
    make = lambda name: DetectionDataset(named[name], classes, masks=masks) if name in named else None  # noqa: E731
    return DetectionSplits(train=make("train"), val=make("val"), test=make("test"), classes=classes,
                           fingerprint=fingerprint(*parts, *classes), source=str(root), format=format_,
                           skipped=checker.skipped)


def split_folders(root: Path, masks: bool = False) -> DetectionSplits:
    """``root/train``, ``root/val`` (and ``root/test``), each a COCO folder with its own ``annotations.json``
    (as ``vision/fashion_composite`` is written); their categories must agree."""
    checker, categories, by_split = BoxChecker(), None, {}
    for split in SPLIT_FOLDERS:
        if (root / split / "annotations.json").is_file():
            by_split[split], categories = coco_records(root / split / "annotations.json", root / split, split,
                                                       checker, categories)
    classes = [BACKGROUND, *(categories[i] for i in sorted(categories or {}))]
    return splits_of(by_split, classes, root, "coco", checker, 0.0, 0, masks)


def has_split_folders(root: Path, marker: str) -> bool:
    """Whether ``root`` holds ``train/`` and ``val/`` folders, each with ``marker`` (a file or folder name)."""
    return all((root / split / marker).exists() for split in SPLIT_FOLDERS[:2])


def _split_name(name: str) -> str:
    for split in ("train", "val", "test"):
        if name.lower().startswith(split):
            return split
    raise InputError(f"expected split names starting with train, val or test, got {name!r}")


def image_files(folder: Path) -> list[Path]:
    """The image files under ``folder``, sorted (hidden files left out)."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


# -- augmentation -----------------------------------------------------------
def detection_train_transform(size: int | tuple[int, int], scale: tuple[float, float] = (0.3, 1.0)):
    """Box- and mask-aware training augmentation (``torchvision.transforms.v2``): photometric distortion,
    a random resized crop to ``size``, a horizontal flip, then boxes clipped and those left empty dropped
    with their labels and masks (``SanitizeBoundingBoxes``)."""
    from torchvision.transforms import v2

    return v2.Compose([
        v2.RandomPhotometricDistort(p=0.5),
        v2.RandomResizedCrop(size, scale=scale, antialias=True),
        v2.RandomHorizontalFlip(p=0.5),
        v2.ClampBoundingBoxes(),
        v2.SanitizeBoundingBoxes(min_size=1),
    ])


def collate_detection(batch: Sequence[tuple[Any, dict]]) -> tuple[list, list]:
    """A batch as torchvision's detectors take it: a list of images and a list of targets."""
    return [image for image, _ in batch], [target for _, target in batch]


def registered_or_folder(data: str | Path, splits_type: type):
    """A registered dataset id's splits when its loader gives ``splits_type``; else the folder to read: ``data``
    itself, or the folders a generated set wrote (``vision/fashion_composite``). Neither: the unknown-id error."""
    from zoo.registry import get_registry, resolve_ref

    registry = get_registry()
    if str(data) in registry.datasets:
        loaded = resolve_ref(registry.dataset(str(data)).loader)()
        if isinstance(loaded, splits_type):
            return loaded
        data = loaded.root
    if not Path(data).is_dir():
        registry.dataset(str(data))  # raises, with suggestions
    return Path(data)


def load_detection(data: str | Path, val_fraction: float = 0.2, seed: int = 0, masks: bool = False) -> DetectionSplits:
    """A registered ``object-detection`` dataset id, or a folder: COCO (``annotations.json`` or
    ``annotations/instances_*.json``, or ``train/`` + ``val/`` [+ ``test/``] folders with one each), YOLO (``data.yaml`` + ``images/`` + ``labels/``) or Pascal VOC
    (``Annotations/*.xml``, or ``*.xml`` beside the images)."""
    data = registered_or_folder(data, DetectionSplits)
    if isinstance(data, DetectionSplits):
        return data
    root = Path(data)
    if not coco_files(root) and has_split_folders(root, "annotations.json"):
        return split_folders(root, masks)
    if coco_files(root):
        return coco(root, val_fraction, seed, masks)
    if masks:
        raise InputError(f"{root}: masks come from COCO segmentations; this folder has no COCO annotations")
    if (root / "data.yaml").is_file():
        return yolo(root, val_fraction, seed)
    if (root / "Annotations").is_dir() or any(root.glob("*.xml")):
        return voc(root, val_fraction, seed)
    raise InputError(f"{root}: expected a COCO (annotations.json or annotations/instances_*.json), YOLO "
                     "(data.yaml, images/, labels/) or Pascal VOC (Annotations/*.xml) folder")
