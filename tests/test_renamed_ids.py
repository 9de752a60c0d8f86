"""Ids and architecture names renamed to ``domain/<arch>.<tag>`` (issue 15, item 6): every former
one still works where a user or a saved file can name it, and warns naming the new one."""
import dataclasses
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import zoo
from zoo.card import CARD_FILE
from zoo.recipes import finetune_recipe
from zoo.registry import get_registry, resolve_ref

OLD_DIGITS, NEW_DIGITS = "vision/digits-cnn.sklearn", "vision/digits_cnn.sklearn"
OLD_CARTPOLE, NEW_CARTPOLE = "robotics/ppo-mlp.cartpole-v1", "robotics/mlp_categorical.ppo_cartpole_v1"


def run_zoo(*args):
    return subprocess.run([sys.executable, "-m", "zoo", *args], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"})


def test_load_by_a_former_id_warns_and_loads_the_renamed_model():
    with pytest.warns(FutureWarning, match=f"'{OLD_DIGITS}' is renamed '{NEW_DIGITS}'"):
        model = zoo.load(OLD_DIGITS, device="cpu")
    assert model.card.id == NEW_DIGITS


def test_zoo_info_by_a_former_id_warns_and_shows_the_renamed_card():
    result = run_zoo("info", OLD_CARTPOLE, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["id"] == NEW_CARTPOLE
    assert "FutureWarning" in result.stderr and NEW_CARTPOLE in result.stderr


def test_zoo_fetch_by_a_former_id_warns_and_fetches_the_renamed_files(isolated_zoo_home):
    result = run_zoo("fetch", OLD_DIGITS)
    assert result.returncode == 0, result.stderr
    assert "FutureWarning" in result.stderr and NEW_DIGITS in result.stderr


@pytest.mark.slow
def test_finetune_set_model_to_a_former_id_warns_and_trains_the_renamed_model(tmp_path):
    out = tmp_path / "run"
    result = run_zoo("finetune", NEW_DIGITS, "--data", "vision/digits", "--epochs", "1", "--out", str(out),
                     "--set", f"model={OLD_DIGITS}", "--set", "augment=none")
    assert result.returncode == 0, result.stderr
    assert "FutureWarning" in result.stderr and NEW_DIGITS in result.stderr
    assert zoo.load(out, device="cpu").card.architecture == "digits_cnn"


def test_recipe_defaults_name_current_ids():
    registry = get_registry()
    for name, spec in registry.recipes.items():
        default = next((f.default for f in dataclasses.fields(resolve_ref(spec.recipe)) if f.name == "model"), None)
        if isinstance(default, str):
            assert default in registry.models, f"recipe {name} defaults to {default}, not a current id"


def test_a_card_whose_provenance_names_a_former_id_runs_its_recipe_on_the_renamed_model(tmp_path):
    card = zoo.info(NEW_DIGITS)
    card.provenance["recipe"]["params"]["model"] = OLD_DIGITS  # as written before the rename
    recipe = finetune_recipe(card, {})
    assert recipe.model == OLD_DIGITS
    with pytest.warns(FutureWarning, match=NEW_DIGITS):
        assert zoo.load(recipe.model, device="cpu").card.id == NEW_DIGITS


def test_a_model_folder_whose_card_names_a_former_id_and_architecture_loads_and_warns(tmp_path):
    folder = zoo.load(NEW_CARTPOLE, device="cpu").save(tmp_path / "policy")
    card = json.loads((folder / CARD_FILE).read_text())
    card.update(id=OLD_CARTPOLE, architecture="mlp-categorical")  # as saved before the rename
    (folder / CARD_FILE).write_text(json.dumps(card))
    with pytest.warns(FutureWarning, match="'mlp-categorical' is renamed 'mlp_categorical'"):
        model = zoo.load(folder, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert model.predict(np.zeros(4, dtype=np.float32)) in (0, 1)
