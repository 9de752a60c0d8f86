"""SAC on Pendulum-v1: environment steps per second of our recipe vs Stable-Baselines3 SAC, same return.

Both use rl-baselines3-zoo's Pendulum-v1 settings (lr 1e-3, batch 256, 256×256 ReLU
MLPs, automatic entropy tuning from 1.0, one gradient step per environment step,
learning from step 100) and the same seeds, one torch thread each. Steps/s is over
the whole training run (after one untimed warm-up run of each arm); afterwards the
deterministic policy plays 10 seeded episodes.
Target: ratio (ours / SB3) >= 1.2 at a comparable return.

    python benchmarks/robotics_sac_vs_sb3.py [--seeds 0] [--steps 20000]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from benchmarks.load_overhead import write, zoo_env
from robotics.tasks import run_episodes

ENV_ID = "Pendulum-v1"
EVAL_SEED = 10_000


def ours(seed: int, steps: int) -> dict:
    from robotics.recipes.sac import SACRecipe

    trained = {}

    def stop(step, policy):
        if step == steps:
            trained["seconds"] = time.perf_counter() - start
            trained["policy"] = policy
        return False

    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        SACRecipe(env_id=ENV_ID, total_steps=steps, learning_starts=100, policy_lr=1e-3, q_lr=1e-3,
                  seed=seed, checkpoint_every_steps=0, eval_episodes=1, log_every_steps=steps).run(
            out, progress=False, stop=stop)
    mean = run_episodes(trained["policy"].act, ENV_ID, 10, EVAL_SEED).mean_return
    return {"seconds": trained["seconds"], "steps_per_s": steps / trained["seconds"], "eval_return": mean}


def sb3(seed: int, steps: int) -> dict:
    from stable_baselines3 import SAC

    start = time.perf_counter()
    model = SAC("MlpPolicy", ENV_ID, learning_rate=1e-3, seed=seed, device="cpu")
    model.learn(total_timesteps=steps)
    seconds = time.perf_counter() - start
    mean = run_episodes(lambda obs: model.predict(obs, deterministic=True)[0], ENV_ID, 10, EVAL_SEED).mean_return
    return {"seconds": seconds, "steps_per_s": steps / seconds, "eval_return": mean}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--note", default="", help="conditions of the run, e.g. other jobs sharing the CPU")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for arm in (ours, sb3):  # warm-up: imports and first-call costs are paid before any timing
        arm(0, 300)
    runs = {"ours": [], "sb3": []}
    for seed in args.seeds:
        for name, arm in (("ours", ours), ("sb3", sb3)):
            runs[name].append({"seed": seed, **arm(seed, args.steps)})
            print(name, runs[name][-1], flush=True)
    median = {name: statistics.median(r["steps_per_s"] for r in rs) for name, rs in runs.items()}
    write({
        "benchmark": "robotics_sac_vs_sb3",
        "task": f"SAC on {ENV_ID} for {args.steps} environment steps",
        "hyper_parameters": "rl-baselines3-zoo sac.yml Pendulum-v1 (lr 1e-3), SB3 defaults otherwise, both arms",
        "runs": runs,
        "median_steps_per_s": median,
        "median_eval_return": {name: statistics.median(r["eval_return"] for r in rs) for name, rs in runs.items()},
        "ratio_ours_over_sb3": median["ours"] / median["sb3"],
        "target": ">= 1.2",
        "note": args.note,
        "env": zoo_env(),
    })


if __name__ == "__main__":
    main()
