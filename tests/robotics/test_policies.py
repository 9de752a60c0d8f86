"""Bundled policies load in one line, predict with checked inputs, roll out, and reach their targets."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import zoo
from robotics import BUNDLED, bundled_name

# Target mean return per bundled policy (the bar), checked on a few seeded episodes.
TARGETS = {
    "robotics/mlp_categorical.ppo_cartpole_v1": 475,
    "robotics/mlp_categorical.bc_cartpole_v1": 0.9 * 500,  # 90% of the expert, whose return is 500
    "robotics/mlp_squashed_gaussian.sac_pendulum_v1": -200,
    "robotics/mlp_gaussian.ppo_invertedpendulum_v5": 950,
    "robotics/mlp_squashed_gaussian.sac_reacher_v5": -6,
    "robotics/mlp_gaussian.ppo_hopper_v5": 2000,
}
# Navigation policies: target success rate (the card's, over 100 episodes). Their sparse rewards are
# positive only at the goal, so a live episode succeeded when its return is positive.
SUCCESS_TARGETS = {
    "robotics/mlp_squashed_gaussian.sac_pointmaze_umaze_v3": 0.95,
    "robotics/mlp_gaussian.bc_pointmaze_medium_v3": 0.80,
    "robotics/film_categorical.bc_babyai_gotolocal_v0": 0.90,
    "robotics/gru_categorical.recurrent_ppo_minigrid_doorkey_5x5_v0": 0.95,
    "robotics/gru_categorical.recurrent_ppo_minigrid_doorkey_8x8_v0": 0.95,
    "robotics/gru_categorical.recurrent_ppo_minigrid_fourrooms_v0": 0.60,
}
# A 3-episode sample of a locomotion policy varies more (one fall halves an episode's return);
# the card's 10-episode evaluation carries the full bar. Of 3 navigation episodes one may miss.
LIVE_TARGETS = {**TARGETS, "robotics/mlp_gaussian.ppo_hopper_v5": 1500}
LIVE_SUCCESS = 2 / 3
CARTPOLE = "robotics/mlp_categorical.ppo_cartpole_v1"


def bundled() -> list[str]:
    return [model_id for model_id in BUNDLED if model_id in zoo.list_models("robotics/*", pretrained=True)]


def test_cartpole_policy_is_bundled_and_predicts_actions():
    model = zoo.load(CARTPOLE)
    assert type(model).__name__ == "PolicyModel"
    action = model.predict(np.zeros(4, dtype=np.float32))
    assert isinstance(action, int) and action in (0, 1)
    assert model.predict([np.zeros(4), np.full(4, 0.1)]) == [model.predict(np.zeros(4)), model.predict(np.full(4, 0.1))]


@pytest.mark.parametrize("bad, message", [
    (np.zeros(5, dtype=np.float32), "expected an observation of shape (4,)"),
    (np.zeros((2, 4), dtype=np.float32), "got shape (2, 4)"),
    (np.array(["a", "b", "c", "d"]), "got dtype <U1"),
    (np.array([0.0, np.nan, 0.0, 0.0]), "expected finite observation values"),
])
def test_bad_observations_say_what_was_expected(bad, message):
    with pytest.raises(zoo.InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        zoo.load(CARTPOLE).predict(bad)


def test_rollout_on_an_env_the_policy_was_not_trained_for_names_both():
    with pytest.raises(zoo.InputError, match="trained for CartPole-v1, not for Acrobot-v1"):
        zoo.load(CARTPOLE).rollout("Acrobot-v1", episodes=1)


def test_rollout_is_seeded_and_reports_returns_and_lengths():
    model = zoo.load(CARTPOLE)
    first, again = model.rollout("CartPole-v1", episodes=2, seed=3), model.rollout("CartPole-v1", episodes=2, seed=3)
    assert first.returns.shape == first.lengths.shape == (2,)
    np.testing.assert_array_equal(first.returns, again.returns)
    assert first.steps_per_second > 0


@pytest.mark.parametrize("model_id", bundled())
def test_bundled_policy_reaches_its_target(model_id):
    model = zoo.load(model_id)
    env_id = model.card.input["env_ids"][0]
    rollout = model.rollout(env_id, episodes=3, seed=123)
    if model_id in SUCCESS_TARGETS:
        assert (rollout.returns > 0).mean() >= LIVE_SUCCESS, rollout
        recorded = model.card.metric("success", split="eval")
        assert recorded["episodes"] >= 100 and recorded["value"] >= SUCCESS_TARGETS[model_id]
    else:
        assert rollout.mean_return >= LIVE_TARGETS[model_id], rollout
        recorded = model.card.metric("mean_return", split="eval")
        assert recorded["episodes"] >= 10 and recorded["value"] >= TARGETS[model_id]
    provenance = model.card.provenance
    assert provenance["recipe"]["name"] in ("ppo", "sac", "bc", "recurrent_ppo") and provenance["env_id"] == env_id
    assert "seed" in provenance


@pytest.mark.parametrize("model_id", bundled())
def test_weights_are_safetensors_with_observation_statistics(model_id):
    from importlib.resources import files

    from safetensors.torch import load_file

    path = files("robotics") / "weights" / f"{bundled_name(model_id)}.safetensors"
    assert path.read_bytes()[:2] != b"\x80\x04"  # not a pickle
    state = load_file(str(path))
    if zoo.info(model_id).input["observation_space"].get("kind") != "grid":  # grid policies embed cell indices
        assert {"obs_norm.mean", "obs_norm.var", "obs_norm.count"} <= set(state)
    card = json.loads((files("robotics") / "weights" / f"{bundled_name(model_id)}.json").read_text())
    assert card["id"] == model_id


@pytest.mark.parametrize("model_id", bundled())
def test_forward_is_a_pure_tensor_function_that_exports(model_id):
    model = zoo.load(model_id)
    obs = torch.randn(3, *model.card.input["shape"])
    inputs = (obs, torch.randn(3, *model.card.input["state_shape"])) if model.recurrent else (obs,)
    exported = torch.export.export(model.net, inputs)
    torch.testing.assert_close(exported.module()(*inputs), model.net(*inputs))


def test_nan_action_from_corrupt_weights_is_an_error():
    model = zoo.load("robotics/mlp_squashed_gaussian.sac_pendulum_v1")  # continuous: a discrete argmax of NaN is still an index
    with torch.no_grad():
        for p in model.net.parameters():
            p.fill_(float("nan"))
    with pytest.raises(zoo.InputError, match="non-finite action"):
        model.predict(np.zeros(model.card.input["shape"], dtype=np.float32))


def test_listing_and_cards_import_neither_torch_nor_gymnasium():
    code = ("import sys, zoo; zoo.list_models('robotics/*'); zoo.info('robotics/mlp_categorical.ppo_cartpole_v1'); "
            "print(sorted({'torch', 'gymnasium', 'mujoco'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_an_exported_maze_policy_takes_the_raw_dict_observation(tmp_path):
    from robotics.envs import make_env
    from zoo.export import export
    from zoo.runtime import load_bundle

    model = zoo.load("robotics/mlp_gaussian.bc_pointmaze_medium_v3")
    bundle = load_bundle(export(model, tmp_path / "bundle"))
    obs, _ = make_env("PointMaze_Medium-v3").reset(seed=4)
    np.testing.assert_allclose(bundle.predict(obs), model.predict(obs), atol=1e-5)
    flat = np.concatenate([obs["observation"], obs["achieved_goal"], obs["desired_goal"]]).astype(np.float32)
    np.testing.assert_allclose(bundle.predict([flat, obs])[0], bundle.predict(obs))  # the flat vector, or the Dict
    with pytest.raises(zoo.InputError, match=r"input 1: observation dict lacks key\(s\) \['desired_goal'\]"):
        bundle.predict([obs, {"observation": obs["observation"], "achieved_goal": obs["achieved_goal"]}])
    with pytest.raises(zoo.InputError, match="input 0: expected a goal observation dict or 8 finite numbers"):
        bundle.predict(np.zeros(7))
