"""Re-make robotics' bundled policies (``robotics/weights/NAME.*``) with the domain's recipes.

    python -m robotics.train_bundled mlp_categorical.ppo_cartpole_v1 [--resume] [--threads 1]
    python -m robotics.train_bundled --list

(:mod:`zoo.bundled` runs them.) ``zoo reproduce robotics/NAME`` retrains from the card alone and compares the returns.
"""
from zoo.bundled import main

# NAME (the file stem in weights/) → (recipe, hyper-parameters); everything not given is the recipe's default.
CONFIGS: dict[str, tuple[str, dict]] = {
    "mlp_categorical.ppo_cartpole_v1": ("ppo", {"env_id": "CartPole-v1", "total_steps": 100_000}),
    "mlp_categorical.bc_cartpole_v1": ("bc", {"data": "robotics/cartpole-v1.ppo-expert", "env_id": "CartPole-v1"}),
    "mlp_squashed_gaussian.sac_pendulum_v1": ("sac", {"env_id": "Pendulum-v1", "total_steps": 20_000}),
    "mlp_gaussian.ppo_invertedpendulum_v5": ("ppo", {
        "env_id": "InvertedPendulum-v5", "total_steps": 150_000, "num_envs": 4, "num_steps": 512,
        "learning_rate": 3e-4, "anneal_clip": False, "gamma": 0.99, "gae_lambda": 0.95, "update_epochs": 10,
        "minibatch_size": 64, "normalize_observations": True,
    }),
    "mlp_squashed_gaussian.sac_reacher_v5": ("sac", {"env_id": "Reacher-v5", "total_steps": 30_000, "learning_starts": 2_000,
                                    "hidden": (128, 128)}),
    "mlp_gaussian.ppo_hopper_v5": ("ppo", {
        "env_id": "Hopper-v5", "total_steps": 500_000, "num_envs": 4, "num_steps": 512, "learning_rate": 3e-4,
        "anneal_clip": False, "gamma": 0.99, "gae_lambda": 0.95, "update_epochs": 10, "minibatch_size": 64,
        "normalize_observations": True, "normalize_rewards": True, "checkpoint_every_steps": 50_000,
    }),
    # Sparse reward (1 at the goal, which ends the episode): hindsight goals are what it learns from.
    "mlp_squashed_gaussian.sac_pointmaze_umaze_v3": ("sac", {
        "env_id": "PointMaze_UMaze-v3", "her": True, "total_steps": 120_000, "gamma": 0.98, "hidden": (128, 128),
        "eval_episodes": 100, "checkpoint_every_steps": 20_000,
    }),
    # Behaviour cloning of the planner expert (BFS over the maze's cells + a PD controller), then DAgger: the
    # cloned policy drives and the expert labels the states it reaches (robotics.recipes.bc).
    "mlp_gaussian.bc_pointmaze_medium_v3": ("bc", {
        "data": "robotics/pointmaze_medium_expert", "env_id": "PointMaze_Medium-v3", "hidden": (256, 256),
        "activation": "relu", "val_fraction": 0.05,
        "dagger_rounds": 2, "dagger_episodes": 100, "dagger_epochs": 10, "eval_episodes": 100,
        "train": {"epochs": 20, "batch_size": 256, "lr": 1e-3},
    }),
    # Behaviour cloning of BabyAIBot on the 5,000 GoToLocal demonstrations issue 18 allows (the FiLM policy,
    # memoryless); the best of 12 epochs by held-out loss.
    "film_categorical.bc_babyai_gotolocal_v0": ("bc", {
        "data": "robotics/babyai_gotolocal_expert_5k", "env_id": "BabyAI-GoToLocal-v0", "channels": 64,
        "hidden": (64,), "val_fraction": 0.05, "eval_episodes": 100,
        "train": {"epochs": 12, "batch_size": 128, "lr": 1e-3},
    }),
    # A curriculum of two bundles. From scratch, DoorKey-8x8 gives PPO almost no reward to learn from (a
    # run's mean return fell from 0.02 to 0 within 50k steps and stayed there to 400k); the 5x5 room is
    # solved in ~50k steps, and its policy carries over (the same 7×7 view and actions).
    "gru_categorical.recurrent_ppo_minigrid_doorkey_5x5_v0": ("recurrent_ppo", {
        "env_id": "MiniGrid-DoorKey-5x5-v0", "total_steps": 100_000, "eval_episodes": 100,
    }),
    "gru_categorical.recurrent_ppo_minigrid_doorkey_8x8_v0": ("recurrent_ppo", {
        "env_id": "MiniGrid-DoorKey-8x8-v0",
        "model": "robotics/gru_categorical.recurrent_ppo_minigrid_doorkey_5x5_v0", "total_steps": 200_000, "eval_episodes": 100,
    }),
    # FourRooms continues the DoorKey-8x8 policy, which already walks to green goal squares (0.18 success
    # there untrained, seeds 20000-20049).
    "gru_categorical.recurrent_ppo_minigrid_fourrooms_v0": ("recurrent_ppo", {
        "env_id": "MiniGrid-FourRooms-v0", "model": "robotics/gru_categorical.recurrent_ppo_minigrid_doorkey_8x8_v0",
        "total_steps": 1_500_000, "eval_episodes": 100,
    }),
}


if __name__ == "__main__":
    main("robotics", CONFIGS)
