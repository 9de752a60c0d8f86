"""The bundled detector and segmenter (``vision/*.fashion_composite``): loaded from the package, they find the
items of a composite test picture they never saw, and ``--draw`` shows only their confident boxes."""
import json

import numpy as np
import pytest
from PIL import Image

import zoo
from vision.detection import DRAW_MIN_SCORE

DETECTOR = "vision/fcos_efficientnet_lite0.fashion_composite"
SEGMENTER = "vision/lraspp_efficientnet_lite0.fashion_composite"


@pytest.fixture(scope="module")
def composite(tmp_path_factory):
    from vision.composite import fashion_composite

    return fashion_composite(tmp_path_factory.mktemp("composite") / "set", seed=7, train=1, val=1, test=4).test


def _truth(folder) -> dict[str, set[str]]:
    document = json.loads((folder / "annotations.json").read_text())
    names = {c["id"]: c["name"] for c in document["categories"]}
    files = {image["id"]: image["file_name"] for image in document["images"]}
    found: dict[str, set[str]] = {}
    for annotation in document["annotations"]:
        found.setdefault(files[annotation["image_id"]], set()).add(names[annotation["category_id"]])
    return found


def test_the_bundled_models_carry_their_test_scores_and_recipe():
    for model_id, metric in ((DETECTOR, "map50"), (SEGMENTER, "miou")):
        card = zoo.info(model_id)
        assert card.metric(metric, "test")["dataset"] == "vision/fashion_composite"
        assert card.provenance["recipe"]["params"]["data"] == "vision/fashion_composite"


def test_the_detector_and_segmenter_find_the_items_of_unseen_pictures(composite):
    detector, segmenter = zoo.load(DETECTOR), zoo.load(SEGMENTER)
    truth = _truth(composite)
    hits = total = 0
    for name, items in truth.items():
        picture = Image.open(composite / "images" / name)
        found = detector.predict(picture)
        confident = {label for label, score in zip(found["labels"], found["scores"]) if score >= 0.5}
        painted = segmenter.predict(picture)
        assert painted["mask"].shape == (picture.height, picture.width)
        segmented = {painted["labels"][int(i)] for i in np.unique(painted["mask"])} - {"background"}
        hits += len(items & confident) + len(items & segmented)
        total += 2 * len(items)
    assert hits >= 0.6 * total  # the test items of 4 pictures; chance would name ~1 in 10


def test_draw_shows_only_the_confident_boxes(tmp_path):
    detector = zoo.load(DETECTOR)
    picture = Image.new("RGB", (100, 100), "white")
    prediction = {"boxes": [[10, 10, 40, 40], [60, 60, 90, 90]], "scores": [DRAW_MIN_SCORE + 0.1, 0.3],
                  "labels": ["Bag", "Coat"]}
    with Image.open(detector.adapter.draw(picture, prediction, tmp_path / "drawn.png")) as drawn:
        pixels = np.asarray(drawn.convert("RGB")).astype(int)
    red = (pixels[..., 0] > 200) & (pixels[..., 1] < 80)
    assert red[10, 10:41].all() and not red[60:91, 60:91].any()
