"""Train a bundled policy with the domain's recipes and write it into ``robotics/weights/``.

    python -m robotics.train_bundled ppo-mlp.cartpole-v1 [--resume] [--threads 1]
    python -m robotics.train_bundled --list

Runs go to ``runs/bundled/NAME`` (checkpointed: ``--resume`` continues a killed run);
the finished model's weights and card are copied to ``robotics/weights/NAME.*``.
``zoo reproduce robotics/NAME`` retrains from the card alone and compares the returns.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

# NAME → (recipe, hyper-parameters); everything not given is the recipe's default.
CONFIGS: dict[str, tuple[str, dict]] = {
    "ppo-mlp.cartpole-v1": ("ppo", {"env_id": "CartPole-v1", "total_steps": 100_000}),
    "bc-mlp.cartpole-v1": ("bc", {"data": "robotics/cartpole-v1.ppo-expert", "env_id": "CartPole-v1"}),
    "sac-mlp.pendulum-v1": ("sac", {"env_id": "Pendulum-v1", "total_steps": 20_000}),
    "ppo-mlp.invertedpendulum-v5": ("ppo", {
        "env_id": "InvertedPendulum-v5", "total_steps": 150_000, "num_envs": 4, "num_steps": 512,
        "learning_rate": 3e-4, "anneal_clip": False, "gamma": 0.99, "gae_lambda": 0.95, "update_epochs": 10,
        "minibatch_size": 64, "normalize_observations": True,
    }),
    "sac-mlp.reacher-v5": ("sac", {"env_id": "Reacher-v5", "total_steps": 30_000, "learning_starts": 2_000,
                                    "hidden": (128, 128)}),
    "ppo-mlp.hopper-v5": ("ppo", {
        "env_id": "Hopper-v5", "total_steps": 500_000, "num_envs": 4, "num_steps": 512, "learning_rate": 3e-4,
        "anneal_clip": False, "gamma": 0.99, "gae_lambda": 0.95, "update_epochs": 10, "minibatch_size": 64,
        "normalize_observations": True, "normalize_rewards": True, "checkpoint_every_steps": 50_000,
    }),
}
WEIGHTS = Path(__file__).parent / "weights"


def train(name: str, runs: Path, resume: bool) -> Path:
    """Run ``name``'s recipe into ``runs/NAME`` and copy the result into ``robotics/weights``."""
    from zoo.card import CARD_FILE, WEIGHTS_FILE
    from zoo.registry import get_registry, resolve_ref

    recipe_name, params = CONFIGS[name]
    recipe = resolve_ref(get_registry().recipe(recipe_name).recipe).from_overrides(params)
    result = recipe.run(runs / name, resume=resume, progress=True)
    shutil.copyfile(result.out_dir / WEIGHTS_FILE, WEIGHTS / f"{name}.safetensors")
    shutil.copyfile(result.out_dir / CARD_FILE, WEIGHTS / f"{name}.json")
    print(f"{name}: {result.metrics[0]['name']} {result.metrics[0]['value']} over "
          f"{result.metrics[0]['episodes']} episodes; written to {WEIGHTS / name}.*")
    return WEIGHTS / f"{name}.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"one or more of {', '.join(CONFIGS)}")
    parser.add_argument("--list", action="store_true", help="list the bundled policies and exit")
    parser.add_argument("--resume", action="store_true", help="continue a killed run from its latest checkpoint")
    parser.add_argument("--runs", type=Path, default=Path("runs/bundled"), help="where the runs are written")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    if args.list or not args.names:
        print("\n".join(f"{name}: {recipe} {params}" for name, (recipe, params) in CONFIGS.items()))
        return
    unknown = [n for n in args.names if n not in CONFIGS]
    if unknown:
        parser.error(f"unknown bundled policy {unknown}; choose from {', '.join(CONFIGS)}")
    import torch

    torch.set_num_threads(args.threads)
    for name in args.names:
        train(name, args.runs, args.resume)


if __name__ == "__main__":
    main()
