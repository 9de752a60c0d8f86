"""``zoo predict --out/--draw`` on a detector and a segmenter (random init, saved to folders): COCO JSON and
PNG masks out, pictures with boxes or masks drawn. The first test goes through the installed console script,
the others run the command in this process (a fresh one costs seconds of imports)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import zoo
from tests.zoo.test_cli import run_console_script
from zoo.errors import InputError

pytest.importorskip("torchvision")


def _zoo(*args: str):
    """``zoo ARGS`` in this process; a user error comes back as the result's exception."""
    from typer.testing import CliRunner

    from zoo.cli import app

    return CliRunner().invoke(app, list(args))


def _refused(result, message: str) -> bool:
    return isinstance(result.exception, InputError) and message in str(result.exception)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    rng = np.random.default_rng(0)
    for name, (height, width) in {"a": (60, 80), "b": (48, 40)}.items():
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(root / f"{name}.png")
    zoo.load("torchvision:ssdlite320_mobilenet_v3_large", pretrained=False, device="cpu").save(root / "detector")
    segmenter = zoo.load("torchvision:lraspp_mobilenet_v3_large", pretrained=False, device="cpu")
    segmenter.card.preprocessing["resize_size"] = 64  # the card's input size (520) costs seconds a picture here
    segmenter.save(root / "segmenter")
    return root


def test_detector_writes_coco_json_and_draws_boxes(folders, tmp_path):
    from pycocotools.coco import COCO

    out = tmp_path / "dets"
    result = run_console_script("predict", str(folders / "detector"), str(folders / "a.png"), str(folders / "b.png"),
                                "--out", str(out), "--draw")
    assert result.returncode == 0, result.stderr
    document = json.loads((out / "detections.json").read_text())
    assert [image["file_name"] for image in document["images"]] == ["a.png", "b.png"]
    assert {c["id"]: c["name"] for c in document["categories"]}[18] == "dog"  # COCO's own category ids
    assert len(document["categories"]) == 90 and {a["category_id"] for a in document["annotations"]} <= set(range(1, 91))
    coco = COCO(str(out / "detections.json"))  # pycocotools reads it as a dataset, scores kept
    assert len(coco.getAnnIds()) == len(document["annotations"]) > 0
    assert all(a["bbox"][2] >= 0 and a["bbox"][3] >= 0 and 0 <= a["score"] <= 1 for a in document["annotations"])
    for name, size in (("a", (80, 60)), ("b", (40, 48))):
        with Image.open(out / f"{name}_boxes.png") as drawn:
            assert drawn.size == size and drawn.mode == "RGB"
    assert f"written to {out / 'detections.json'}" in result.stdout.replace("\n", "")


def test_one_file_out_and_the_json_lines(folders, tmp_path):
    single = _zoo("predict", str(folders / "detector"), str(folders / "a.png"), "--out", str(tmp_path / "a.json"))
    assert single.exit_code == 0, single.output
    assert len(json.loads((tmp_path / "a.json").read_text())["images"]) == 1
    two = _zoo("predict", str(folders / "detector"), str(folders / "a.png"), str(folders / "b.png"),
               "--out", str(tmp_path / "two.json"))
    assert _refused(two, "give one input, or a folder, got 2")
    lines = _zoo("predict", str(folders / "segmenter"), str(folders / "b.png"), "--json")
    assert lines.exit_code == 0, lines.output
    printed = json.loads(lines.stdout)
    assert np.asarray(printed["mask"]).shape == (48, 40) and printed["labels"]["15"] == "person"


def test_segmenter_writes_png_masks_and_draws_them(folders, tmp_path):
    out = tmp_path / "masks"
    result = _zoo("predict", str(folders / "segmenter"), str(folders / "a.png"), str(folders / "b.png"),
                  "--out", str(out), "--draw")
    assert result.exit_code == 0, result.output
    model = zoo.load(str(folders / "segmenter"), device="cpu")
    for name in ("a", "b"):
        with Image.open(folders / f"{name}.png") as picture:
            expected = model.predict(picture.copy())["mask"]
        with Image.open(out / f"{name}.png") as written:
            np.testing.assert_array_equal(np.asarray(written), expected)  # class indices, at the input size
        with Image.open(out / f"{name}_mask.png") as drawn:
            assert drawn.size == (expected.shape[1], expected.shape[0])


def test_draw_needs_out_and_a_task_that_draws(folders, tmp_path):
    assert _refused(_zoo("predict", str(folders / "detector"), str(folders / "a.png"), "--draw"), "give --out")
    clash = tmp_path / "x"
    clash.mkdir()
    (clash / "a.png").write_bytes((folders / "a.png").read_bytes())
    same_stem = _zoo("predict", str(folders / "segmenter"), str(folders / "a.png"), str(clash / "a.png"),
                     "--out", str(tmp_path / "o"))
    assert _refused(same_stem, "would write the same file: a")
    beside = _zoo("predict", str(folders / "segmenter"), str(clash / "a.png"), "--out", str(clash))
    assert _refused(beside, "the predictions could overwrite them") and (clash / "a.png").read_bytes() == \
        (folders / "a.png").read_bytes()


@pytest.mark.parametrize("labels, categories", [
    (["face"], [{"id": 1, "name": "face"}]),  # MTCNN: its one class is COCO category 1, never 0
    (["__background__", "cat", "N/A", "dog"], [{"id": 1, "name": "cat"}, {"id": 2, "name": "N/A"},
                                               {"id": 3, "name": "dog"}]),  # torchvision: the index is the id
    (["N/A", "cat"], [{"id": 1, "name": "cat"}]),  # DETR's unused slot 0
    (["cat", "dog"], [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]),  # RT-DETR's 80 names from 0
])
def test_coco_category_ids_start_at_one(labels, categories, tmp_path):
    from pycocotools.coco import COCO

    from vision.detection import coco_document

    prediction = {"boxes": [[1.0, 2.0, 5.0, 9.0]], "scores": [0.9], "labels": [categories[-1]["name"]]}
    document = coco_document([prediction], [tmp_path / "a.png"], labels)
    assert document["categories"] == categories and "info" not in document
    assert [a["category_id"] for a in document["annotations"]] == [categories[-1]["id"]]
    (tmp_path / "d.json").write_text(json.dumps(document))
    assert COCO(str(tmp_path / "d.json")).loadCats(categories[-1]["id"])[0]["name"] == categories[-1]["name"]


def test_mtcnn_writes_its_faces_as_coco_category_one(tmp_path):
    from pycocotools.coco import COCO

    mtcnn = zoo.load("vision/mtcnn.face", pretrained=False, device="cpu")
    face = {"boxes": [[4.0, 6.0, 30.0, 40.0]], "scores": [0.99], "labels": ["face"],
            "landmarks": [[[10.0, 15.0], [20.0, 15.0], [15.0, 22.0], [11.0, 30.0], [19.0, 30.0]]]}
    path = mtcnn.adapter.write(face, tmp_path / "faces.json", source=tmp_path / "photo.png")
    document = json.loads(path.read_text())
    assert document["categories"] == [{"id": 1, "name": "face"}]
    assert [a["category_id"] for a in document["annotations"]] == [1]
    assert COCO(str(path)).getAnnIds(catIds=[1]) == [1]
