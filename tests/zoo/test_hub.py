import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

import zoo
from vision.datasets import digits
from zoo.errors import InputError, OfflineError, UnknownModelError, WeightsIntegrityError
from zoo.registry import ModelSpec, WeightFile, get_registry

DIGITS_ID = "vision/digits-cnn.sklearn"


@pytest.fixture(scope="module")
def model():
    return zoo.load(DIGITS_ID, device="cpu")


def test_list_models_filters_by_pattern_domain_task_and_weights():
    assert DIGITS_ID in zoo.list_models("vision/*")
    assert zoo.list_models("vision/digits-*", domain="vision", task="image-classification", pretrained=True) == [DIGITS_ID]
    assert zoo.list_models("vision/*", domain="nlp") == []
    assert DIGITS_ID not in zoo.list_models(pretrained=False)


def test_unknown_id_lists_close_matches():
    with pytest.raises(UnknownModelError, match="did you mean: vision/digits-cnn.sklearn") as info:
        zoo.load("vision/digits-cnn")
    assert DIGITS_ID in info.value.suggestions


def test_pretrained_weights_reach_the_accuracy_their_card_records(model):
    recorded = model.card.metric("accuracy", split="test")["value"]
    assert recorded >= 0.98
    test = digits().test
    predictions = model.predict([test.raw(i) for i in range(len(test))])
    accuracy = np.mean([p["index"] == label for p, label in zip(predictions, test.labels)])
    assert accuracy == pytest.approx(recorded, abs=1e-6)


def test_predict_takes_raw_arrays_and_pil_images(model):
    images = load_digits().images
    single = model.predict(images[0])
    assert single["label"] == "0" and 0 < single["score"] <= 1 and len(single["top_k"]) == 5
    pil = Image.fromarray((images[0] / 16 * 255).astype(np.uint8)).resize((32, 32))
    assert model.predict(pil)["label"] == "0"
    assert [p["label"] for p in model.predict(list(images[:3]))] == ["0", "1", "2"]
    assert not model.training
    model.train()  # predict switches to eval for the call and restores the mode it found
    model.predict(images[0])
    assert model.training
    model.eval()


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((3, 5)), r"8×8 array .* shape \(3, 5\)"),
        (np.zeros((8, 8, 3)), r"shape \(8, 8, 3\)"),
        (np.zeros((8, 8), dtype=complex), "dtype complex128"),
        (np.full((8, 8), 200, dtype=np.uint8), r"values in \[0, 16\]"),
    ],
)
def test_predict_rejects_wrong_shape_channels_and_dtype(model, bad, message):
    with pytest.raises(InputError, match=message):
        model.predict(bad)


def test_save_then_load_gives_an_equal_model(model, tmp_path):
    model.save(tmp_path / "copy")
    again = zoo.load(tmp_path / "copy", device="cpu")
    assert again.card == model.card
    mine, theirs = model.net.state_dict(), again.net.state_dict()
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    x = load_digits().images[:5]
    assert model.predict(list(x)) == again.predict(list(x))
    assert zoo.info(str(tmp_path / "copy")).id == DIGITS_ID


def test_tampered_saved_weights_are_refused(model, tmp_path):
    model.save(tmp_path / "copy")
    weights = tmp_path / "copy" / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(WeightsIntegrityError, match="weights.safetensors: expected [0-9a-f]{64}, got [0-9a-f]{64}"):
        zoo.load(tmp_path / "copy")


def test_num_classes_replaces_the_head_and_keeps_the_backbone(model):
    three = zoo.load(DIGITS_ID, num_classes=3, device="cpu")
    assert three(torch.zeros(2, 1, 8, 8)).shape == (2, 3)
    assert three.card.labels == ["class_0", "class_1", "class_2"] and three.card.metrics == []
    assert torch.equal(three.net.features[0][0].weight, model.net.features[0][0].weight)
    assert len(three.predict(np.zeros((8, 8)))["top_k"]) == 3


def test_a_new_head_gives_the_task_its_spec_names(monkeypatch):
    import dataclasses

    from zoo.registry import TaskSpec, resolve_ref

    registry = get_registry()
    plain = registry.task("image-classification")
    headed_adapter = type("HeadedAdapter", (resolve_ref(plain.adapter),), {})
    monkeypatch.setitem(registry.tasks, plain.name, dataclasses.replace(plain, head_task="toy-headed"))
    monkeypatch.setitem(registry.tasks, "toy-headed", TaskSpec("toy-headed", headed_adapter))
    three = zoo.load(DIGITS_ID, num_classes=3, device="cpu")
    assert three.card.task == "toy-headed" and type(three.adapter) is headed_adapter
    assert plain.task_with_head(3) == plain.task_with_head(0) == "image-classification"  # no successor: it stays


def test_pretrained_false_builds_fresh_weights(model):
    fresh = zoo.load(DIGITS_ID, pretrained=False, device="cpu")
    assert not torch.equal(fresh.net.fc.weight, model.net.fc.weight)
    assert fresh.card.files == {} and fresh.card.metrics == []


@pytest.fixture
def remote_spec(monkeypatch):
    registry = get_registry()
    spec = ModelSpec(
        id="vision/digits-cnn.remote",
        task="image-classification",
        architecture="digits_cnn",
        arch_args={"num_classes": 10, "in_chans": 1, "widths": [16, 32, 64]},
        weights=(WeightFile("weights.safetensors", "0" * 64, "https://example.invalid/digits.safetensors"),),
        card=dict(registry.model(DIGITS_ID).card),
    )
    monkeypatch.setitem(registry.models, spec.id, spec)
    return spec


def test_offline_and_not_cached_names_the_fetch_command(remote_spec, monkeypatch):
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    with pytest.raises(OfflineError, match="zoo fetch vision/digits-cnn.remote"):
        zoo.load(remote_spec.id)


def test_import_zoo_and_listing_do_not_import_torch():
    code = (
        "import sys, zoo; zoo.list_models(); zoo.info('vision/digits-cnn.sklearn'); "
        "from zoo.cli import app; app(['list'], standalone_mode=False); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_card_json_records_files_params_and_provenance():
    card = zoo.info(DIGITS_ID)
    assert card.params == 24058 and card.files["weights.safetensors"]["source"].startswith("package://vision/")
    recipe = card.provenance["recipe"]
    assert recipe["name"] == "image-classification" and recipe["params"]["epochs"] > 0
    assert len(card.provenance["data_fingerprint"]) == 64 and card.provenance["seed"] == 0
    json.dumps(card.to_dict())


def test_a_folder_shadowing_a_domain_package_is_named(tmp_path):
    (tmp_path / "nlp").mkdir()  # a user's data folder that happens to share the package's name
    script = "import zoo.errors, zoo.hub\ntry:\n    zoo.hub.list_models()\nexcept zoo.errors.ZooError as e:\n    print(e)"
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert f"the folder {tmp_path.resolve() / 'nlp'} shadows the installed domain package 'nlp'" in result.stdout
