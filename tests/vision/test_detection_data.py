"""Detection and segmentation data readers on tiny folders written here: COCO (boxes, polygons, RLE),
Pascal VOC, YOLO and mask folders; tv_tensors targets through torchvision.transforms.v2; bad input refused
with the file and entry, empty boxes skipped and counted."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vision.detection_data import collate_detection, detection_train_transform, load_detection
from vision.segmentation_data import load_segmentation, segmentation_train_transform
from zoo.errors import InputError, UnknownDatasetError

pytest.importorskip("torchvision")


def _image(path: Path, width=40, height=30, seed=0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _coco(root: Path, annotations: list, images=None, name="annotations.json") -> Path:
    images = images or [{"id": i, "file_name": f"{i}.png", "width": 40, "height": 30} for i in (1, 2, 3)]
    for image in images:
        if not (root / "images" / image["file_name"]).exists():
            _image(root / "images" / image["file_name"], seed=image["id"])
    document = {"images": images, "categories": [{"id": 7, "name": "cat"}, {"id": 3, "name": "dog"}],
                "annotations": annotations}
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))
    return path


def _box(id_, image_id, bbox, category_id=7, **extra) -> dict:
    return {"id": id_, "image_id": image_id, "category_id": category_id, "bbox": bbox, **extra}


def test_coco_boxes_polygons_and_rle_become_tv_tensors(tmp_path):
    from pycocotools import mask as coco_mask

    rle = coco_mask.encode(np.asfortranarray(np.pad(np.ones((5, 6), np.uint8), ((10, 15), (20, 14)))))
    rle["counts"] = rle["counts"].decode()
    _coco(tmp_path, [
        _box(1, 1, [2, 3, 10, 5], segmentation=[[2, 3, 12, 3, 12, 8, 2, 8]]),
        _box(2, 1, [30, 20, 20, 20], category_id=3, segmentation=rle),  # sticks out: clipped to the image
        _box(3, 2, [5, 5, 0, 4], segmentation=[[5, 5, 5, 9, 6, 9]]),  # zero width: skipped, counted
        _box(4, 3, [1, 1, 3, 3], iscrowd=1, segmentation=rle),  # a crowd region: skipped, counted
    ])
    splits = load_detection(tmp_path, val_fraction=0.34, masks=True)
    assert splits.format == "coco" and splits.classes == ["__background__", "dog", "cat"]  # category ids in order
    assert [why for _, why in splits.skipped] == ["crowd region (iscrowd=1), not an object to detect",
                                                  "empty box (zero width or height, or outside its image)"]
    assert len(splits.train) + len(splits.val) == 3
    dataset = splits.train if any(r.image.name == "1.png" for r in splits.train.records) else splits.val
    index = next(i for i, r in enumerate(dataset.records) if r.image.name == "1.png")
    image, target = dataset[index]
    assert image.shape == (3, 30, 40) and image.dtype == torch.float32 and float(image.max()) <= 1
    assert type(target["boxes"]).__name__ == "BoundingBoxes" and target["boxes"].canvas_size == (30, 40)
    assert target["boxes"].tolist() == [[2, 3, 12, 8], [30, 20, 40, 30]] and target["labels"].tolist() == [2, 1]
    masks = target["masks"]
    assert type(masks).__name__ == "Mask" and masks.shape == (2, 30, 40)
    assert masks[1].sum() == 30 and masks[1][10:15, 20:26].all()  # the RLE, decoded by pycocotools
    assert masks[0][4:7, 3:11].all() and masks[0].sum() < 80  # the polygon, rasterised


def test_v2_augmentation_moves_boxes_and_masks_with_the_pixels(tmp_path):
    _coco(tmp_path, [_box(1, i, [4, 4, 12, 10], segmentation=[[4, 4, 16, 4, 16, 14, 4, 14]]) for i in (1, 2, 3)])
    splits = load_detection(tmp_path, val_fraction=0.34, masks=True)
    train = splits.train.with_transform(detection_train_transform(24, scale=(0.5, 1.0)))
    torch.manual_seed(0)
    for _ in range(8):
        image, target = train[0]
        assert image.shape == (3, 24, 24) and target["boxes"].canvas_size == (24, 24)
        assert len(target["boxes"]) == len(target["labels"]) == len(target["masks"])  # sanitized together
        for box, mask in zip(target["boxes"], target["masks"]):
            ys, xs = torch.nonzero(mask, as_tuple=True)  # the box still frames its mask
            assert abs(float(xs.min()) - float(box[0])) <= 2 and abs(float(ys.max()) + 1 - float(box[3])) <= 2
    images, targets = collate_detection([train[0], train[0]])
    assert len(images) == len(targets) == 2


@pytest.mark.parametrize("annotation, message", [
    (_box(1, 1, [1, 1, float("nan"), 2]), "annotation 0 (id 1): expected finite box coordinates"),
    (_box(1, 1, [5, 5, -2, 3]), "annotation 0 (id 1): expected a box of non-negative width and height"),
    (_box(1, 1, [1, 1, 2, 2], category_id=99), "category_id 99 is not among the categories [3, 7]"),
    (_box(1, 42, [1, 1, 2, 2]), "image_id 42 is not among the file's images"),
    ({"id": 1, "image_id": 1, "category_id": 7}, "annotation 0: expected an object with a bbox"),
])
def test_coco_bad_annotations_are_refused_with_the_entry(tmp_path, annotation, message):
    path = _coco(tmp_path, [annotation])
    with pytest.raises(InputError, match=r"annotations\.json") as error:
        load_detection(tmp_path)
    assert message in str(error.value) and str(path) in str(error.value)


def test_coco_duplicate_image_ids_a_wrong_size_and_escaping_names(tmp_path):
    images = [{"id": 1, "file_name": "1.png"}, {"id": 1, "file_name": "2.png"}]
    _coco(tmp_path / "dup", [], images)
    with pytest.raises(InputError, match="image 1: duplicate image id 1"):
        load_detection(tmp_path / "dup")
    images = [{"id": 1, "file_name": "1.png", "width": 50, "height": 30}, {"id": 2, "file_name": "2.png"}]
    _coco(tmp_path / "size", [_box(1, 1, [1, 1, 2, 2])], images)
    splits = load_detection(tmp_path / "size", val_fraction=0.5)
    dataset = next(d for d in (splits.train, splits.val) if d.records[0].image.name == "1.png")
    with pytest.raises(InputError, match="says the image is 50×30, the file is 40×30"):
        dataset[0]
    _coco(tmp_path / "escape", [], [{"id": 1, "file_name": "../1.png"}])
    with pytest.raises(InputError, match="expected a relative file name inside"):
        load_detection(tmp_path / "escape")


def test_coco_named_splits_from_instances_files(tmp_path):
    _coco(tmp_path, [_box(1, 1, [1, 1, 4, 4])], name="annotations/instances_train2017.json")
    _coco(tmp_path, [_box(1, 2, [1, 1, 4, 4])], name="annotations/instances_val2017.json")
    splits = load_detection(tmp_path)
    assert len(splits.train) == len(splits.val) == 3 and splits.test is None
    assert splits.fingerprint == load_detection(tmp_path).fingerprint


def _voc_xml(path: Path, filename: str, objects: list[tuple[str, list]]) -> None:
    body = "".join(f"<object><name>{name}</name><difficult>0</difficult><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
                   f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>" for name, b in objects)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<annotation><filename>{filename}</filename><size><width>40</width><height>30</height>"
                    f"<depth>3</depth></size>{body}</annotation>")


def test_pascal_voc_folder(tmp_path):
    for i in range(4):
        _image(tmp_path / "JPEGImages" / f"im{i}.jpg", seed=i)
        _voc_xml(tmp_path / "Annotations" / f"im{i}.xml", f"im{i}.jpg", [("person", [2, 3, 20, 25]), ("car", [1, 1, 60, 9])])
    (tmp_path / "ImageSets" / "Main").mkdir(parents=True)
    (tmp_path / "ImageSets" / "Main" / "train.txt").write_text("im0\nim1\nim2\n")
    (tmp_path / "ImageSets" / "Main" / "val.txt").write_text("im3\n")
    splits = load_detection(tmp_path)
    assert splits.format == "voc" and splits.classes == ["__background__", "car", "person"]
    assert len(splits.train) == 3 and len(splits.val) == 1
    _, target = splits.val[0]
    assert target["boxes"].tolist() == [[2, 3, 20, 25], [1, 1, 40, 9]] and target["labels"].tolist() == [2, 1]
    _voc_xml(tmp_path / "Annotations" / "im0.xml", "im0.jpg", [("person", [2, 3, "x", 25])])
    with pytest.raises(InputError, match=r"im0\.xml object 0: expected a bndbox of numbers"):
        load_detection(tmp_path)
    (tmp_path / "Annotations" / "im0.xml").write_text("<annotation><object>")
    with pytest.raises(InputError, match=r"im0\.xml: expected Pascal VOC XML"):
        load_detection(tmp_path)


def test_yolo_folder(tmp_path):
    (tmp_path / "data.yaml").write_text("names: {0: cat, 1: dog}\n")
    for split, n in (("train", 3), ("val", 1)):
        for i in range(n):
            _image(tmp_path / "images" / split / f"{split}{i}.png", seed=i)
            (tmp_path / "labels" / split).mkdir(parents=True, exist_ok=True)
            (tmp_path / "labels" / split / f"{split}{i}.txt").write_text("1 0.5 0.5 0.5 0.4\n\n0 0.1 0.1 0.2 0.3 0.2 0.1\n")
    _image(tmp_path / "images" / "train" / "background.png")  # no label file: no objects
    splits = load_detection(tmp_path)
    assert splits.format == "yolo" and splits.classes == ["__background__", "cat", "dog"]
    assert len(splits.train) == 4 and len(splits.val) == 1
    _, target = splits.val[0]
    np.testing.assert_allclose(target["boxes"].tolist(), [[10, 9, 30, 21], [4, 3, 8, 9]], atol=1e-4)
    assert target["labels"].tolist() == [2, 1]
    assert len(splits.train[0][1]["boxes"]) == 0  # background.png
    (tmp_path / "labels" / "val" / "val0.txt").write_text("0 0.5 0.5 0.1 0.1\n5 0.5 0.5 0.1 0.1\n")
    with pytest.raises(InputError, match=r"val0\.txt line 2: class 5 is not one of the 2 in data\.yaml"):
        load_detection(tmp_path)
    (tmp_path / "labels" / "val" / "val0.txt").write_text("0 0.5 nan 0.1 0.1\n")
    with pytest.raises(InputError, match=r"val0\.txt line 1: expected finite box coordinates"):
        load_detection(tmp_path)


def _mask(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values.astype(np.uint8)).save(path)


def test_mask_folder_with_classes_ignore_and_v2_transform(tmp_path):
    for i in range(4):
        _image(tmp_path / "images" / f"m{i}.jpg", seed=i)
        mask = np.zeros((30, 40), np.uint8)
        mask[5:15, 10:30], mask[0] = 2, 255
        _mask(tmp_path / "masks" / f"m{i}.png", mask)
    _image(tmp_path / "images" / "unlabelled.jpg")
    (tmp_path / "classes.txt").write_text("background\nroad\ncar\n")
    splits = load_segmentation(tmp_path, val_fraction=0.25)
    assert splits.classes == ["background", "road", "car"] and len(splits.train) == 3 and len(splits.val) == 1
    assert [why for _, why in splits.skipped] == ["no mask"]
    image, mask = splits.train[0]
    assert type(mask).__name__ == "Mask" and mask.shape == (30, 40) and set(mask.unique().tolist()) == {0, 2, 255}
    augmented = splits.train.with_transform(segmentation_train_transform(16))
    image, mask = augmented[0]
    assert image.shape == (3, 16, 16) and mask.shape == (16, 16)
    assert set(mask.unique().tolist()) <= {0, 2, 255}  # nearest neighbours: no new values


def test_mask_folder_refuses_wrong_sizes_values_and_modes(tmp_path):
    for i in range(2):
        _image(tmp_path / "images" / f"m{i}.png", seed=i)
        _mask(tmp_path / "masks" / f"m{i}.png", np.zeros((30, 40)))
    (tmp_path / "classes.txt").write_text("a\nb\n")
    _mask(tmp_path / "masks" / "m0.png", np.zeros((30, 41)))
    _mask(tmp_path / "masks" / "m1.png", np.full((30, 40), 7))
    splits = load_segmentation(tmp_path, val_fraction=0.5)
    datasets = {d.pairs[0][0].name: d for d in (splits.train, splits.val)}
    with pytest.raises(InputError, match=r"m0\.png: the mask is 41×30, its image .*m0\.png is 40×30"):
        datasets["m0.png"][0]
    with pytest.raises(InputError, match=r"m1\.png: values \[7\] are no class index \(0 to 1, or 255 to ignore\)"):
        datasets["m1.png"][0]
    Image.new("RGB", (40, 30)).save(tmp_path / "masks" / "m1.png")
    with pytest.raises(InputError, match="expected a single-channel mask"):
        datasets["m1.png"][0]


def test_coco_polygons_as_class_maps(tmp_path):
    _coco(tmp_path, [_box(1, i, [4, 4, 12, 10], category_id=3, segmentation=[[4, 4, 16, 4, 16, 14, 4, 14]])
                     for i in (1, 2, 3)] + [_box(2, 1, [20, 2, 10, 10], segmentation=[[20, 2, 30, 2, 30, 12, 20, 12]])])
    splits = load_segmentation(tmp_path, val_fraction=0.34)
    assert splits.classes == ["__background__", "dog", "cat"] and len(splits.train) + len(splits.val) == 3
    dataset = next(d for d in (splits.train, splits.val) if d.objects.records[0].image.name == "1.png")
    image, mask = dataset[0]
    assert type(mask).__name__ == "Mask" and mask.shape == (30, 40)
    assert (mask[6:12, 6:14] == 1).all() and (mask[4:10, 22:28] == 2).all() and mask[25, 35] == 0


def test_unknown_data_is_refused():
    with pytest.raises(UnknownDatasetError):
        load_detection("vision/no-such-boxes")
    with pytest.raises(UnknownDatasetError):
        load_segmentation("vision/no-such-masks")


def test_a_folder_in_no_known_format(tmp_path):
    with pytest.raises(InputError, match="expected a COCO .* YOLO .* or Pascal VOC"):
        load_detection(tmp_path)
    with pytest.raises(InputError, match="expected images/ and masks/ folders"):
        load_segmentation(tmp_path)
