"""Fashion composite: real Fashion-MNIST items placed on real photographs, with exact boxes and masks.

No labelled boxes or masks of natural images ship in any package reachable offline, so
this set is made, deterministically, from two real sources: the Fashion-MNIST items
(the official files :func:`vision.datasets.fashion_mnist` reads: train items for the
train and val splits, test items for the test split) and sample photographs bundled in
scikit-image and scikit-learn, each pinned by sha256 and read through the store.

One image: a random square crop of a background photo (resized, maybe mirrored), then
one to ``max_items`` items, each resized, tinted and alpha-blended where no earlier item
lies. An item's alpha is its own pixel intensity (``ALPHA_FULL`` and brighter is opaque);
its mask is where that alpha is at least one half, its box the mask's extent. Items never
overlap, so every mask and box is exact.

A split is written as one folder both readers of the vision tasks read:

    <split>/images/000001.png          the composites (RGB)
    <split>/masks/000001.png           class per pixel (0 = background, i = classes.txt line i)
    <split>/classes.txt                background, then the ten Fashion-MNIST classes
    <split>/annotations.json           COCO: images, categories 1-10, boxes, instance masks as RLE

and ``composite.json`` beside the splits records the seed, the sources with their
sha256, the settings, the fingerprint and the sha256 of every file written.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo.data import fingerprint
from zoo.registry import WeightFile

ALPHA_FULL = 64  # item intensity (0-255) from which an item pixel is fully opaque
MASK_ALPHA = 0.5
SPLITS = ("train", "val", "test")
DEFAULT_COUNTS = {"train": 2000, "val": 300, "test": 500}


def _background(name: str, sha256: str, source: str, size: int) -> WeightFile:
    return WeightFile(name, sha256, source, format="raw", size=size)


# Real photographs bundled in installed packages (scikit-image 0.26's data folder; scikit-learn's
# sample images): public domain or CC0 (scikit-image's) and CC BY 2.0 (scikit-learn's, by danielbuechele
# and vultilion on Flickr).
BACKGROUNDS = (
    _background("astronaut.png", "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
                "package://skimage/data/astronaut.png", 791_555),
    _background("chelsea.png", "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb",
                "package://skimage/data/chelsea.png", 240_512),
    _background("coffee.png", "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7",
                "package://skimage/data/coffee.png", 466_706),
    _background("rocket.jpg", "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c",
                "package://skimage/data/rocket.jpg", 112_525),
    _background("hubble_deep_field.jpg", "3a19c5dd8a927a9334bb1229a6d63711b1c0c767fb27e2286e7c84a3e2c2f5f4",
                "package://skimage/data/hubble_deep_field.jpg", 527_940),
    _background("camera.png", "b0793d2adda0fa6ae899c03989482bff9a42d3d5690fc7e3648f2795d730c23a",
                "package://skimage/data/camera.png", 139_512),
    _background("grass.png", "b6b6022426b38936c43a4ac09635cd78af074e90f42ffa8227ac8b7452d39f89",
                "package://skimage/data/grass.png", 217_893),
    _background("gravel.png", "c48615b451bf1e606fbd72c0aa9f8cc0f068ab7111ef7d93bb9b0f2586440c12",
                "package://skimage/data/gravel.png", 194_247),
    _background("brick.png", "7966caf324f6ba843118d98f7a07746d22f6a343430add0233eca5f6eaaa8fcf",
                "package://skimage/data/brick.png", 106_634),
    _background("china.jpg", "8378025ad2519d649d02e32bd98990db4ab572357d9f09841c2fbfbb4fefad29",
                "package://sklearn/datasets/images/china.jpg", 196_653),
    _background("flower.jpg", "a77f6ec41e353afdf8bdff2ea981b2955535d8d83294f8cfa49cf4e423dd5638",
                "package://sklearn/datasets/images/flower.jpg", 142_987),
)


@dataclass(frozen=True)
class CompositeConfig:
    """How the set is made; every field is recorded in ``composite.json`` and the dataset's fingerprint."""

    seed: int = 0
    image_size: int = 128
    max_items: int = 4
    item_sizes: tuple[int, int] = (28, 64)  # side of a placed item, in pixels, inclusive
    crop_fraction: tuple[float, float] = (0.4, 1.0)  # side of the background crop, of the photo's shorter side
    train: int = DEFAULT_COUNTS["train"]
    val: int = DEFAULT_COUNTS["val"]
    test: int = DEFAULT_COUNTS["test"]

    def count(self, split: str) -> int:
        return getattr(self, split)

    def as_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}


@dataclass
class Composite:
    """One generated image: RGB ``image``, class-per-pixel ``mask`` and its ``objects``
    (``{"label": class index in 1..10, "box": [x1, y1, x2, y2], "mask": bool H×W}``)."""

    image: np.ndarray
    mask: np.ndarray
    objects: list[dict]


@dataclass
class CompositeFolders:
    """The written split folders of one composite set (each one COCO folder and one mask folder)."""

    root: Path
    train: Path
    val: Path
    test: Path
    classes: list[str]
    fingerprint: str
    source: str


def composite_classes() -> list[str]:
    """Pixel value -> class: ``background``, then the ten Fashion-MNIST classes."""
    from vision.datasets import FASHION_MNIST_CLASSES

    return ["background", *FASHION_MNIST_CLASSES]


# -- generation ---------------------------------------------------------------------
def load_backgrounds() -> list[np.ndarray]:
    """The pinned background photographs as H×W×3 uint8, through the store."""
    from PIL import Image

    from zoo import cache

    photos = []
    for wf in BACKGROUNDS:
        with Image.open(cache.fetch(wf)) as image:
            photos.append(np.asarray(image.convert("RGB")))
    return photos


def item_pools(config: CompositeConfig) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Fashion-MNIST (images, labels) per composite split: train and val items from the official
    training images (its own stratified train/val split), test items from the official test images."""
    from vision.datasets import fashion_mnist

    splits = fashion_mnist(seed=0)
    return {name: (np.asarray(getattr(splits, name).images), getattr(splits, name).labels) for name in SPLITS}


def generate(split: str, index: int, config: CompositeConfig, backgrounds: list[np.ndarray],
             items: tuple[np.ndarray, np.ndarray]) -> Composite:
    """Composite ``index`` of ``split``: a function of the seed, the split and the index only."""
    rng = np.random.default_rng([config.seed, SPLITS.index(split), index])
    image = _background_crop(rng, backgrounds, config).astype(np.float32)
    size = config.image_size
    mask = np.zeros((size, size), np.uint8)
    taken = np.zeros((size, size), bool)
    objects = []
    for _ in range(int(rng.integers(1, config.max_items + 1))):
        pick = int(rng.integers(len(items[1])))
        alpha, shade = _item_alpha(items[0][pick], int(rng.integers(config.item_sizes[0], config.item_sizes[1] + 1)))
        placed = _place(rng, alpha, taken)
        if placed is None:
            continue  # no free spot for it: the image keeps fewer items
        y, x = placed
        full, paint = np.zeros((size, size), np.float32), np.zeros((size, size), np.float32)
        full[y:y + alpha.shape[0], x:x + alpha.shape[1]] = alpha
        paint[y:y + alpha.shape[0], x:x + alpha.shape[1]] = shade
        colour = rng.uniform(0.3, 1.0, size=3).astype(np.float32) * 255
        image = image * (1 - full[..., None]) + colour * paint[..., None] * full[..., None]
        taken |= full > 0
        item_mask = full >= MASK_ALPHA
        label = int(items[1][pick]) + 1
        mask[item_mask] = label
        ys, xs = np.nonzero(item_mask)
        objects.append({"label": label, "box": [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1],
                        "mask": item_mask})
    return Composite(np.clip(np.rint(image), 0, 255).astype(np.uint8), mask, objects)


def _background_crop(rng: np.random.Generator, backgrounds: list[np.ndarray], config: CompositeConfig) -> np.ndarray:
    from PIL import Image

    photo = backgrounds[int(rng.integers(len(backgrounds)))]
    height, width = photo.shape[:2]
    side = int(min(height, width) * rng.uniform(*config.crop_fraction))
    top, left = int(rng.integers(height - side + 1)), int(rng.integers(width - side + 1))
    crop = Image.fromarray(photo[top:top + side, left:left + side])
    crop = np.asarray(crop.resize((config.image_size, config.image_size), Image.BILINEAR))
    return crop[:, ::-1] if rng.random() < 0.5 else crop


def _item_alpha(item: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """The item resized to ``side``², read as opacity (its intensity, opaque from ``ALPHA_FULL`` up) and as
    shading (0.4-1 of its tint, so the item keeps its own texture)."""
    from PIL import Image

    resized = np.asarray(Image.fromarray(item).resize((side, side), Image.BILINEAR), np.float32)
    return np.clip(resized / ALPHA_FULL, 0.0, 1.0), 0.4 + 0.6 * resized / 255


def _place(rng: np.random.Generator, alpha: np.ndarray, taken: np.ndarray, tries: int = 20):
    """A top-left corner where the item's visible pixels touch no earlier item's (a 2-pixel gap), or None."""
    size = taken.shape[0]
    visible = _grown(alpha > 0, 2)
    for _ in range(tries):
        y, x = int(rng.integers(size - alpha.shape[0] + 1)), int(rng.integers(size - alpha.shape[1] + 1))
        if not (taken[y:y + alpha.shape[0], x:x + alpha.shape[1]] & visible).any():
            return y, x
    return None


def _grown(mask: np.ndarray, by: int) -> np.ndarray:
    """``mask`` grown by ``by`` pixels in every direction (a square neighbourhood), same shape."""
    padded = np.pad(mask, by)
    height, width = mask.shape
    grown = np.zeros_like(mask)
    for dy in range(2 * by + 1):
        for dx in range(2 * by + 1):
            grown |= padded[dy:dy + height, dx:dx + width]
    return grown


# -- the catalog entry --------------------------------------------------------------------
def fashion_composite(root: str | Path | None = None, *, seed: int = 0, train: int = DEFAULT_COUNTS["train"],
                      val: int = DEFAULT_COUNTS["val"], test: int = DEFAULT_COUNTS["test"]) -> CompositeFolders:
    """The set ``vision/fashion_composite``: generated once into ``root`` (default: a folder named by the
    settings under ``$ZOO_DATA/fashion_composite``, else the zoo cache), then checked against its manifest
    on every load (a changed or missing file is a :class:`zoo.errors.WeightsIntegrityError`)."""
    from zoo.errors import InputError

    config = CompositeConfig(seed=seed, train=train, val=val, test=test)
    if min(train, val, test) < 1:
        raise InputError(f"expected at least one image in every split, got train={train}, val={val}, test={test}")
    folder = Path(root) if root is not None else default_root() / config_key(config)
    if not (folder / "composite.json").is_file():
        try:
            write_composite(folder, config)
        except FileExistsError:
            pass  # another process wrote it meanwhile, or a folder that is no set: checked next
    manifest = verify_composite(folder)
    if manifest["config"] != config.as_dict():
        raise InputError(f"{folder / 'composite.json'}: expected a set made with {config.as_dict()}, "
                         f"found one made with {manifest['config']}")
    return CompositeFolders(folder, *(folder / split for split in SPLITS), classes=composite_classes(),
                            fingerprint=manifest["fingerprint"], source=str(folder))


def default_root() -> Path:
    """``$ZOO_DATA/fashion_composite``, else ``datasets/fashion_composite`` in the zoo cache."""
    from zoo.cache import zoo_home

    if os.environ.get("ZOO_DATA"):
        return Path(os.environ["ZOO_DATA"]).expanduser() / "fashion_composite"
    return zoo_home() / "datasets" / "fashion_composite"


def config_key(config: CompositeConfig) -> str:
    """A folder name for the settings: the seed, then a short hash of all of them."""
    import hashlib

    digest = hashlib.sha256(json.dumps(config.as_dict(), sort_keys=True).encode()).hexdigest()[:12]
    return f"seed{config.seed}-{digest}"


def verify_composite(folder: Path) -> dict:
    """The manifest of a written set, after checking every file it lists against its sha256."""
    from zoo.errors import InputError, WeightsIntegrityError
    from zoo.hashing import sha256_file

    path = folder / "composite.json"
    try:
        manifest = json.loads(path.read_text())
        files = dict(manifest["files"])
        manifest["config"], manifest["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(f"{path}: expected the manifest of a composite set, could not read it ({e})") from None
    for name, sha256 in files.items():
        file = folder / name
        if ".." in Path(name).parts or Path(name).is_absolute():
            raise InputError(f"{path}: names a file outside its folder: {name!r}")
        actual = sha256_file(file) if file.is_file() else "missing"
        if actual != sha256:
            raise WeightsIntegrityError(str(file), sha256, actual, kind="sha256 (composite.json)")
    return manifest


# -- writing ----------------------------------------------------------------------------
def write_composite(root: str | Path, config: CompositeConfig = CompositeConfig()) -> Path:
    """Generate the set into ``root`` (a new folder, written whole, then renamed into place)."""
    root = Path(root)
    if root.exists():
        raise FileExistsError(f"{root} exists; the composite set is written into a new folder")
    backgrounds, pools = load_backgrounds(), item_pools(config)
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        parts, files = [json.dumps(config.as_dict(), sort_keys=True)], {}
        for split in SPLITS:
            composites = [generate(split, i, config, backgrounds, pools[split]) for i in range(config.count(split))]
            parts += [part for c in composites for part in (c.image, c.mask, _objects_json(c))]
            files.update(_write_split(staging, split, composites))
        manifest = {"kind": "composite", "config": config.as_dict(), "fingerprint": fingerprint(*parts),
                    "sources": source_record(), "files": files}
        (staging / "composite.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
        os.replace(staging, root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


def source_record() -> dict:
    """What the set is made of, for its card and manifest."""
    from vision.datasets import FASHION_MNIST_SHA256

    return {"items": {"dataset": "Fashion-MNIST (vision/fashion-mnist)", "sha256": dict(FASHION_MNIST_SHA256)},
            "backgrounds": {wf.name: {"source": wf.source, "sha256": wf.sha256} for wf in BACKGROUNDS}}


def _objects_json(composite: Composite) -> str:
    return json.dumps([[o["label"], o["box"]] for o in composite.objects])


def _write_split(root: Path, split: str, composites: list[Composite]) -> dict[str, str]:
    """Write one split folder; return ``{relative path: sha256}`` of its files."""
    from PIL import Image

    from zoo.hashing import sha256_file

    folder = root / split
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    (folder / "classes.txt").write_text("\n".join(composite_classes()) + "\n")
    images, annotations = [], []
    for number, composite in enumerate(composites, start=1):
        name = f"{number:06d}.png"
        Image.fromarray(composite.image).save(folder / "images" / name, compress_level=6)
        Image.fromarray(composite.mask).save(folder / "masks" / name, compress_level=6)
        images.append({"id": number, "file_name": name, "width": composite.image.shape[1],
                       "height": composite.image.shape[0]})
        for obj in composite.objects:
            x1, y1, x2, y2 = obj["box"]
            annotations.append({"id": len(annotations) + 1, "image_id": number, "category_id": obj["label"],
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": int(obj["mask"].sum()), "iscrowd": 0,
                                "segmentation": rle_encode(obj["mask"])})
    categories = [{"id": i, "name": name} for i, name in enumerate(composite_classes()) if i > 0]
    coco = {"images": images, "annotations": annotations, "categories": categories,
            "info": {"description": f"fashion composite, {split} split (generated; see ../composite.json)"}}
    (folder / "annotations.json").write_text(json.dumps(coco, separators=(",", ":")))
    return {str(path.relative_to(root)): sha256_file(path) for path in sorted(folder.rglob("*")) if path.is_file()}


def rle_encode(mask: np.ndarray) -> dict:
    """COCO's uncompressed RLE of a bool mask: run lengths in column-major order, starting with zeros."""
    flat = np.asarray(mask, bool).flatten(order="F")
    changes = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0, *counts]
    return {"counts": counts, "size": list(mask.shape)}
