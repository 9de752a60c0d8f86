"""Navigation: maze and grid-world environments, observation flattening, scripted experts and their demonstrations."""
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from robotics import datasets
from robotics.envs import MINIGRID, POINTMAZE, describe_spaces, make_env
from robotics.experts import PointMazeExpert, expert_for
from robotics.observations import MISSION_TOKENS, WORD_IDS, observation_spec, tokenize
from zoo.errors import InputError

pytest.importorskip("gymnasium_robotics")
pytest.importorskip("minigrid")


@pytest.mark.parametrize("env_id", POINTMAZE + MINIGRID)
def test_navigation_envs_flatten_to_their_described_box(env_id):
    env = make_env(env_id)
    obs, _ = env.reset(seed=3)
    spec = observation_spec(env.observation_space)
    flat = spec.flatten(obs)
    assert flat.dtype == np.float32 and [len(flat)] == describe_spaces(env)["observation_space"]["shape"]
    parts = spec.split(flat[None])
    if spec.kind == "goal":
        np.testing.assert_allclose(parts["desired_goal"][0], obs["desired_goal"], rtol=1e-6)
        np.testing.assert_allclose(parts["observation"][0], obs["observation"], rtol=1e-6)
    else:
        np.testing.assert_array_equal(parts["image"][0], obs["image"].transpose(2, 0, 1))  # channel-first for a CNN
        np.testing.assert_array_equal(parts["mission"][0], tokenize(obs["mission"]))
    env.close()


def test_maze_episode_ends_at_the_goal_and_dense_rewards_are_dense():
    env = make_env("PointMaze_UMazeDense-v3")
    obs, _ = env.reset(seed=0)
    _, reward, terminated, _, info = env.step(np.zeros(2, np.float32))
    assert 0 < reward < 1 and not terminated and info["success"] is False
    assert env.unwrapped.continuing_task is False


def test_observation_dict_missing_a_key_is_an_input_error():
    spec = observation_spec(make_env("PointMaze_UMaze-v3").observation_space)
    with pytest.raises(InputError, match=r"lacks key\(s\) \['desired_goal'\]"):
        spec.flatten({"observation": np.zeros(4), "achieved_goal": np.zeros(2)})
    grid = observation_spec(make_env("MiniGrid-FourRooms-v0").observation_space)
    with pytest.raises(InputError, match="7×7×3"):
        grid.flatten({"image": np.zeros((5, 5, 3)), "direction": 0, "mission": "reach the goal"})
    from gymnasium import spaces

    with pytest.raises(InputError, match="no observation handling"):
        observation_spec(spaces.Dict({"pixels": spaces.Box(0, 1, (4, 4))}))


def test_babyai_resets_keep_its_rejected_missions_off_stdout(capsys):
    import gymnasium as gym

    env = gym.make("BabyAI-GoToLocal-v0")  # as minigrid makes it: a line per rejected mission
    for seed in range(20):
        env.reset(seed=seed)
    assert "Sampling rejected" in capsys.readouterr().out
    env = make_env("BabyAI-GoToLocal-v0")
    observations = [env.reset(seed=seed)[0]["image"] for seed in range(20)]
    assert capsys.readouterr().out == ""
    assert env.unwrapped.spec.id == "BabyAI-GoToLocal-v0" and len({o.tobytes() for o in observations}) > 1


def test_mission_tokens_and_unknown_words():
    ids = tokenize("go to the green ball")
    assert ids.shape == (MISSION_TOKENS,) and ids[:5].tolist() == [WORD_IDS[w] for w in "go to the green ball".split()]
    assert not ids[5:].any()  # padding
    with pytest.warns(UserWarning, match=r"\['banana'\]"):
        assert tokenize("go to the banana")[3] == WORD_IDS["<unk>"]
    with pytest.raises(InputError, match="at most"):
        tokenize("go " * (MISSION_TOKENS + 1))
    with pytest.raises(InputError, match="string"):
        tokenize(7)


@pytest.mark.parametrize("seed", [0, 1])
def test_pointmaze_expert_reaches_the_goal(seed):
    env = make_env("PointMaze_UMaze-v3")
    obs, _ = env.reset(seed=seed)
    expert = expert_for("PointMaze_UMaze-v3")(env)
    for _ in range(env.spec.max_episode_steps):
        obs, _, terminated, truncated, info = env.step(expert(obs))
        if terminated or truncated:
            break
    assert terminated and info["success"]


def test_pointmaze_expert_plans_shortest_paths_and_rejects_goals_outside_the_maze():
    env = make_env("PointMaze_UMaze-v3")
    env.reset(seed=0)
    expert = PointMazeExpert(env.unwrapped.maze)
    assert expert.path((1, 1), (3, 1)) == [(1, 1), (1, 2), (1, 3), (2, 3), (3, 3), (3, 2), (3, 1)]
    start = env.unwrapped.maze.cell_rowcol_to_xy(np.array([1, 1]))
    obs = {"observation": np.r_[start, 0.0, 0.0], "achieved_goal": start}
    with pytest.raises(InputError, match="the goal .* outside the maze"):
        expert({**obs, "desired_goal": np.array([10.0, 10.0])})
    with pytest.raises(InputError, match="the goal .* outside the maze"):  # the centre of a wall cell
        expert({**obs, "desired_goal": env.unwrapped.maze.cell_rowcol_to_xy(np.array([2, 1]))})
    with pytest.raises(InputError, match="lacks key 'desired_goal'"):
        expert(obs)
    with pytest.raises(InputError, match="no scripted expert"):
        expert_for("CartPole-v1")


@pytest.mark.parametrize("env_id", ["PointMaze_UMaze-v3", "BabyAI-GoToLocal-v0"])
def test_recorded_expert_demonstrations(tmp_path, env_id):
    path = datasets.record_expert(env_id, tmp_path / "demos", episodes=2, seed=7)
    demos = datasets.load(path)
    assert demos.meta["success_rate"] == 1.0 and demos.success.all()
    starts = demos.frame_index == 0
    assert demos.seed[starts].tolist() == [7, 8] and demos.episode_index[starts].tolist() == [0, 1]
    assert demos.terminated.sum() == 2  # each episode ends at its goal
    env = make_env(env_id)
    first, _ = env.reset(seed=8)
    np.testing.assert_allclose(demos.observations[np.flatnonzero(starts)[1]],
                               observation_spec(env.observation_space).flatten(first), rtol=1e-6)
    # the same seeds record the same dataset
    again = datasets.record_expert(env_id, tmp_path / "again", episodes=2, seed=7)
    assert datasets.load(again).meta["fingerprint"] == demos.meta["fingerprint"]


def test_episode_columns_must_be_constant_within_an_episode(tmp_path):
    path = datasets.record_expert("BabyAI-GoToLocal-v0", tmp_path / "demos", episodes=1, seed=0)
    table = pq.read_table(path / "data.parquet")
    success = np.ones(table.num_rows, bool)
    success[-1] = False
    tampered = table.set_column(table.column_names.index("success"), "success", pa.array(success))
    meta = json.loads((path / "meta.json").read_text())
    datasets.write(tampered, meta, tmp_path / "tampered")
    with pytest.raises(InputError, match="'success' changes within an episode"):
        datasets.load(tmp_path / "tampered")


def test_babyai_dataset_is_recorded_once_on_first_use():
    path = datasets.babyai_gotolocal_expert()
    demos = datasets.load(path)
    assert demos.meta["episodes"] == 100 and demos.success.all()
    assert demos.meta["observation_space"]["kind"] == "grid" and demos.actions.dtype == np.int64
    assert datasets.babyai_gotolocal_expert() == path and datasets.load(path).meta["fingerprint"] == demos.meta["fingerprint"]


def test_maze_state_saved_mid_episode_continues_exactly():
    from robotics.envs import env_state, load_env_state

    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (15, 2)).astype(np.float32)
    env = make_env("PointMaze_MediumDense-v3")
    env.reset(seed=4)
    for action in actions[:10]:
        env.step(action)
    state = env_state(env)
    expected = [env.step(action) for action in actions[10:]]
    other = make_env("PointMaze_MediumDense-v3")
    other.reset(seed=99)  # another goal and start: the state brings the episode's back
    load_env_state(other, state)
    for (obs, reward, *_), action in zip(expected, actions[10:]):
        again, again_reward, *_ = other.step(action)
        np.testing.assert_array_equal(again["observation"], obs["observation"])
        np.testing.assert_array_equal(again["desired_goal"], obs["desired_goal"])
        assert again_reward == reward


def test_grid_world_state_cannot_be_saved_and_says_so():
    from robotics.envs import env_state

    env = make_env("MiniGrid-FourRooms-v0")
    env.reset(seed=0)
    with pytest.raises(InputError, match="cannot save the state of MiniGrid-FourRooms-v0"):
        env_state(env)


def test_malformed_observation_layout_in_a_card_is_an_input_error():
    from robotics.observations import spec_from_description

    good = observation_spec(make_env("PointMaze_UMaze-v3").observation_space).describe()
    assert spec_from_description(good, "card").size == 8
    assert spec_from_description({"type": "Box", "shape": [3]}, "card") is None
    for bad in ({**good, "parts": [["observation", [4]], ["desired_goal", [2]]]},
                {**good, "parts": [["observation", [-4]], ["achieved_goal", [2]], ["desired_goal", [2]]]},
                {**good, "kind": "pixels"}, {**good, "shape": [9]}, {**good, "parts": "observation"}):
        with pytest.raises(InputError, match="card"):
            spec_from_description(bad, "card")


@pytest.mark.slow
def test_pointmaze_dataset_is_recorded_once_on_first_use():
    path = datasets.pointmaze_umaze_expert()
    demos = datasets.load(path)
    assert demos.meta["episodes"] == 100 and demos.meta["env_id"] == "PointMaze_UMaze-v3"
    assert demos.meta["success_rate"] == 1.0 and np.unique(demos.seed).tolist() == list(range(1000, 1100))
    assert demos.actions.shape[1:] == (2,) and np.abs(demos.actions).max() <= 1
