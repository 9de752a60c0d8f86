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


def test_ranges_hold_for_python_kwargs_and_overrides():
    with pytest.raises(InputError, match=r"'epochs' must be in \[1, inf\), got 0"):
        ToyRecipe(epochs=0)
    with pytest.raises(InputError, match=r"'lr' must be in \(0, inf\), got nan"):
        ToyRecipe.from_overrides(parse_set(["lr=nan"]))
    with pytest.raises(InputError, match=r"item 1 of recipe field 'widths' must be in \[1, inf\), got \(4, 0\)"):
        ToyRecipe.from_overrides(parse_set(["widths=[4, 0]"]))
    assert ToyRecipe(patience=None).patience is None  # None stays allowed where the type allows it
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


def test_finetune_falls_back_to_the_recipe_the_task_names(toy_registry, monkeypatch):
    from dataclasses import replace

    from zoo.recipes import finetune_recipe

    bare = zoo.info(toy.BARE_ID)  # its card records no recipe
    assert "recipe" not in bare.provenance
    assert finetune_recipe(bare, {}).name == "toy"  # what its task names
    trained = zoo.info(toy.MODEL_ID)
    assert finetune_recipe(trained, {}).name == "toy"  # the recipe that trained it
    task = toy_registry.task("toy-classification")
    monkeypatch.setitem(toy_registry.tasks, task.name, replace(task, recipe=None))
    with pytest.raises(InputError, match=r"records no recipe and its task 'toy-classification' names none: choose one "
                                         r"with --recipe \(toy-classification\)"):
        finetune_recipe(bare, {})


def test_a_recipe_named_for_another_task_is_refused(toy_registry, monkeypatch):
    from zoo.recipes import finetune_recipe
    from zoo.registry import RecipeSpec

    monkeypatch.setitem(toy_registry.recipes, "other", RecipeSpec("other", "other-task", "tests.zoo.toy:ToyRecipe"))
    with pytest.raises(InputError, match=rf"recipe 'other' trains other-task models and {toy.MODEL_ID} is a "
                                         r"toy-classification model; its recipes: toy-classification"):
        finetune_recipe(zoo.info(toy.MODEL_ID), {}, recipe_name="other")


def test_recipes_declare_their_own_command_line_options():
    from zoo.recipes import parse_cli_options

    options, positional = parse_cli_options(ToyRecipe,
                                            ["--widths", "[4, 8]", "runs/x/checkpoints/step-1", "--data-folder=c/d"])
    assert options == {"widths": "[4, 8]", "data": "c/d"} and positional == ["runs/x/checkpoints/step-1"]
    with pytest.raises(InputError, match=r"no such option: --env \(the 'toy' recipe takes "
                                         r"--data-folder, --widths; any field with --set FIELD=VALUE\)"):
        parse_cli_options(ToyRecipe, ["--env", "CartPole-v1"])
    with pytest.raises(InputError, match="option --widths needs a value"):
        parse_cli_options(ToyRecipe, ["--widths"])
