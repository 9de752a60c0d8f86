"""PPO, SAC and BC recipes: tiny runs that produce loadable policies, and exact resume after a kill."""
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

import zoo
from robotics.recipes.bc import BCRecipe
from robotics.recipes.ppo import PPORecipe
from robotics.recipes.sac import SACRecipe
from zoo.errors import CheckpointError, InputError


class Killed(Exception):
    """Stands in for the process being killed between two steps."""


def kill_at(step_to_die: int):
    def stop(step, policy):
        if step >= step_to_die:
            raise Killed(step)
        return False
    return stop


def weights(out_dir) -> dict:
    return load_file(str(out_dir / "weights.safetensors"))


def assert_same_run(a, b):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], rtol=0, atol=0, msg=key)
    assert (a / "metrics.jsonl").read_text() == (b / "metrics.jsonl").read_text()


PPO_TINY = dict(total_steps=640, num_envs=2, num_steps=64, minibatch_size=64, update_epochs=2, hidden=(16, 16),
                eval_episodes=2, checkpoint_every_steps=256)


def test_ppo_writes_a_loadable_policy_with_provenance(tmp_path):
    result = PPORecipe(**{**PPO_TINY, "total_steps": 256}).run(tmp_path / "run", progress=False)
    model = zoo.load(result.out_dir)
    assert model.card.id == "robotics/mlp_categorical.ppo_cartpole_v1"
    assert model.card.provenance["recipe"]["name"] == "ppo"
    assert model.card.provenance["env_id"] == "CartPole-v1"
    assert model.card.metric("mean_return")["episodes"] == 2
    assert model.predict(np.zeros(4, dtype=np.float32)) in (0, 1)


@pytest.mark.parametrize("env_id, extra", [
    ("CartPole-v1", {}),
    # continuous, with running observation statistics and reward scaling
    ("Pendulum-v1", {"normalize_observations": True, "normalize_rewards": True, "gamma": 0.99}),
])
def test_ppo_killed_and_resumed_continues_the_same_run(tmp_path, env_id, extra):
    recipe = PPORecipe(env_id=env_id, **PPO_TINY, **extra)
    recipe.run(tmp_path / "straight", progress=False)
    with pytest.raises(Killed):
        recipe.run(tmp_path / "killed", progress=False, stop=kill_at(384))
    latest = (tmp_path / "killed" / "checkpoints" / "latest").read_text().strip()
    assert latest == "step-00000256"
    with pytest.raises(CheckpointError, match="already holds checkpoints"):
        recipe.run(tmp_path / "killed", progress=False)
    recipe.run(tmp_path / "killed", resume=True, progress=False)
    assert_same_run(tmp_path / "straight", tmp_path / "killed")


def test_resume_with_other_hyper_parameters_is_refused(tmp_path):
    with pytest.raises(Killed):
        PPORecipe(**PPO_TINY).run(tmp_path / "run", progress=False, stop=kill_at(384))
    with pytest.raises(CheckpointError, match="learning_rate"):
        PPORecipe(**{**PPO_TINY, "learning_rate": 0.5}).run(tmp_path / "run", resume=True, progress=False)


def test_ppo_checkpoints_get_the_same_checks_as_the_trainer(tmp_path):
    from tests.zoo.test_train import edit_trainer_json, reseal

    with pytest.raises(Killed):
        PPORecipe(**PPO_TINY).run(tmp_path / "run", progress=False, stop=kill_at(384))
    checkpoint = tmp_path / "run" / "checkpoints" / "step-00000256"
    original = (checkpoint / "trainer.json").read_bytes()

    edit_trainer_json(checkpoint, lambda t: t.update(iteration=t["iteration"] + 1))
    with pytest.raises(CheckpointError, match="trainer.json is corrupt, truncated or edited"):
        PPORecipe(**PPO_TINY).run(tmp_path / "run", resume=True, progress=False)
    for edit, expected in [
        (lambda t: t.update(iteration="4"), "'iteration' must be int"),
        (lambda t: t.pop("history"), "lacks \\['history'\\]"),
        (lambda t: t["reward_scaler"].update(returns="x"), "reward_scaler.returns is str"),
        (lambda t: t["envs"]["envs"][0].update(physics=[0.0]), "envs.envs\\[0\\].physics has 1 entries, expected 4"),
    ]:
        (checkpoint / "trainer.json").write_bytes(original)
        edit_trainer_json(checkpoint, edit)
        reseal(checkpoint)
        with pytest.raises(CheckpointError, match=expected):
            PPORecipe(**PPO_TINY).run(tmp_path / "run", resume=True, progress=False)


SAC_TINY = dict(total_steps=300, learning_starts=100, batch_size=32, hidden=(32, 32), eval_episodes=1,
                checkpoint_every_steps=100, log_every_steps=50)


def test_sac_killed_and_resumed_continues_the_same_run(tmp_path):
    recipe = SACRecipe(**SAC_TINY)
    recipe.run(tmp_path / "straight", progress=False)
    with pytest.raises(Killed):
        recipe.run(tmp_path / "killed", progress=False, stop=kill_at(250))
    recipe.run(tmp_path / "killed", resume=True, progress=False)
    assert_same_run(tmp_path / "straight", tmp_path / "killed")
    model = zoo.load(tmp_path / "killed")
    action = model.predict(np.zeros(3, dtype=np.float32))
    assert action.shape == (1,) and -2 <= action[0] <= 2


def test_bc_clones_the_expert_from_recorded_demonstrations(tmp_path):
    from robotics import datasets

    expert = zoo.load("robotics/mlp_categorical.ppo_cartpole_v1")
    data = datasets.record(expert, "CartPole-v1", tmp_path / "demos", episodes=4, seed=0)
    result = BCRecipe(data=str(data), val_fraction=0.25, eval_episodes=2,
                      train={"epochs": 15, "batch_size": 64, "lr": 3e-3}).run(tmp_path / "bc", progress=False)
    model = zoo.load(result.out_dir)
    assert model.card.id == "robotics/mlp_categorical.bc_cartpole_v1"
    assert model.card.provenance["data_fingerprint"] == json.loads((data / "meta.json").read_text())["fingerprint"]
    assert model.card.provenance["training"]["best"]["val_action_accuracy"] > 0.8
    assert model.rollout("CartPole-v1", episodes=2, seed=0).mean_return > 100  # random play scores ~20


def test_zoo_finetune_continues_a_bundled_policy_in_an_env(tmp_path):
    from zoo.cli import app

    out = tmp_path / "tuned"
    args = ["finetune", "robotics/mlp_categorical.ppo_cartpole_v1", "--env", "CartPole-v1", "--out", str(out),
            "--set", "total_steps=128", "--set", "num_envs=2", "--set", "num_steps=64", "--set", "eval_episodes=2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    model = zoo.load(out)
    assert model.card.provenance["finetune_from"] == "robotics/mlp_categorical.ppo_cartpole_v1"
    assert model.card.provenance["recipe"]["params"]["gae_lambda"] == 0.8  # the bundled run's own settings
    assert model.card.metric("mean_return")["value"] >= 400  # still the expert after 128 more steps


def test_finetune_in_an_env_with_other_spaces_names_both(tmp_path):
    from zoo.cli import app

    result = CliRunner().invoke(app, ["finetune", "robotics/mlp_categorical.ppo_cartpole_v1", "--env", "Hopper-v5",
                                      "--out", str(tmp_path / "x")])
    assert isinstance(result.exception, zoo.InputError)
    assert "trained for CartPole-v1" in str(result.exception) and "Hopper-v5" in str(result.exception)


def test_recipe_ranges_hold_for_python_kwargs_and_overrides():
    from zoo.recipes import parse_set

    with pytest.raises(InputError, match=r"item 1 of recipe field 'hidden' must be in \[1, inf\), got \(64, 0\)"):
        PPORecipe.from_overrides(parse_set(["hidden=[64, 0]"]))
    with pytest.raises(InputError, match=r"'gamma' must be in \[0, 1\], got 1.5"):
        SACRecipe(gamma=1.5)
    assert PPORecipe(checkpoint_every_steps=0, ent_coef=0.0).checkpoint_every_steps == 0


def test_a_bad_nested_value_in_yaml_or_python_names_its_key(tmp_path):
    (tmp_path / "r.yaml").write_text("train:\n  lr: -1\n")
    with pytest.raises(InputError, match=r"recipe field 'train.lr' must be in \[0, inf\), got -1"):
        BCRecipe.from_overrides(config_file=tmp_path / "r.yaml")
    with pytest.raises(InputError, match=r"recipe field 'train.warmup_ratio' must be in \[0, 1\)"):
        BCRecipe(train={"warmup_ratio": 1.5})
    with pytest.raises(InputError, match=r"TrainConfig has no field\(s\) \['lrr'\]"):
        BCRecipe(train={"lrr": 0.1})


def test_the_bundled_bc_card_records_the_recipe_once_and_nested():
    provenance = zoo.info("robotics/mlp_categorical.bc_cartpole_v1").provenance
    assert "train" in provenance["recipe"]["params"] and "lr" not in provenance["recipe"]["params"]
    assert "config" not in provenance.get("train", {})


def test_the_trainer_and_the_control_recipes_refuse_a_used_folder_alike(tmp_path):
    """Both go through zoo.runs: the same refusal, in the same words."""
    from tests.zoo.test_checkpoint import save
    from zoo.train import TrainConfig, Trainer

    save(tmp_path, 1)
    data = torch.utils.data.TensorDataset(torch.randn(8, 4), torch.zeros(8, dtype=torch.long))
    trainer = Trainer(torch.nn.Linear(4, 2), data, config=TrainConfig(epochs=1, progress=False, device="cpu"),
                      out_dir=tmp_path)
    errors = []
    for run in (trainer.fit, lambda: SACRecipe(total_steps=10).run(tmp_path, progress=False)):
        with pytest.raises(CheckpointError) as caught:
            run()
        errors.append(str(caught.value))
    assert errors[0] == errors[1] and "already holds checkpoints" in errors[0]
