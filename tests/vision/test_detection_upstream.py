"""torchvision's detectors and segmenters through torchvision:, offline.

Random init (``pretrained=False``) for predictions; for the pretrained path, a state dict
written locally under ``$TORCH_HOME/hub/checkpoints/`` with the file name torchvision uses
(as tests/vision/test_upstream.py does for classifiers), so the store's pin, its one-time
conversion to safetensors and the strict load are exercised without a connection.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import zoo
from zoo.cache import sha256_file

tvm = pytest.importorskip("torchvision.models")

# The models the issue names, and the torchvision class each builds.
DETECTORS = {"fasterrcnn_mobilenet_v3_large_fpn": "FasterRCNN", "fasterrcnn_resnet50_fpn_v2": "FasterRCNN",
             "retinanet_resnet50_fpn_v2": "RetinaNet", "fcos_resnet50_fpn": "FCOS",
             "ssdlite320_mobilenet_v3_large": "SSD", "maskrcnn_resnet50_fpn_v2": "MaskRCNN"}
SEGMENTERS = {"deeplabv3_mobilenet_v3_large": "DeepLabV3", "deeplabv3_resnet50": "DeepLabV3",
              "lraspp_mobilenet_v3_large": "LRASPP", "fcn_resnet50": "FCN"}


def _picture(height=90, width=120, seed=0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def ssdlite():
    return zoo.load("torchvision:ssdlite320_mobilenet_v3_large", pretrained=False, device="cpu")


@pytest.fixture(scope="module")
def lraspp():
    return zoo.load("torchvision:lraspp_mobilenet_v3_large", pretrained=False, device="cpu")


@pytest.fixture(scope="module")
def small_lraspp(lraspp, tmp_path_factory):
    """The same network saved, its card's input made 64 pixels (520 costs seconds a picture here), loaded back."""
    folder = lraspp.save(tmp_path_factory.mktemp("lraspp") / "small")
    card = json.loads((folder / "card.json").read_text())
    card["preprocessing"]["resize_size"] = 64
    (folder / "card.json").write_text(json.dumps(card))
    return zoo.load(str(folder), device="cpu")


@pytest.mark.parametrize("model", [*DETECTORS, *SEGMENTERS])
def test_every_named_model_is_listed_and_builds_as_its_weights_need(model):
    from vision.upstream_dense import build_for_weights, dense_task

    weights = tvm.get_model_weights(model).DEFAULT
    assert f"torchvision:{model}.{weights.name.lower()}" in zoo.list_models(f"torchvision:{model}")
    assert dense_task(tvm, model) == ("object-detection" if model in DETECTORS else "semantic-segmentation")
    with torch.device("meta"):  # the layout only: no memory, no download
        net = build_for_weights(model, weights.name)
    assert type(net).__name__ == {**DETECTORS, **SEGMENTERS}[model]


def _layout(net) -> list:
    """What a network's layout is: each module's type and norm eps, each tensor's name and shape, which train."""
    modules = [(name, type(m).__name__, getattr(m, "eps", None)) for name, m in net.named_modules()]
    trained = [(name, p.requires_grad) for name, p in net.named_parameters()]
    return modules + [(name, tuple(t.shape)) for name, t in net.state_dict().items()] + trained


@pytest.mark.parametrize("model, weights", [(m, w.name) for module in (tvm.detection, tvm.segmentation)
                                            for m in tvm.list_models(module=module) for w in tvm.get_model_weights(m)])
def test_the_layout_is_torchvisions_pretrained_one(model, weights, monkeypatch):
    """torchvision's own pretrained build (its download replaced by our network's state) has our layout: frozen
    batch norm in a detector's backbone with eps as torchvision sets it, its first stages not trained, auxiliary
    heads on a segmenter."""
    from torchvision.models._api import WeightsEnum

    from vision.upstream_dense import build_for_weights

    with torch.device("meta"):  # the layout only: no memory, no download
        ours = build_for_weights(model, weights)
        monkeypatch.setattr(WeightsEnum, "get_state_dict", lambda *_, **__: ours.state_dict())
        theirs = tvm.get_model(model, weights=tvm.get_model_weights(model)[weights])  # loads strictly
    assert _layout(ours) == _layout(theirs)


def test_detector_predicts_boxes_in_input_pixels_with_coco_names(ssdlite):
    card = ssdlite.card
    assert card.task == "object-detection" and card.labels[1] == "person" and len(card.labels) == 91
    assert card.preprocessing["in_network"]["fixed_size"] == [320, 320]
    prediction = ssdlite.predict(_picture(90, 120))
    boxes = np.asarray(prediction["boxes"])
    assert boxes.shape[1] == 4 and len(prediction["scores"]) == len(prediction["labels"]) == len(boxes) > 0
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= 120).all() and (boxes[:, 3] <= 90).all()
    assert (boxes[:, 2] >= boxes[:, 0]).all() and set(prediction["labels"]) <= set(card.labels)
    assert all(isinstance(label, str) for label in prediction["labels"])
    assert ssdlite.adapter.describe(prediction).startswith(f"{len(boxes)} boxes: ")


def test_detector_landmarks_come_from_keypoints(ssdlite):
    outputs = [{"boxes": torch.tensor([[1.0, 2.0, 5.0, 9.0]]), "scores": torch.tensor([0.9]),
                "labels": torch.tensor([1]), "keypoints": torch.tensor([[[2.0, 3.0, 1.0], [4.0, 5.0, 1.0]]])}]
    [prediction] = ssdlite.adapter.postprocess(outputs)
    assert prediction == {"boxes": [[1.0, 2.0, 5.0, 9.0]], "scores": [pytest.approx(0.9)], "labels": ["person"],
                          "landmarks": [[[2.0, 3.0], [4.0, 5.0]]]}


def test_segmenter_gives_a_mask_at_the_input_size(lraspp, small_lraspp):
    card = lraspp.card
    assert card.task == "semantic-segmentation" and card.labels[0] == "__background__" and len(card.labels) == 21
    assert card.preprocessing["resize_size"] == 520 and small_lraspp.card.preprocessing["resize_size"] == 64
    network_input = lraspp.transform(_picture(50, 70))
    assert network_input.shape == (3, 520, 728)  # the shorter side to 520, as torchvision's preset
    first, second = small_lraspp.predict([_picture(50, 70), _picture(64, 40, seed=1)])
    assert first["mask"].shape == (50, 70) and second["mask"].shape == (64, 40)
    assert first["labels"][15] == "person" and first["mask"].min() >= 0 and first["mask"].max() < 21
    assert small_lraspp.adapter.describe(first).startswith("mask 50×70: ")


def test_random_init_save_and_load_round_trip(lraspp, small_lraspp):
    state, again = lraspp.net.state_dict(), small_lraspp.net.state_dict()
    assert state.keys() == again.keys() and all(torch.equal(state[k], again[k]) for k in state)


def _checkpoint(torch_home, weights, state) -> None:
    """``state`` pickled into torch's hub cache under the name torch.hub gives it; the enum's URL points at it."""
    checkpoints = torch_home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    staged = checkpoints / "staged.pth"
    torch.save(state, staged)
    stem = weights.url.rsplit("/", 1)[1].rsplit("-", 1)[0]
    path = staged.rename(checkpoints / f"{stem}-{sha256_file(staged)[:10]}.pth")
    weights.value.url = weights.url.rsplit("/", 1)[0] + "/" + path.name


@pytest.mark.parametrize("model", ["ssdlite320_mobilenet_v3_large", "lraspp_mobilenet_v3_large"])
def test_pretrained_weights_are_pinned_converted_once_and_loaded_strictly(model, tmp_path, monkeypatch,
                                                                          isolated_zoo_home):
    from vision.upstream_dense import build_for_weights

    weights = tvm.get_model_weights(model).DEFAULT
    monkeypatch.setattr(weights.value, "url", weights.url)  # restored after the test
    torch.manual_seed(0)
    reference = build_for_weights(model, weights.name).eval()  # random values in the pretrained layout
    _checkpoint(tmp_path, weights, reference.state_dict())
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    first = zoo.load(f"torchvision:{model}", device="cpu")
    state = first.net.state_dict()
    assert state.keys() == reference.state_dict().keys()
    assert all(torch.equal(state[k], v) for k, v in reference.state_dict().items())
    assert first.card.metrics and first.card.arch_args["weights"] == weights.name

    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("a later load unpickled the checkpoint again"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))  # the store's safetensors suffice now
    again = zoo.load(f"torchvision:{model}", device="cpu")
    assert len(list((isolated_zoo_home / "converted").iterdir())) == 1  # pickle sha256 -> safetensors blob
    first.save(tmp_path / "saved")  # the folder rebuilds the same pretrained layout and loads strictly
    saved = zoo.load(str(tmp_path / "saved"), device="cpu")
    for other in (again, saved):
        assert all(torch.equal(other.net.state_dict()[k], v) for k, v in state.items())


def test_a_new_head_on_pretrained_dense_models_is_refused_for_now():
    from zoo.errors import InputError

    with pytest.raises(InputError, match="not built for object-detection models yet"):
        zoo.load("torchvision:ssdlite320_mobilenet_v3_large", num_classes=3)
