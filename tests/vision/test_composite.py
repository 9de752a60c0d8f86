"""The fashion composite set (vision/composite.py): deterministic, exact boxes and masks, COCO + mask folders."""
from __future__ import annotations

import json

import numpy as np
import pytest

from vision.composite import SPLITS, fashion_composite, rle_encode, verify_composite
from vision.datasets import fashion_mnist_available
from zoo.errors import InputError, WeightsIntegrityError

pytestmark = pytest.mark.skipif(not fashion_mnist_available(),
                                reason="needs Fashion-MNIST on this machine (Debian's dataset-fashion-mnist; .ci/run "
                                "installs it)")
SMALL = {"train": 6, "val": 2, "test": 3}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    return fashion_composite(tmp_path_factory.mktemp("composite") / "set", seed=3, **SMALL)


def read_png(path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image)


def decode_rle(rle: dict) -> np.ndarray:
    flat = np.repeat([i % 2 == 1 for i in range(len(rle["counts"]))], rle["counts"])
    return flat.reshape(rle["size"], order="F")


def test_the_same_seed_writes_the_same_bytes_and_another_seed_does_not(written, tmp_path):
    again = fashion_composite(tmp_path / "again", seed=3, **SMALL)
    assert again.fingerprint == written.fingerprint
    for split in SPLITS:
        for name in ("annotations.json", "images/000001.png", "masks/000001.png"):
            assert (again.root / split / name).read_bytes() == (written.root / split / name).read_bytes()
    assert fashion_composite(tmp_path / "other", seed=4, **SMALL).fingerprint != written.fingerprint
    manifest = json.loads((written.root / "composite.json").read_text())
    assert manifest["kind"] == "composite" and manifest["config"]["seed"] == 3
    assert manifest["sources"]["backgrounds"]["astronaut.png"]["sha256"].startswith("88431cd9")


def test_every_box_lies_inside_its_image_and_is_its_masks_extent(written):
    for split in SPLITS:
        folder = getattr(written, split)
        coco = json.loads((folder / "annotations.json").read_text())
        assert len(coco["images"]) == SMALL[split] and coco["annotations"]
        classes = (folder / "classes.txt").read_text().split("\n")[:11]
        assert classes[0] == "background" and [c["name"] for c in coco["categories"]] == classes[1:]
        sizes = {image["id"]: image for image in coco["images"]}
        for ann in coco["annotations"]:
            image = sizes[ann["image_id"]]
            x, y, w, h = ann["bbox"]
            assert 0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= image["width"] and y + h <= image["height"]
            instance = decode_rle(ann["segmentation"])
            ys, xs = np.nonzero(instance)
            assert [xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()] == ann["bbox"]
            assert instance.sum() == ann["area"]
            semantic = read_png(folder / "masks" / image["file_name"])
            assert (semantic[instance] == ann["category_id"]).all()  # the class mask agrees, pixel for pixel
        for image in coco["images"]:
            semantic = read_png(folder / "masks" / image["file_name"])
            photo = read_png(folder / "images" / image["file_name"])
            assert photo.shape == (image["height"], image["width"], 3) and semantic.shape == photo.shape[:2]
            covered = sum(decode_rle(a["segmentation"]) for a in coco["annotations"] if a["image_id"] == image["id"])
            assert ((semantic > 0) == (covered > 0)).all() and covered.max() == 1  # items never overlap


def test_a_changed_file_or_other_settings_are_refused(written, tmp_path):
    import shutil

    copy = shutil.copytree(written.root, tmp_path / "copy")
    (copy / "train" / "masks" / "000002.png").write_bytes(b"not the mask")
    with pytest.raises(WeightsIntegrityError, match=r"000002\.png"):
        verify_composite(copy)
    with pytest.raises(InputError, match="expected a set made with"):
        fashion_composite(written.root, seed=3, train=7, val=2, test=3)
    with pytest.raises(InputError, match="at least one image in every split"):
        fashion_composite(tmp_path / "empty", val=0)


def test_rle_is_cocos_column_major_runs_starting_with_zeros():
    mask = np.array([[1, 0], [1, 1]], bool)
    assert rle_encode(mask) == {"counts": [0, 2, 1, 1], "size": [2, 2]}
    assert (decode_rle(rle_encode(mask)) == mask).all()


def test_the_classification_recipe_refuses_the_detection_set_by_name():
    from vision.datasets import load_splits

    with pytest.raises(InputError, match="vision/fashion_composite is a dataset for object-detection, not image-classification"):
        load_splits("vision/fashion_composite")


def test_the_catalog_entry_says_composite_and_records_seed_and_sources():
    from vision.composite import BACKGROUNDS
    from zoo.registry import get_registry, resolve_ref

    spec = get_registry().dataset("vision/fashion_composite")
    assert spec.card["composite"] is True and spec.card["seed"] == 0
    assert resolve_ref(spec.loader) is fashion_composite
    assert all(wf.name.split(".")[0] in spec.card["source"] for wf in BACKGROUNDS)
