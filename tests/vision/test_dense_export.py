"""``zoo export`` of segmenters (detectors: test_detector_export.py): an ONNX bundle (dynamic batch, height and width) that zoo.runtime runs without
torch, its masks checked against eager on real photos; the numpy pieces checked against torch."""
import json

import numpy as np
import pytest
import torch
from skimage import data

import zoo
from tests.bundles import run_without_torch
from vision.models.efficientnet import LITE_MEAN, LITE_STD
from vision.transforms import PictureBatcher
from zoo.runtime import resize_bilinear


@pytest.mark.parametrize("size_in, size_out", [((8, 12), (50, 70)), ((20, 30), (7, 9)), ((5, 5), (64, 40))])
def test_resize_bilinear_is_torch_interpolate_without_align_corners(size_in, size_out):
    maps = np.random.default_rng(0).standard_normal((3, *size_in)).astype(np.float32)
    expected = torch.nn.functional.interpolate(torch.from_numpy(maps)[None], size=size_out, mode="bilinear",
                                               align_corners=False)[0].numpy()
    assert np.abs(resize_bilinear(maps, *size_out) - expected).max() < 1e-5


@pytest.mark.parametrize("spec", [{"resize_size": 64}, {"size": [48, 80]}])
def test_picture_batcher_prepares_pictures_as_the_segmentation_task(spec):
    spec = {**spec, "mean": LITE_MEAN, "std": LITE_STD}
    model = tiny_segmenter(spec)
    batcher = PictureBatcher(spec)
    for photo in (data.coffee(), data.chelsea()):
        batch = batcher([photo])
        assert batch["sizes"].tolist() == [list(photo.shape[:2])]
        assert np.abs(batch["input"][0] - model.adapter.transform(photo).numpy()).max() < 1e-4
    with pytest.raises(zoo.errors.InputError, match="one picture a batch"):
        batcher([data.coffee(), data.chelsea()])


def tiny_segmenter(preprocessing, classes=("background", "shirt", "bag"), architecture="lraspp_efficientnet_lite0"):
    from zoo.card import ModelCard
    from zoo.hub import build

    card = ModelCard(id=f"vision/{architecture}.custom", domain="vision", task="semantic-segmentation",
                     architecture=architecture,
                     arch_args={"num_classes": len(classes), "fine_channels": 8},
                     labels=list(classes), preprocessing=preprocessing, license="Apache-2.0")
    torch.manual_seed(0)
    return build(card)


def _masks_without_torch(bundle, photos_npy) -> list:
    return run_without_torch(f"""
        import json, numpy as np
        from zoo.runtime import load_bundle
        model = load_bundle({str(bundle)!r})
        print(json.dumps([{{"mask": p["mask"].tolist(), "labels": p["labels"]}}
                          for p in model.predict(list(np.load({str(photos_npy)!r})))]))
    """)


def _check_exported_segmenter(model, tmp_path, shape):
    from zoo.export import export

    bundle = export(model, tmp_path / "bundle")
    parity = json.loads((bundle / "parity.json").read_text())
    assert parity["passed"] and parity["predictions"]["passed"] and parity["predictions"]["min"] >= 0.999
    assert [row["photo"] for row in parity["predictions"]["photos"]] == [
        "skimage.data.astronaut", "skimage.data.coffee", "skimage.data.chelsea"]
    spec = json.loads((bundle / "bundle.json").read_text())
    assert spec["postprocessing"] == {"kind": "segmentation"} and spec["inputs"][0]["shape"] == shape
    np.save(tmp_path / "photos.npy", np.stack([data.coffee()[:200, :300], data.chelsea()[50:250, 100:400]]))
    got = _masks_without_torch(bundle, tmp_path / "photos.npy")
    for prediction, photo in zip(got, np.load(tmp_path / "photos.npy")):
        expected = model.predict(photo)
        assert (np.asarray(prediction["mask"]) == expected["mask"]).mean() >= 0.999
        assert {int(k): v for k, v in prediction["labels"].items()} == expected["labels"]


@pytest.mark.slow
@pytest.mark.parametrize("architecture", ["lraspp_efficientnet_lite0", "fpn_efficientnet_lite0"])
def test_efficientnet_segmenters_export_and_run_without_torch(tmp_path, architecture):
    model = tiny_segmenter({"channels": 3, "array_range": [0, 255], "size": [64, 64], "mean": LITE_MEAN,
                            "std": LITE_STD, "interpolation": "bilinear"}, architecture=architecture)
    _check_exported_segmenter(model, tmp_path, [None, 3, 64, 64])  # one size for every picture: only the batch varies


@pytest.mark.slow
def test_torchvision_lraspp_exports_and_runs_without_torch(tmp_path):
    model = zoo.load("torchvision:lraspp_mobilenet_v3_large", pretrained=False, device="cpu")
    folder = model.save(tmp_path / "small")  # the card's input made 64 pixels: 520 costs seconds a picture here
    card = json.loads((folder / "card.json").read_text())
    card["preprocessing"]["resize_size"] = 64
    (folder / "card.json").write_text(json.dumps(card))
    _check_exported_segmenter(zoo.load(str(folder), device="cpu"), tmp_path, [None, 3, None, None])  # short side


def test_mtcnn_refuses_to_export_saying_its_cascade_is_out_of_scope(tmp_path):
    from zoo.errors import BackendError
    from zoo.export import export
    from zoo.hub import build, info

    with pytest.raises(BackendError, match="MTCNN does not export to ONNX: its cascade"):
        export(build(info("vision/mtcnn.face")), tmp_path / "faces")


@pytest.mark.parametrize("spec, message", [({"resize_size": 0}, "positive integers"),
                                           ({"size": [64, 64], "std": [0, 1, 1]}, "non-zero std"),
                                           ({"size": [64], "mean": [0.5, 0.5]}, "1 or 3 values"),
                                           ({"size": [64], "interpolation": "cubic"}, "interpolation")])
def test_a_bad_picture_spec_is_an_input_error(spec, message):
    with pytest.raises(zoo.errors.InputError, match=message):
        PictureBatcher.from_bundle(None, spec)
