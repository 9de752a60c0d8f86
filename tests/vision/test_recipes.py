"""The image-classification recipe: its declared ranges, its nested train config from --set, YAML, flat keys and
old cards (its training runs are tested in test_digits_cnn.py)."""
import pytest

import zoo
from vision.recipes import ImageClassificationRecipe
from zoo.errors import InputError
from zoo.recipes import parse_set


def test_image_recipe_ranges_hold_for_python_kwargs():
    with pytest.raises(InputError, match=r"'val_fraction' must be in \(0, 1\), got 0"):
        ImageClassificationRecipe(val_fraction=0)


class _TrainerReached(Exception):
    pass


def _capture_trainer_config(monkeypatch) -> list:
    """Replace the Trainer with one that records its config and stops the run before training."""
    import zoo.train

    configs = []

    def capture(*args, config, **kwargs):
        configs.append(config)
        raise _TrainerReached

    monkeypatch.setattr(zoo.train, "Trainer", capture)
    return configs


def test_set_train_lr_reaches_the_trainer_config(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from zoo.cli import app

    recipe = ImageClassificationRecipe.from_overrides(parse_set(["train.lr=3e-4", "train.epochs=2"]))
    assert (recipe.train.lr, recipe.train.epochs) == (3e-4, 2)
    assert recipe.train.monitor == "val_accuracy"  # the recipe's other train defaults stay
    configs = _capture_trainer_config(monkeypatch)
    result = CliRunner().invoke(app, ["finetune", "vision/digits_cnn.sklearn", "--out", str(tmp_path / "run"),
                                      "--set", "train.lr=3e-4", "--epochs", "2", "--keep-checkpoints", "3"])
    assert isinstance(result.exception, _TrainerReached), result.output
    (config,) = configs
    assert (config.lr, config.epochs, config.keep_checkpoints, config.progress) == (3e-4, 2, 3, True)


def test_flat_train_keys_warn_and_map_into_train(tmp_path):
    from zoo.recipes import finetune_recipe

    with pytest.warns(FutureWarning, match=r"lr -> train\.lr"):
        assert ImageClassificationRecipe(lr=0.5).train.lr == 0.5  # Python kwargs
    with pytest.warns(FutureWarning, match=r"epochs -> train\.epochs"):
        assert ImageClassificationRecipe.from_overrides(parse_set(["epochs=4"])).train.epochs == 4  # --set
    (tmp_path / "flat.yaml").write_text("seed: 3\naugment: none\n")
    with pytest.warns(FutureWarning, match=r"seed -> train\.seed.*under 'train:'"):
        from_yaml = ImageClassificationRecipe.from_overrides(config_file=tmp_path / "flat.yaml")
    assert (from_yaml.seed, from_yaml.train.seed, from_yaml.augment) == (3, 3, "none")
    card = zoo.info("vision/digits_cnn.sklearn")  # a card written before train was nested
    card.provenance["recipe"]["params"] = {"augment": "affine", "epochs": 30, "lr": 0.02, "seed": 0}
    with pytest.warns(FutureWarning, match=r"lr -> train\.lr"):
        recipe = finetune_recipe(card, {"train.epochs": 2})
    assert (recipe.augment, recipe.train.lr, recipe.train.epochs) == ("affine", 0.02, 2)
    assert "lr" not in recipe.to_dict() and recipe.to_dict()["train"]["lr"] == 0.02


@pytest.mark.parametrize("layer, message", [
    ({"train.batch_size": "0"}, r"recipe field 'train.batch_size' must be in \[1, inf\), got 0"),
    ({"train": {"ema_decay": 1.0}}, r"recipe field 'train.ema_decay' must be in \[0, 1\), got 1.0"),
    ({"train.epochs": "2.5"}, r"recipe field 'train.epochs' expects int, got '2.5'"),
    ({"train.nope": "1"}, r"has no field\(s\) \['train.nope'\]; its fields are \[.*'train.lr'"),
    ({"train": {"schedule": "step"}}, r"schedule must be 'cosine', 'linear' or 'constant', got 'step'"),
])
def test_a_bad_nested_value_is_an_input_error_naming_its_key(layer, message):
    with pytest.raises(InputError, match=message):
        ImageClassificationRecipe.from_overrides(layer)


def test_the_bundled_card_records_the_recipe_once_and_nested():
    provenance = zoo.info("vision/digits_cnn.sklearn").provenance
    assert "train" in provenance["recipe"]["params"] and "lr" not in provenance["recipe"]["params"]
    assert "config" not in provenance.get("train", {})


def test_a_model_trained_at_another_image_size_exports_at_that_size(tmp_path):
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    from zoo.export import export
    from zoo.runtime import load_bundle

    digits = load_digits()
    for index in range(60):  # a folder of 16x16 digit pictures, about 6 a class
        folder = tmp_path / "pictures" / str(digits.target[index])
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((digits.images[index] * 15).astype(np.uint8)).resize((16, 16)).save(folder / f"{index}.png")
    recipe = ImageClassificationRecipe(data=str(tmp_path / "pictures"), image_size=12, augment="none",
                                       train={"epochs": 1, "lr": 0.0, "progress": False})
    result = recipe.run(tmp_path / "run", progress=False)
    assert zoo.load(str(result.out_dir), device="cpu").card.input == {"shape": [1, 12, 12], "dtype": "float32"}
    bundle = export(str(result.out_dir), tmp_path / "bundle")  # traced at the card's input: 12x12, as it predicts
    pictures = sorted((tmp_path / "pictures" / "3").iterdir())
    predictions = load_bundle(bundle).predict(pictures)
    assert len(predictions) == len(pictures) and all(0 <= p["index"] < 10 for p in predictions)
