"""Robotics: control and navigation policies, PPO / recurrent PPO / SAC / behaviour-cloning recipes,
demonstration datasets and the ``robotics`` benchmark suite.

``register`` only declares specs; nothing here imports torch or gymnasium.
"""
import json
from importlib.resources import files

from zoo.registry import (
    ArchitectureSpec,
    DatasetSpec,
    RecipeSpec,
    Registry,
    SuiteSpec,
    TaskSpec,
    bundled_model,
)

# Bundled policies (robotics/weights/NAME.{json,safetensors}), each written by
# ``python -m robotics.train_bundled NAME``: id → description.
BUNDLED = {
    "robotics/mlp_categorical.ppo_cartpole_v1": "PPO policy for CartPole-v1 (categorical MLP 64×64)",
    "robotics/mlp_categorical.bc_cartpole_v1": "behaviour-cloned CartPole-v1 policy, from 20 episodes of the PPO expert",
    "robotics/mlp_squashed_gaussian.sac_pendulum_v1": "SAC policy for Pendulum-v1 (tanh-Gaussian MLP 256×256)",
    "robotics/mlp_gaussian.ppo_invertedpendulum_v5": "PPO policy for MuJoCo InvertedPendulum-v5 (Gaussian MLP 64×64)",
    "robotics/mlp_squashed_gaussian.sac_reacher_v5": "SAC policy for MuJoCo Reacher-v5 (tanh-Gaussian MLP 128×128)",
    "robotics/mlp_gaussian.ppo_hopper_v5": "PPO policy for MuJoCo Hopper-v5 (Gaussian MLP 64×64)",
    "robotics/mlp_squashed_gaussian.sac_pointmaze_umaze_v3": "SAC+HER policy for the sparse PointMaze_UMaze-v3, "
    "goal-conditioned (tanh-Gaussian MLP 128×128)",
    "robotics/mlp_gaussian.bc_pointmaze_medium_v3": "goal-conditioned PointMaze_Medium-v3 policy cloned from 300 "
    "episodes of the planner expert, then 2 DAgger rounds (Gaussian MLP 256×256)",
    "robotics/film_categorical.bc_babyai_gotolocal_v0": "BabyAI-GoToLocal-v0 policy cloned from 5,000 BabyAIBot "
    "episodes (a GRU mission encoder FiLM-conditioning a grid CNN; no memory over steps)",
    "robotics/gru_categorical.recurrent_ppo_minigrid_doorkey_5x5_v0":
        "recurrent PPO policy for MiniGrid-DoorKey-5x5-v0 (grid CNN + GRU 128); the start of the 8x8 policy",
    "robotics/gru_categorical.recurrent_ppo_minigrid_doorkey_8x8_v0":
        "recurrent PPO policy for MiniGrid-DoorKey-8x8-v0 (grid CNN + GRU 128), continued from the 5x5 policy",
    "robotics/gru_categorical.recurrent_ppo_minigrid_fourrooms_v0":
        "recurrent PPO policy for MiniGrid-FourRooms-v0 (grid CNN + GRU 128), continued from the DoorKey-8x8 policy",
}


# The ids these policies had before ids became ``domain/<arch>.<tag>``: new id → old id.
FORMER_IDS = {
    "robotics/mlp_categorical.ppo_cartpole_v1": "robotics/ppo-mlp.cartpole-v1",
    "robotics/mlp_categorical.bc_cartpole_v1": "robotics/bc-mlp.cartpole-v1",
    "robotics/mlp_squashed_gaussian.sac_pendulum_v1": "robotics/sac-mlp.pendulum-v1",
    "robotics/mlp_gaussian.ppo_invertedpendulum_v5": "robotics/ppo-mlp.invertedpendulum-v5",
    "robotics/mlp_squashed_gaussian.sac_reacher_v5": "robotics/sac-mlp.reacher-v5",
    "robotics/mlp_gaussian.ppo_hopper_v5": "robotics/ppo-mlp.hopper-v5",
}


def bundled_name(model_id: str) -> str:
    """``robotics/mlp_categorical.ppo_cartpole_v1`` → ``mlp_categorical.ppo_cartpole_v1`` (the file stem in ``weights/``)."""
    return model_id.split("/", 1)[1]


def register(registry: Registry) -> None:
    """Declare the robotics architectures, task, recipes, dataset, suite and bundled policies."""
    registry.add(ArchitectureSpec("mlp_categorical", "robotics.models.mlp:mlp_categorical",
                                                aliases=("mlp-categorical",)))
    registry.add(ArchitectureSpec("mlp_gaussian", "robotics.models.mlp:mlp_gaussian",
                                                aliases=("mlp-gaussian",)))
    registry.add(ArchitectureSpec("mlp_squashed_gaussian", "robotics.models.mlp:mlp_squashed_gaussian",
                                                aliases=("mlp-squashed-gaussian",)))
    registry.add(ArchitectureSpec("gru_categorical", "robotics.models.recurrent:gru_categorical"))
    registry.add(ArchitectureSpec("film_categorical", "robotics.models.film:film_categorical"))
    registry.add(TaskSpec("control", "robotics.tasks:ControlPolicy", model_class="robotics.tasks:PolicyModel"))
    registry.add(RecipeSpec("ppo", task="control", recipe="robotics.recipes.ppo:PPORecipe",
                                   description="proximal policy optimisation, discrete or continuous actions"))
    registry.add(RecipeSpec("sac", task="control", recipe="robotics.recipes.sac:SACRecipe",
                                   description="soft actor-critic, continuous actions"))
    registry.add(RecipeSpec("recurrent_ppo", task="control", recipe="robotics.recipes.recurrent_ppo:RecurrentPPORecipe",
                                   description="PPO with a GRU core and truncated BPTT, discrete actions, partially "
                                   "observed environments (MiniGrid)"))
    registry.add(RecipeSpec("bc", task="control", recipe="robotics.recipes.bc:BCRecipe",
                                   description="behaviour cloning from a demonstration dataset"))
    registry.add(DatasetSpec(
        "robotics/cartpole-v1.ppo-expert",
        task="control",
        loader="robotics.datasets:cartpole_expert",
        description="20 CartPole-v1 episodes of robotics/mlp_categorical.ppo_cartpole_v1 (seeds 1000-1019), recorded "
        "deterministically on first use into ZOO_HOME",
        card={"license": "Apache-2.0", "source": "recorded by robotics.datasets.record", "synthetic": True},
    ))
    for name, env_id, expert, episodes in (
            ("pointmaze_umaze_expert", "PointMaze_UMaze-v3", "the BFS + PD planner expert", 100),
            ("pointmaze_medium_expert", "PointMaze_Medium-v3", "the BFS + PD planner expert", 300),
            ("babyai_gotolocal_expert", "BabyAI-GoToLocal-v0", "minigrid's BabyAIBot", 100),
            ("babyai_gotolocal_expert_5k", "BabyAI-GoToLocal-v0", "minigrid's BabyAIBot", 5000)):
        registry.add(DatasetSpec(
            f"robotics/{name}",
            task="control",
            loader=f"robotics.datasets:{name}",
            description=f"{episodes} {env_id} episodes of {expert} (seeds 1000-{999 + episodes}, with seed and "
            "success columns), recorded deterministically on first use into ZOO_HOME",
            card={"license": "Apache-2.0", "source": "recorded by robotics.datasets.record_expert", "synthetic": True},
        ))
    registry.add(SuiteSpec("robotics", "robotics.bench:suite", plot="robotics.bench:PLOT",
                                 description="control: mean return over seeds vs a random policy and rl-zoo"))
    for model_id, description in BUNDLED.items():
        card_file = files("robotics") / "weights" / f"{bundled_name(model_id)}.json"
        if not card_file.is_file():  # not trained yet: `python -m robotics.train_bundled NAME`
            continue
        card = json.loads(card_file.read_text(encoding="utf-8"))
        registry.add(bundled_model(
            "robotics",
            bundled_name(model_id),
            id=model_id,
            aliases=(FORMER_IDS[model_id],) if model_id in FORMER_IDS else (),
            task="control",
            architecture=card["architecture"],
            arch_args=card["arch_args"],
            description=description,
            card={"input": card["input"], "license": "Apache-2.0"},
        ))
