"""Recurrent PPO and the grid encoder: the GRU core's episode resets, BPTT sequences, exact resume,
learning a task that needs memory, recurrent predict with its state checked, and the policy on ONNX Runtime
and in an exported bundle (the state as a second input and output)."""
import json

import gymnasium as gym
import numpy as np
import pytest
import torch

import zoo
from robotics.envs import SyncEnvs, make_env
from robotics.models.encoders import GridEncoder, build_encoder
from robotics.models.recurrent import GRUActorCritic
from robotics.observations import observation_spec
from robotics.recipes.recurrent_ppo import RecurrentPPORecipe, to_sequences
from tests.bundles import run_without_torch
from tests.robotics.test_recipes import Killed, assert_same_run, kill_at
from zoo.errors import InputError

pytest.importorskip("minigrid")


class RecallEnv(gym.Env):
    """A cue (+1 or -1) shown at the first step only; after ``delay`` blank steps, action 1 for +1 or 0 for -1
    earns 1. A policy without memory succeeds half the time."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, delay: int = 1):
        self.delay = delay

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.cue, self.t = int(self.np_random.integers(2)), 0
        return np.array([2.0 * self.cue - 1.0, 1.0], np.float32), {}

    def step(self, action):
        self.t += 1
        if self.t <= self.delay:
            return np.zeros(2, np.float32), 0.0, False, False, {}
        return np.zeros(2, np.float32), float(int(action) == self.cue), True, False, {}


gym.register("ZooTest/Recall-v0", entry_point=RecallEnv, max_episode_steps=10)
TINY_GRID = dict(env_id="MiniGrid-DoorKey-5x5-v0", total_steps=128, num_envs=2, num_steps=16, sequence_length=8,
                 minibatch_size=16, update_epochs=2, core_size=16, hidden=(16,), eval_episodes=1,
                 checkpoint_every_steps=64)


def test_a_start_flag_inside_a_sequence_resets_the_core_as_a_fresh_start():
    torch.manual_seed(0)
    net = GRUActorCritic(obs_dim=3, num_actions=2, core_size=8)
    obs, carried = torch.randn(6, 2, 3), torch.randn(2, 8)
    starts = torch.zeros(6, 2)
    starts[3, 0] = 1.0  # env 0's episode ends after step 2; step 3 is the first of the next
    with torch.no_grad():
        outputs, _ = net.unroll(obs, carried, starts)
        fresh, _ = net.unroll(obs[3:, :1], net.initial_state(1), torch.zeros(3, 1))
        unmasked, _ = net.unroll(obs, carried, torch.zeros(6, 2))
    torch.testing.assert_close(outputs[3:, 0], fresh[:, 0], rtol=0, atol=1e-6)
    assert not torch.allclose(unmasked[3:, 0], fresh[:, 0], atol=1e-3)  # without the flag the past leaks in
    torch.testing.assert_close(outputs[:3], unmasked[:3])  # before the flag, and env 1 throughout: unchanged
    torch.testing.assert_close(outputs[:, 1], unmasked[:, 1])


def test_rollouts_are_cut_into_whole_sequences_of_one_env():
    steps, envs, length = 8, 3, 4
    rollout = torch.arange(steps)[:, None] * 100 + torch.arange(envs)[None, :]  # value: step * 100 + env
    sequences = to_sequences(rollout, length)
    assert sequences.shape == (length, steps // length * envs)
    for k in range(steps // length):
        for n in range(envs):
            assert sequences[:, k * envs + n].tolist() == [(k * length + i) * 100 + n for i in range(length)]


def test_grid_encoder_embeds_real_minigrid_observations():
    env = make_env("MiniGrid-DoorKey-5x5-v0")
    spec = observation_spec(env.observation_space)
    assert spec.encoder == "grid_cnn"
    encoder = build_encoder(spec.encoder, spec.size, spec.parts)
    assert isinstance(encoder, GridEncoder)
    first = spec.flatten(env.reset(seed=0)[0])
    turned = spec.flatten(env.step(0)[0])  # turning left changes the view and the direction
    features = encoder(torch.as_tensor(np.stack([first, turned])))
    assert features.shape == (2, encoder.features) and not torch.allclose(features[0], features[1])
    bad = {**env.reset(seed=0)[0]}
    bad["image"] = bad["image"].copy()
    bad["image"][0, 0, 1] = 9  # colour index 9 does not exist
    with pytest.raises(InputError, match=r"colour indices in \[0, 6\)"):
        spec.flatten(bad)
    with pytest.raises(InputError, match="'direction' in 0..3"):
        spec.flatten({**env.reset(seed=0)[0], "direction": 7})


def test_grid_envs_resume_by_replaying_their_episode():
    envs = SyncEnvs("MiniGrid-DoorKey-5x5-v0", 2, seed=5)
    rng = np.random.default_rng(0)
    for _ in range(510):  # past two 250-step limits: the third episodes began from an RNG state, not a seed
        envs.step(rng.integers(0, 7, size=2))
    saved = envs.state_dict()
    assert [env["seed"] for env in saved["envs"]] == [-1, -1]
    follow = [envs.step(np.array([2, 1]))[0] for _ in range(3)]
    again = SyncEnvs("MiniGrid-DoorKey-5x5-v0", 2, seed=5)
    again.load_state_dict(saved)
    np.testing.assert_array_equal([again.step(np.array([2, 1]))[0] for _ in range(3)], follow)
    saved["envs"][1]["actions"] = json.dumps(json.loads(saved["envs"][1]["actions"]) + [0])  # one turn more
    with pytest.raises(InputError, match="did not reach the saved observation"):
        SyncEnvs("MiniGrid-DoorKey-5x5-v0", 2, seed=5).load_state_dict(saved)


def test_recurrent_ppo_killed_and_resumed_continues_the_same_run(tmp_path):
    recipe = RecurrentPPORecipe(**TINY_GRID)
    recipe.run(tmp_path / "straight", progress=False)
    with pytest.raises(Killed):
        recipe.run(tmp_path / "killed", progress=False, stop=kill_at(96))
    assert (tmp_path / "killed" / "checkpoints" / "latest").read_text().strip() == "step-00000064"
    recipe.run(tmp_path / "killed", resume=True, progress=False)
    assert_same_run(tmp_path / "straight", tmp_path / "killed")


def test_a_policy_continued_in_another_grid_is_a_new_model_for_it(tmp_path):
    # The bundled DoorKey-8x8 curriculum: a 5x5 policy continued in the 8x8 room (the same view and actions).
    RecurrentPPORecipe(**TINY_GRID).run(tmp_path / "small", progress=False)
    RecurrentPPORecipe(**{**TINY_GRID, "env_id": "MiniGrid-DoorKey-8x8-v0", "model": str(tmp_path / "small")}).run(
        tmp_path / "large", progress=False)
    card = zoo.load(tmp_path / "large").card
    assert card.id == "robotics/gru_categorical.recurrent_ppo_minigrid_doorkey_8x8_v0"
    assert card.input["env_ids"] == ["MiniGrid-DoorKey-8x8-v0", "MiniGrid-DoorKey-5x5-v0"]
    assert card.provenance["finetune_from"] == str(tmp_path / "small") and card.metric("success")["episodes"] >= 1


def test_sequences_must_divide_the_rollout_and_minibatch_and_actions_be_discrete(tmp_path):
    with pytest.raises(InputError, match="multiples of sequence_length"):
        RecurrentPPORecipe(**{**TINY_GRID, "sequence_length": 5})
    with pytest.raises(InputError, match="takes Discrete actions; Pendulum-v1 has Box"):
        RecurrentPPORecipe(**{**TINY_GRID, "env_id": "Pendulum-v1"}).run(tmp_path / "run", progress=False)


@pytest.fixture(scope="module")
def recall_policy(tmp_path_factory):
    """A recurrent policy trained for a few seconds on the recall task."""
    out = tmp_path_factory.mktemp("recall")
    RecurrentPPORecipe(env_id="ZooTest/Recall-v0", total_steps=6144, num_envs=8, num_steps=32, sequence_length=8,
                       minibatch_size=64, learning_rate=3e-3, ent_coef=0.0, core_size=16, hidden=(16,),
                       eval_episodes=50, checkpoint_every_steps=0).run(out, progress=False)
    return zoo.load(out)


def test_recurrent_ppo_learns_to_remember_a_cue(recall_policy):
    rollout = recall_policy.rollout("ZooTest/Recall-v0", episodes=100, seed=7)
    assert rollout.mean_return > 0.9  # remembering; any memoryless policy gets ~0.5
    assert recall_policy.card.metric("mean_return")["value"] > 0.9


def test_predict_carries_the_state_as_the_rollout_does(recall_policy):
    env = make_env("ZooTest/Recall-v0")
    for seed in range(6):
        obs, _ = env.reset(seed=seed)
        state, total, done = None, 0.0, False
        while not done:
            action, state = recall_policy.predict(obs, state)
            assert state.shape == (16,)
            obs, reward, terminated, truncated, _ = env.step(action)
            total, done = total + reward, terminated or truncated
        assert total == recall_policy.rollout("ZooTest/Recall-v0", episodes=1, seed=seed).returns[0]
    actions, states = recall_policy.predict([np.array([1, 1], np.float32), np.array([-1, 1], np.float32)], None)
    assert len(actions) == 2 and states.shape == (2, 16)
    assert recall_policy.predict(np.zeros(2, np.float32)) in (0, 1)  # no state: an episode's first step


def test_a_recurrent_state_of_the_wrong_shape_is_an_input_error(recall_policy):
    obs = np.zeros(2, np.float32)
    with pytest.raises(InputError, match=r"state of one observation .* shape \(16,\), got shape \(15,\)"):
        recall_policy.predict(obs, np.zeros(15))
    with pytest.raises(InputError, match=r"shape \(2, 16\) .* for 2 observation\(s\).* got shape \(3, 16\)"):
        recall_policy.predict([obs, obs], np.zeros((3, 16)))  # a state from another batch size
    with pytest.raises(InputError, match="finite"):
        recall_policy.predict([obs], np.full((1, 16), np.nan))
    with pytest.raises(InputError, match=r"got shape \(\) dtype <U"):
        recall_policy.predict([obs], "state")
    with pytest.raises(InputError, match="not recurrent"):
        zoo.load("robotics/mlp_categorical.ppo_cartpole_v1").predict(np.zeros(4), None)


def test_a_card_with_a_malformed_state_shape_is_an_input_error(recall_policy, tmp_path):
    recall_policy.save(tmp_path / "policy")
    card = json.loads((tmp_path / "policy" / "card.json").read_text())
    card["input"]["state_shape"] = [16, "x"]
    (tmp_path / "policy" / "card.json").write_text(json.dumps(card))
    with pytest.raises(InputError, match="state_shape"):
        zoo.load(tmp_path / "policy")


def test_zoo_predict_runs_a_recurrent_policy_from_an_observation_file(recall_policy, tmp_path):
    from tests.zoo.test_cli import run_console_script

    recall_policy.save(tmp_path / "policy")
    np.save(tmp_path / "obs.npy", np.array([1, 1], np.float32))
    result = run_console_script("predict", str(tmp_path / "policy"), str(tmp_path / "obs.npy"))
    expected = recall_policy.predict(np.array([1, 1], np.float32))
    assert result.returncode == 0 and result.stdout.strip() == f"{tmp_path / 'obs.npy'}: {expected}"


# Steps fed one after another, the state carried throughout: cue, blank, another cue, blank.
OBSERVATIONS = ([1, 1], [0, 0], [-1, 1], [0, 0])


def bundle_returns(bundle, episodes: int, seed: int) -> list[float]:
    """Recall episodes played by an exported bundle alone, its state carried from step to step."""
    env, returns = make_env("ZooTest/Recall-v0"), []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        state, total, done = None, 0.0, False
        while not done:
            action, state = bundle.predict(obs, state)
            obs, reward, terminated, truncated, _ = env.step(action)
            total, done = total + reward, terminated or truncated
        returns.append(total)
    return returns


def test_a_recurrent_policy_on_onnxruntime_remembers_as_eager_does(recall_policy):
    converted = recall_policy.to_backend("onnxruntime")
    assert converted.parity.passed and converted.parity.batches[0]["inputs"] == {"input": [2, 2], "state": [2, 16]}
    eager, onnx = (p.rollout("ZooTest/Recall-v0", episodes=40, seed=3).returns for p in (recall_policy, converted))
    assert eager.tolist() == onnx.tolist() and onnx.mean() > 0.9  # without the state it would be ~0.5


def test_an_exported_recurrent_bundle_carries_its_state_without_torch(recall_policy, tmp_path):
    from zoo.export import export
    from zoo.runtime import load_bundle, seal

    bundle = load_bundle(export(recall_policy, tmp_path / "bundle"))
    spec = json.loads((tmp_path / "bundle" / "bundle.json").read_text())
    assert spec["postprocessing"] == {"kind": "recurrent", "state_shape": [16]}
    assert [i["name"] for i in spec["inputs"]] == ["input", "state"]
    checks = json.loads((tmp_path / "bundle" / "parity.json").read_text())["predictions"]
    assert checks["passed"] and checks["agreement"] == 1.0 and checks["steps"] >= 10
    returns = bundle_returns(bundle, 40, seed=3)
    assert returns == recall_policy.rollout("ZooTest/Recall-v0", episodes=40, seed=3).returns.tolist()
    assert np.mean(returns) > 0.9
    obs = np.array([1, 1], np.float32)
    assert bundle.predict(obs) == recall_policy.predict(obs)  # no state: an episode's first step
    actions, states = bundle.predict([obs, -obs], None)
    assert len(actions) == 2 and states.shape == (2, 16)
    with pytest.raises(InputError, match=r"state of shape \(2, 16\) for 2 observation\(s\), got float64 \(3, 16\)"):
        bundle.predict([obs, obs], np.zeros((3, 16)))  # a state from another batch size
    with pytest.raises(InputError, match="finite recurrent state"):
        bundle.predict(obs, np.full(16, np.inf))
    script = f"""
        import json, numpy as np
        from zoo.runtime import load_bundle
        bundle, state, actions = load_bundle({str(tmp_path / "bundle")!r}), None, []
        for obs in {OBSERVATIONS!r}:
            action, state = bundle.predict(np.array(obs, np.float32), state)
            actions.append(int(action))
        print(json.dumps(actions))
    """
    state, expected = None, []
    for obs in OBSERVATIONS:
        action, state = recall_policy.predict(np.array(obs, np.float32), state)
        expected.append(action)
    assert run_without_torch(script) == expected
    spec["postprocessing"]["state_shape"] = [0]
    (tmp_path / "bundle" / "bundle.json").write_text(json.dumps(spec))
    seal(tmp_path / "bundle")
    with pytest.raises(InputError, match="state_shape"):
        load_bundle(tmp_path / "bundle")


def test_a_feed_forward_bundle_takes_no_state(tmp_path):
    from zoo.export import export
    from zoo.runtime import load_bundle

    bundle = load_bundle(export("robotics/mlp_categorical.ppo_cartpole_v1", tmp_path / "bundle"))
    assert bundle.predict(np.zeros(4, np.float32)) in (0, 1)
    with pytest.raises(InputError, match="not a recurrent policy"):
        bundle.predict(np.zeros(4, np.float32), None)
