from dataclasses import dataclass
from typing import ClassVar

import pytest

from zoo.errors import InputError
from zoo.recipes import Recipe, RecipeResult, parse_set


@dataclass
class ToyRecipe(Recipe):
    name: ClassVar[str] = "toy"
    epochs: int = 3
    lr: float = 1e-3
    augment: bool = True
    patience: int | None = None
    widths: tuple = (1, 2)
    data: str = "a/b"

    def run(self, out_dir, *, resume=False, progress=True):
        return RecipeResult(out_dir, [])


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
