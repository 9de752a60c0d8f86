"""Hindsight relabelling: goals drawn from the same episode's future, rewards recomputed by the env, SAC+HER runs."""
import numpy as np
import pytest
import torch

from robotics.envs import make_env
from robotics.recipes.her import HerReplayBuffer
from robotics.recipes.sac import SACRecipe
from zoo.errors import InputError

pytest.importorskip("gymnasium_robotics")

# Flat PointMaze observation: observation (x, y, vx, vy), achieved_goal (2), desired_goal (2).
ACHIEVED, DESIRED = slice(4, 6), slice(6, 8)


def fill(buffer, episodes):
    """Episodes of the given lengths; a transition's next achieved goal is (episode, step + 1): unique, traceable."""
    for episode, length in enumerate(episodes):
        for step in range(length):
            obs, next_obs = torch.zeros(8), torch.zeros(8)
            obs[0], obs[1] = episode, step  # identifies the transition
            obs[ACHIEVED] = torch.tensor([episode, step], dtype=torch.float32)
            next_obs[ACHIEVED] = torch.tensor([episode, step + 1], dtype=torch.float32)
            obs[DESIRED] = next_obs[DESIRED] = torch.tensor([-50.0, -50.0])  # never reached
            buffer.add(obs, next_obs, torch.zeros(2), 0.0, 0.0, episode_done=step == length - 1)


def make_buffer(capacity, env):
    return HerReplayBuffer(capacity, 8, 2, "cpu", achieved=ACHIEVED, desired=DESIRED,
                           compute_reward=env.unwrapped.compute_reward,
                           compute_terminated=env.unwrapped.compute_terminated, future_goals=4)


@pytest.mark.parametrize("capacity", [64, 20])  # 20: the ring has overwritten the oldest transitions
def test_relabelled_goals_come_from_the_same_episodes_future(capacity):
    env = make_env("PointMaze_UMaze-v3")
    torch.manual_seed(0)
    buffer = make_buffer(capacity, env)
    fill(buffer, [9, 6, 12, 4])  # the last episode still running
    obs, actions, rewards, next_obs, terminated = buffer.sample(4000)
    relabelled = (obs[:, DESIRED] != -50).any(1)
    assert 0.75 < relabelled.float().mean() < 0.85  # k / (k + 1) with k = 4
    episode, step = obs[relabelled, 0], obs[relabelled, 1]
    goal = obs[relabelled, DESIRED]
    assert torch.equal(goal, next_obs[relabelled, DESIRED])
    assert torch.equal(goal[:, 0], episode)  # the same episode...
    assert (goal[:, 1] >= step + 1).all()  # ...at or after this transition
    lengths = torch.tensor([9.0, 6.0, 12.0, 4.0])
    assert (goal[:, 1] <= lengths[episode.long()]).all()
    assert goal[:, 1].unique().numel() > 5  # drawn, not always the same
    expected = env.unwrapped.compute_reward(next_obs[relabelled, ACHIEVED].numpy().astype(np.float64),
                                            goal.numpy().astype(np.float64), {})
    np.testing.assert_array_equal(rewards[relabelled].numpy(), expected)
    assert (rewards[relabelled] == 1).any() and (rewards[relabelled] == 0).any()  # reached its own next goal, or not
    assert torch.equal(terminated[relabelled], rewards[relabelled])  # an episodic maze ends at its goal
    assert (rewards[~relabelled] == 0).all() and (obs[~relabelled, DESIRED] == -50).all()  # the rest as stored


def test_sac_with_her_trains_on_a_sparse_maze_and_the_policy_rolls_out(tmp_path):
    import zoo

    recipe = SACRecipe(env_id="PointMaze_UMaze-v3", her=True, total_steps=300, learning_starts=100, batch_size=32,
                       hidden=(16, 16), eval_episodes=1, checkpoint_every_steps=0, log_every_steps=100)
    result = recipe.run(tmp_path / "run", progress=False)
    policy = zoo.load(result.out_dir)
    assert policy.card.input["observation_space"]["kind"] == "goal"
    assert policy.card.provenance["recipe"]["params"]["her"] is True
    rollout = policy.rollout("PointMaze_UMaze-v3", episodes=1, seed=3)
    assert rollout.lengths[0] <= 300
    obs, _ = make_env("PointMaze_UMaze-v3").reset(seed=3)  # predict takes the raw goal Dict
    flat = np.concatenate([obs["observation"], obs["achieved_goal"], obs["desired_goal"]]).astype(np.float32)
    np.testing.assert_array_equal(policy.predict(obs), policy.predict(flat))
    assert policy.predict(obs).shape == (2,)
    with pytest.raises(InputError, match="lacks key"):
        policy.predict({"observation": obs["observation"], "achieved_goal": obs["achieved_goal"]})


def test_sac_with_her_killed_and_resumed_continues_the_same_run(tmp_path):
    from tests.robotics.test_recipes import Killed, assert_same_run, kill_at

    recipe = SACRecipe(env_id="PointMaze_UMaze-v3", her=True, total_steps=300, learning_starts=100, batch_size=32,
                       hidden=(16, 16), eval_episodes=1, checkpoint_every_steps=100, log_every_steps=50)
    recipe.run(tmp_path / "straight", progress=False)
    with pytest.raises(Killed):
        recipe.run(tmp_path / "killed", progress=False, stop=kill_at(250))
    recipe.run(tmp_path / "killed", resume=True, progress=False)
    assert_same_run(tmp_path / "straight", tmp_path / "killed")


def test_her_needs_a_goal_conditioned_env(tmp_path):
    with pytest.raises(InputError, match="goal-conditioned"):
        SACRecipe(env_id="Pendulum-v1", her=True, total_steps=10, learning_starts=5).run(tmp_path, progress=False)
