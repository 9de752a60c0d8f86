"""timm:NAME and torchvision:MODEL[.WEIGHTS] through zoo.load, offline, on small local fixtures.

The fixtures stand in for the upstream caches: a timm test model's weights in a
Hugging Face cache layout (``models--timm--NAME/snapshots/<commit>/``) and a
torchvision state dict under ``$TORCH_HOME/hub/checkpoints/`` with the exact file
name torchvision uses. Nothing here opens a connection.
"""
from __future__ import annotations

import os
import re
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import zoo
from zoo.cache import sha256_file
from zoo.errors import OfflineError, UnknownModelError, UnsafeFormatError
from zoo.registry import ModelSpec, WeightFile, get_registry

timm = pytest.importorskip("timm")
tvm = pytest.importorskip("torchvision.models")

TIMM_NAME = "test_resnet.r160_in1k"  # timm's own 0.5M-parameter test model, ImageNet-1k head
TIMM_COMMIT = "0123456789abcdef0123456789abcdef01234567"
TV_NAME = "shufflenet_v2_x0_5"  # 1.4M parameters
TV_WEIGHTS = tvm.ShuffleNet_V2_X0_5_Weights.IMAGENET1K_V1


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    """A fake HF cache with the timm model and a torch hub cache with the torchvision one."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    hf_cache = tmp_path_factory.mktemp("hf_hub")
    timm_ref = timm.create_model(TIMM_NAME, pretrained=False).eval()
    repo = hf_cache / f"models--timm--{TIMM_NAME}"
    snapshot = repo / "snapshots" / TIMM_COMMIT
    snapshot.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in timm_ref.state_dict().items()}, snapshot / "model.safetensors")
    (snapshot / "config.json").write_text('{"architecture": "test_resnet", "num_classes": 1000}')
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(TIMM_COMMIT)

    torch_home = tmp_path_factory.mktemp("torch_home")
    tv_ref = tvm.get_model(TV_NAME, weights=None).eval()
    tv_file = _torch_hub_checkpoint(torch_home, tv_ref.state_dict())
    yield {
        "hf_cache": hf_cache,
        "timm_file": snapshot / "model.safetensors",
        "timm_state": timm_ref.state_dict(),
        "torch_home": torch_home,
        "tv_file": tv_file,
        "tv_state": tv_ref.state_dict(),
        "empty": tmp_path_factory.mktemp("empty"),
    }
    TV_WEIGHTS.value.url = TV_URL


TV_URL = TV_WEIGHTS.url


def _torch_hub_checkpoint(torch_home: Path, state) -> Path:
    """``state`` pickled into torch's hub cache the way torch.hub names files (NAME-<sha256 prefix>.pth); the
    weights enum's URL is pointed at that name, as the real file's name carries the real file's prefix."""
    checkpoints = torch_home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    staged = checkpoints / "staged.pth"
    torch.save(state, staged)
    path = staged.rename(checkpoints / f"shufflenetv2_x0.5-{sha256_file(staged)[:10]}.pth")
    TV_WEIGHTS.value.url = TV_URL.rsplit("/", 1)[0] + "/" + path.name
    return path


@pytest.fixture(autouse=True)
def upstream_caches(fixtures, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(fixtures["hf_cache"]))
    monkeypatch.setenv("TORCH_HOME", str(fixtures["torch_home"]))
    monkeypatch.delenv("ZOO_OFFLINE", raising=False)
    return fixtures


@pytest.fixture(scope="module")
def timm_model(fixtures):
    with pytest.MonkeyPatch.context() as mp:  # module scope runs before the per-test environment
        mp.setenv("HF_HUB_CACHE", str(fixtures["hf_cache"]))
        return zoo.load(f"timm:{TIMM_NAME}", device="cpu")


@pytest.fixture(scope="module")
def tv_model(fixtures):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(fixtures["torch_home"]))
        return zoo.load(f"torchvision:{TV_NAME}", device="cpu")


def _picture(seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(180, 240, 3), dtype=np.uint8))


def _same_card(a, b) -> bool:
    """Equal cards, apart from where their weights file lives."""
    return {**a.to_dict(), "files": None} == {**b.to_dict(), "files": None}


def _same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# -- timm -----------------------------------------------------------------------
def test_timm_load_has_the_cached_weights_and_a_card_from_timm(timm_model, fixtures):
    from timm.data import ImageNetInfo

    assert _same_state(timm_model.net.state_dict(), fixtures["timm_state"])
    card = timm_model.card
    assert (card.id, card.domain, card.task, card.architecture) == (
        f"timm:{TIMM_NAME}", "vision", "image-classification", "timm")
    assert card.arch_args == {"model_name": TIMM_NAME, "num_classes": 1000}
    assert card.labels == ImageNetInfo("imagenet-1k").label_descriptions()
    assert card.labels[0] == "tench, Tinca tinca"
    # timm.data.resolve_data_config of test_resnet.r160_in1k
    assert card.preprocessing == {"size": [160, 160], "channels": 3, "mean": [0.5] * 3, "std": [0.5] * 3,
                                  "crop_pct": 0.95, "crop_mode": "center", "interpolation": "bilinear"}
    assert card.input == {"shape": [3, 160, 160], "dtype": "float32"}
    assert card.params == sum(p.numel() for p in timm_model.net.parameters())
    assert (card.license, card.source) == ("apache-2.0", f"hf://timm/{TIMM_NAME}")
    entry = card.files["model.safetensors"]
    assert entry["sha256"] == sha256_file(fixtures["timm_file"])
    assert entry["source"] == f"hf://timm/{TIMM_NAME}/model.safetensors@{TIMM_COMMIT}"
    assert Path(entry["path"]) == fixtures["timm_file"]


def test_timm_predict_takes_a_pil_image(timm_model):
    assert timm_model.transform(_picture()).shape == (3, 160, 160)
    prediction = timm_model.predict(_picture())
    assert prediction["label"] in timm_model.card.labels and 0 < prediction["score"] <= 1
    assert len(timm_model.predict([_picture(1), _picture(2)])) == 2


def test_timm_bare_architecture_resolves_to_its_default_tag():
    model = zoo.load("timm:test_resnet", device="cpu")
    assert model.card.id == f"timm:{TIMM_NAME}"


def test_timm_save_then_load_dir_round_trips(timm_model, tmp_path):
    timm_model.save(tmp_path / "copy")
    again = zoo.load(tmp_path / "copy", device="cpu")
    assert _same_card(again.card, timm_model.card)
    assert _same_state(again.net.state_dict(), timm_model.net.state_dict())
    x = torch.randn(2, 3, 160, 160)
    with torch.inference_mode():
        assert torch.equal(again(x), timm_model(x))


def test_timm_num_classes_gives_a_fresh_head_on_the_pretrained_body(fixtures):
    model = zoo.load(f"timm:{TIMM_NAME}", num_classes=3, device="cpu")
    assert model.net.get_classifier().out_features == 3
    assert model(torch.randn(1, 3, 160, 160)).shape == (1, 3)
    assert model.card.labels == ["class_0", "class_1", "class_2"]
    assert model.card.arch_args["num_classes"] == 3
    assert model.card.provenance["finetune_from"] == f"timm:{TIMM_NAME}"
    body = {k: v for k, v in fixtures["timm_state"].items() if not k.startswith("fc.")}
    mine = model.net.state_dict()
    assert all(torch.equal(mine[k], v) for k, v in body.items())


def test_timm_pretrained_false_needs_no_weights(monkeypatch, fixtures):
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(fixtures["empty"]))
    model = zoo.load(f"timm:{TIMM_NAME}", pretrained=False, device="cpu")
    assert model.card.files == {}
    assert not torch.equal(model.net.state_dict()["conv1.0.weight"], fixtures["timm_state"]["conv1.0.weight"])


def test_list_models_reaches_timm():
    names = zoo.list_models("timm:*resnet*")
    assert "timm:resnet50.a1_in1k" in names and "timm:resnet18.tv_in1k" in names
    assert all(n.startswith("timm:") and "resnet" in n for n in names)


def test_fetch_of_a_prefixed_id_returns_the_cached_file(fixtures, isolated_zoo_home):
    from backends.state import load_state

    assert zoo.fetch(f"timm:{TIMM_NAME}") == [fixtures["timm_file"]]
    [converted] = zoo.fetch(f"torchvision:{TV_NAME}")  # the store's safetensors, converted from the pickle
    assert converted.parent == isolated_zoo_home / "blobs" / "sha256"
    assert _same_state(load_state(converted), fixtures["tv_state"])


def test_unknown_upstream_names_suggest_close_ones():
    with pytest.raises(UnknownModelError, match="timm:test_resnet.r160_in1k"):
        zoo.load("timm:test_resnet.bogus_tag")
    with pytest.raises(UnknownModelError, match="torchvision:resnet18.imagenet1k_v1"):
        zoo.load("torchvision:resnet18.imagenet9k")
    with pytest.raises(UnknownModelError):
        zoo.load("torchvision:resnet1")


# -- offline --------------------------------------------------------------------
@pytest.fixture
def no_sockets(monkeypatch):
    """Record (and refuse) every connection or DNS lookup, loopback included."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise AssertionError(f"a connection was attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


def test_offline_with_nothing_cached_raises_offline_error_and_opens_no_socket(monkeypatch, fixtures, no_sockets):
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(fixtures["empty"]))
    monkeypatch.setenv("TORCH_HOME", str(fixtures["empty"]))
    with pytest.raises(OfflineError, match=re.escape(f"zoo fetch timm:{TIMM_NAME}")):
        zoo.load(f"timm:{TIMM_NAME}")
    with pytest.raises(OfflineError, match=re.escape(f"zoo fetch torchvision:{TV_NAME}.imagenet1k_v1")):
        zoo.load(f"torchvision:{TV_NAME}")
    with pytest.raises(OfflineError, match=re.escape("zoo fetch vision/resnet18.tv_in1k")):
        zoo.load("vision/resnet18.tv_in1k")
    assert no_sockets == []


def test_offline_with_the_files_cached_loads(monkeypatch, fixtures, no_sockets):
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    assert _same_state(zoo.load(f"timm:{TIMM_NAME}").net.state_dict(), fixtures["timm_state"])
    assert _same_state(zoo.load(f"torchvision:{TV_NAME}").net.state_dict(), fixtures["tv_state"])
    assert no_sockets == []


# -- torchvision ----------------------------------------------------------------
def test_torchvision_load_has_the_cached_weights_and_the_weights_metadata(tv_model, fixtures):
    assert _same_state(tv_model.net.state_dict(), fixtures["tv_state"])
    card = tv_model.card
    assert card.id == f"torchvision:{TV_NAME}.imagenet1k_v1"
    assert card.architecture == "torchvision"
    assert card.arch_args == {"model_name": TV_NAME, "num_classes": 1000}
    assert card.labels == TV_WEIGHTS.meta["categories"]
    # weights.transforms(): resize 256, centre crop 224, bilinear
    assert card.preprocessing == {"size": [224, 224], "channels": 3, "mean": [0.485, 0.456, 0.406],
                                  "std": [0.229, 0.224, 0.225], "crop_pct": 224 / 256, "crop_mode": "center",
                                  "interpolation": "bilinear"}
    assert card.metric("accuracy")["value"] == pytest.approx(TV_WEIGHTS.meta["_metrics"]["ImageNet-1K"]["acc@1"] / 100)
    assert card.source == TV_WEIGHTS.url
    entry = card.files[fixtures["tv_file"].name]
    assert entry["format"] == "torch-pickle" and entry["sha256_prefix"] == sha256_file(fixtures["tv_file"])[:10]
    prediction = tv_model.predict(_picture())
    assert prediction["label"] in TV_WEIGHTS.meta["categories"]


def test_torchvision_named_weights_and_num_classes(fixtures):
    model = zoo.load(f"torchvision:{TV_NAME}.IMAGENET1K_V1", num_classes=3, device="cpu")
    assert model.card.id == f"torchvision:{TV_NAME}.imagenet1k_v1"
    assert model.net.fc.out_features == 3 and model.card.labels == ["class_0", "class_1", "class_2"]
    mine = model.net.state_dict()
    assert all(torch.equal(mine[k], v) for k, v in fixtures["tv_state"].items() if not k.startswith("fc."))
    assert model.card.metrics == []


def test_torchvision_save_then_load_dir_round_trips(tv_model, tmp_path):
    tv_model.save(tmp_path / "copy")
    again = zoo.load(tmp_path / "copy", device="cpu")
    assert _same_card(again.card, tv_model.card)
    assert _same_state(again.net.state_dict(), tv_model.net.state_dict())


_unpickled = []


def _boom(*args):  # what a malicious pickle would call; weights_only must never reach it
    _unpickled.append(args)
    return {}


class _Evil:
    def __reduce__(self):
        return (_boom, ("pwned",))


def test_torchvision_pickles_are_read_weights_only(monkeypatch, tmp_path, fixtures):
    monkeypatch.setattr(TV_WEIGHTS.value, "url", TV_WEIGHTS.url)
    _torch_hub_checkpoint(tmp_path, {"conv1.0.weight": _Evil()})
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(UnsafeFormatError, match="weights_only=True"):
        zoo.load(f"torchvision:{TV_NAME}")
    assert _unpickled == []


def test_torchvision_pickles_are_converted_once(monkeypatch, fixtures, isolated_zoo_home):
    first = zoo.load(f"torchvision:{TV_NAME}", device="cpu")

    def no_unpickling(*args, **kwargs):
        raise AssertionError("a later load unpickled the checkpoint again")

    monkeypatch.setattr(torch, "load", no_unpickling)
    monkeypatch.setenv("TORCH_HOME", str(fixtures["empty"]))  # and needs torch's hub cache no more
    again = zoo.load(f"torchvision:{TV_NAME}", device="cpu")
    assert _same_state(again.net.state_dict(), first.net.state_dict())
    [record] = (isolated_zoo_home / "converted").iterdir()  # recorded: pickle sha256 -> safetensors blob
    assert record.name == f"{sha256_file(fixtures['tv_file'])}.json"


def test_a_torch_hub_file_whose_name_prefix_does_not_match_is_refused(monkeypatch, tmp_path, fixtures):
    from zoo.errors import WeightsIntegrityError

    monkeypatch.setattr(TV_WEIGHTS.value, "url", TV_WEIGHTS.url)
    path = _torch_hub_checkpoint(tmp_path, fixtures["tv_state"])
    path.write_bytes(path.read_bytes() + b"\0")  # altered after torch.hub named it
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsIntegrityError, match=re.escape(str(path))):
        zoo.load(f"torchvision:{TV_NAME}")


def test_list_models_reaches_torchvision():
    names = zoo.list_models("torchvision:*resnet*")
    assert "torchvision:resnet18.imagenet1k_v1" in names and "torchvision:resnet50.imagenet1k_v2" in names
    assert zoo.list_models("torchvision:resnet18") == ["torchvision:resnet18.imagenet1k_v1"]


# -- first-class ids --------------------------------------------------------------
PINNED = ["resnet18.tv_in1k", "resnet50.a1_in1k", "mobilenetv3_large_100.ra_in1k", "efficientnet_b0.ra_in1k",
          "convnext_tiny.in12k_ft_in1k"]


@pytest.mark.parametrize("name", PINNED)
def test_first_class_ids_pin_the_timm_file_and_match_timm_metadata(name):
    from timm.data import ImageNetInfo, resolve_data_config

    spec = get_registry().model(f"vision/{name}")
    (wf,) = spec.weights
    assert re.fullmatch(r"[0-9a-f]{64}", wf.sha256) and wf.format == "safetensors"
    assert re.fullmatch(rf"hf://timm/{re.escape(name)}/model\.safetensors@[0-9a-f]{{40}}", wf.source)
    assert (spec.architecture, dict(spec.arch_args)) == ("timm", {"model_name": name, "num_classes": 1000})
    cfg = timm.models.get_pretrained_cfg(name)
    with torch.device("meta"):
        net = timm.create_model(name)
    data = resolve_data_config({}, model=net)
    card = zoo.info(f"vision/{name}")
    assert card.preprocessing == {"size": list(data["input_size"][1:]), "channels": 3, "mean": list(data["mean"]),
                                  "std": list(data["std"]), "crop_pct": data["crop_pct"],
                                  "crop_mode": data["crop_mode"], "interpolation": data["interpolation"]}
    assert card.params == sum(p.numel() for p in net.parameters())
    assert card.license == cfg.license
    assert card.labels == ImageNetInfo("imagenet-1k").label_descriptions()


def test_a_pinned_timm_file_loads_through_the_zoo_cache(monkeypatch, fixtures):
    """The first-class path (hf:// source, pinned sha256, timm architecture, strict load), on the fixture."""
    spec = ModelSpec(
        id="vision/test_resnet.fixture",
        task="image-classification",
        architecture="timm",
        arch_args={"model_name": TIMM_NAME, "num_classes": 1000},
        weights=(WeightFile(name="model.safetensors", sha256=sha256_file(fixtures["timm_file"]),
                            source=f"hf://timm/{TIMM_NAME}/model.safetensors@{TIMM_COMMIT}"),),
        card={"preprocessing": {"size": [160, 160], "mean": [0.5] * 3, "std": [0.5] * 3, "crop_pct": 0.95,
                                "interpolation": "bilinear"}},
    )
    monkeypatch.setitem(get_registry().models, spec.id, spec)
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    model = zoo.load(spec.id, device="cpu")
    assert _same_state(model.net.state_dict(), fixtures["timm_state"])
    assert model.predict(_picture())["index"] in range(1000)
