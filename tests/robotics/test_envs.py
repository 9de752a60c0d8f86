"""Environments: clear errors, and a vectorised env whose state round-trips exactly (resume mid-episode)."""
import json

import numpy as np
import pytest

import zoo
from robotics.envs import SyncEnvs, make_env, policy_arch


def test_unknown_env_id_is_an_input_error_naming_known_ones():
    with pytest.raises(zoo.InputError, match="unknown or unavailable environment 'CartPole-v9'.*CartPole-v1"):
        make_env("CartPole-v9")


def test_sac_refuses_discrete_actions():
    with pytest.raises(zoo.InputError, match="SAC needs continuous"):
        policy_arch("CartPole-v1", "sac", (8,), "relu")


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1", "InvertedPendulum-v5"])
def test_state_dict_restores_envs_exactly_mid_episode(env_id):
    envs = SyncEnvs(env_id, 2, seed=5)
    space = envs.single_action_space
    space.seed(0)
    actions = [np.stack([space.sample() for _ in range(2)]) for _ in range(60)]
    for a in actions[:25]:
        envs.step(a)
    saved = json.loads(json.dumps(envs.state_dict()))  # through JSON, as in a checkpoint
    original = [envs.step(a) for a in actions[25:]]
    restored_envs = SyncEnvs(env_id, 2, seed=99)
    restored_envs.load_state_dict(saved)
    restored = [restored_envs.step(a) for a in actions[25:]]
    for (obs, rew, term, trunc, _, fin), (obs2, rew2, term2, trunc2, _, fin2) in zip(original, restored):
        np.testing.assert_array_equal(obs, obs2)
        np.testing.assert_array_equal(rew, rew2)
        np.testing.assert_array_equal(term | trunc, term2 | trunc2)
        assert fin == fin2


def test_episodes_reset_in_the_same_step_and_report_their_return():
    envs = SyncEnvs("CartPole-v1", 1, seed=0)
    finished = []
    for _ in range(200):
        *_, final_obs, done = envs.step(np.array([0]))
        finished += done
    assert finished and all(length < 200 for _, length in finished)
    assert all(ret == length for ret, length in finished)  # CartPole pays 1 a step
