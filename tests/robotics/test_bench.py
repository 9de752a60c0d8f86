"""The robotics suite: every bundled policy, a random control arm, rl-zoo references beside ours."""
import zoo
from robotics.bench import NAVIGATION_ENVS, PLOT, reference, suite, train_env_steps
from zoo.bench import run_tasks


def test_suite_has_every_bundled_policy_and_a_random_control_per_env():
    tasks = suite(quick=True)
    bundled = set(zoo.list_models("robotics/*", pretrained=True))
    assert {t.model for t in tasks if not t.control} == bundled
    randoms = {t.dataset for t in tasks if t.model == "control/random"}
    # Navigation environments with an expert get their control arms with or without a bundled policy.
    assert randoms == {t.dataset for t in tasks if not t.control} | set(NAVIGATION_ENVS)
    assert all(len(t.seeds) >= 3 for t in tasks)
    assert all(len(t.seeds) >= 10 for t in suite(quick=False))


def test_references_come_from_published_tables_for_the_same_algorithm_and_env():
    assert reference("robotics/mlp_categorical.ppo_cartpole_v1", "CartPole-v1")["metrics"] == {"mean_return": 500.0}
    assert reference("robotics/mlp_squashed_gaussian.sac_pendulum_v1", "Pendulum-v1")["metrics"] == {"mean_return": -156.995}
    assert reference("robotics/mlp_categorical.bc_cartpole_v1", "CartPole-v1") is None  # the zoo has no BC row
    assert "Hopper-v3" in reference("robotics/mlp_gaussian.ppo_hopper_v5", "Hopper-v5")["source"]  # the zoo's version
    four_rooms = reference("robotics/gru_categorical.recurrent_ppo_minigrid_fourrooms_v0", "MiniGrid-FourRooms-v0")
    assert four_rooms == {"source": "rl-baselines3-zoo PPO (MLP on FlatObsWrapper) MiniGrid-FourRooms-v0, 5M steps",
                          "metrics": {"mean_return": 0.573}}  # an MLP PPO beside our recurrent one
    assert reference("robotics/gru_categorical.recurrent_ppo_minigrid_doorkey_8x8_v0", "MiniGrid-DoorKey-8x8-v0") is None
    gotolocal = reference("robotics/film_categorical.bc_babyai_gotolocal_v0", "BabyAI-GoToLocal-v0")
    assert gotolocal == {"source": "BabyAI paper, imitation learning from 1M demonstrations",
                         "metrics": {"success": 0.998}}


def test_cartpole_rows_rank_the_policy_above_the_random_control(tmp_path):
    tasks = [t for t in suite(quick=True) if t.dataset == "CartPole-v1" and t.model in
             ("robotics/mlp_categorical.ppo_cartpole_v1", "control/random")]
    rows = run_tasks(tasks, suite="robotics", out_dir=tmp_path, progress=False)
    by_model = {row["model"]: row for row in rows}
    policy, random = by_model["robotics/mlp_categorical.ppo_cartpole_v1"], by_model["control/random"]
    assert policy["status"] == random["status"] == "ok"
    assert policy["metrics"]["mean_return"]["mean"] >= 475 and policy["metrics"]["success"]["mean"] == 1.0
    assert random["metrics"]["mean_return"]["mean"] < 100 and policy["metrics"]["mean_return"]["ci95"] is not None
    assert policy["throughput"]["unit"] == "env steps/s" and policy["throughput"]["value"] > 0
    assert "rl-baselines3-zoo" in (tmp_path / "leaderboard.md").read_text()
    # Success is a share of episodes: a Wilson interval inside [0, 1] (a t interval over
    # three seeds of one episode each once gave [-1.101, 1.768]).
    for row in (policy, random):
        success = row["metrics"]["success"]
        assert success["ci_method"] == "wilson" and 0.0 <= success["ci95"][0] <= success["ci95"][1] <= 1.0
    assert random["metrics"]["success"]["ci95"][0] == 0.0 and policy["metrics"]["success"]["ci95"][1] == 1.0
    # The plot's x axis: the environment steps the policy trained with (none for the random control).
    assert policy["extra"]["train_env_steps"] == 100_000 and "train_env_steps" not in random["extra"]


def test_the_suite_plots_return_against_training_steps():
    from zoo.bench import PlotSpec

    spec = zoo.registry.get_registry().suite("robotics").plot
    assert spec == "robotics.bench:PLOT" and PLOT == PlotSpec("extra.train_env_steps", PLOT.x_label, log_x=True)
    assert train_env_steps("robotics/mlp_squashed_gaussian.sac_pendulum_v1") == 20_000
    assert train_env_steps("robotics/mlp_categorical.bc_cartpole_v1") is None  # trained offline: drawn as a line


def test_a_policy_runs_on_the_onnxruntime_backend_with_the_same_actions():
    import numpy as np
    import pytest

    pytest.importorskip("onnxruntime")
    eager = zoo.load("robotics/mlp_gaussian.ppo_invertedpendulum_v5")
    converted = zoo.load("robotics/mlp_gaussian.ppo_invertedpendulum_v5", backend="onnxruntime")
    obs = np.linspace(-0.2, 0.2, 4).astype(np.float32)
    np.testing.assert_allclose(converted.predict(obs), eager.predict(obs), atol=1e-4)
    assert converted.rollout("InvertedPendulum-v5", episodes=1, seed=0).returns[0] == 1000
