"""The bundled digits CNN: its recorded accuracy, its card and its input checks."""
import json

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

import zoo
from vision.datasets import digits
from zoo.errors import InputError

DIGITS_ID = "vision/digits_cnn.sklearn"


@pytest.fixture(scope="module")
def model():
    return zoo.load(DIGITS_ID, device="cpu")


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


def test_card_json_records_files_params_and_provenance():
    card = zoo.info(DIGITS_ID)
    assert card.params == 24058 and card.files["weights.safetensors"]["source"].startswith("package://vision/")
    recipe = card.provenance["recipe"]
    assert recipe["name"] == "image-classification" and recipe["params"]["train"]["epochs"] > 0
    assert len(card.provenance["data_fingerprint"]) == 64 and card.provenance["seed"] == 0
    json.dumps(card.to_dict())


def test_finetune_starts_from_the_recipe_that_trained_the_digits_cnn(tmp_path):
    from zoo.recipes import finetune_recipe

    card = zoo.info("vision/digits_cnn.sklearn")
    recorded = card.provenance["recipe"]["params"]
    assert recorded["augment"] == "affine"  # not the recipe's default ("trivial"): the test tells them apart
    recipe = finetune_recipe(card, {"model": card.id, "pretrained": True, "train.epochs": 2})
    assert (recipe.augment, recipe.train.epochs, recipe.pretrained, recipe.train.lr) == (
        "affine", 2, True, recorded["train"]["lr"])
    (tmp_path / "recipe.yaml").write_text("augment: none\ntrain:\n  lr: 0.01\n  epochs: 3\n")
    from_file = finetune_recipe(card, {"model": card.id, "train.lr": 0.02}, config_file=tmp_path / "recipe.yaml")
    # card < config file < overrides, field by field inside train too
    assert (from_file.augment, from_file.train.lr, from_file.train.epochs) == ("none", 0.02, 3)
    named = finetune_recipe(card, {"model": card.id}, recipe_name="image-classification")
    assert named.augment == "trivial"  # a recipe named explicitly starts from its own defaults
