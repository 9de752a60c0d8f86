"""Wall-clock to a mean return of 475 on CartPole-v1: our PPO recipe vs Stable-Baselines3 PPO.

Both use rl-baselines3-zoo's CartPole-v1 hyper-parameters (8 envs × 32 steps, batch
256, 20 epochs, gamma 0.98, GAE 0.8, lr and clip range annealed linearly from 1e-3
and 0.2, no entropy bonus, 64×64 tanh MLPs) and the same seeds, one torch thread
each. Every ``--eval-every`` environment steps training pauses and the deterministic
policy plays 10 seeded episodes (the same seeds for both); evaluation time is not
counted, and both arms run once untimed first (imports, first-call costs).
Target: ratio (ours / SB3) <= 0.7.

    python benchmarks/robotics_ppo_vs_sb3.py [--seeds 0 1 2] [--max-steps 100000]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from benchmarks.load_overhead import write, zoo_env
from robotics.tasks import run_episodes

ENV_ID = "CartPole-v1"
TARGET_RETURN = 475.0
EVAL_SEED = 10_000


class Clock:
    """Training wall-clock with evaluation pauses taken out."""

    def __init__(self):
        self.start = time.perf_counter()
        self.paused = 0.0

    def elapsed(self) -> float:
        return time.perf_counter() - self.start - self.paused

    def evaluate(self, act) -> float:
        began = time.perf_counter()
        mean = run_episodes(act, ENV_ID, 10, EVAL_SEED).mean_return
        self.paused += time.perf_counter() - began
        return mean


def ours(seed: int, max_steps: int, eval_every: int) -> dict:
    from robotics.recipes.ppo import PPORecipe

    result: dict = {"reached": False}

    def stop(step, policy):
        if step // eval_every == (step - 256) // eval_every:
            return False
        mean = clock.evaluate(policy.act)
        result.update(steps=step, seconds=clock.elapsed(), eval_return=mean)
        result["reached"] = mean >= TARGET_RETURN
        return result["reached"]

    with tempfile.TemporaryDirectory() as out:
        clock = Clock()
        PPORecipe(env_id=ENV_ID, total_steps=max_steps, seed=seed, checkpoint_every_steps=0,
                  eval_episodes=1).run(out, progress=False, stop=stop)
    return result


def sb3(seed: int, max_steps: int, eval_every: int) -> dict:
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    result: dict = {"reached": False}

    def linear(initial):
        return lambda progress_remaining: progress_remaining * initial

    class EvalStop(BaseCallback):
        """Evaluate after each update that crosses an ``eval_every`` boundary; stop once the target is reached."""

        def _on_rollout_start(self) -> None:  # the previous rollout has been trained on
            step = self.num_timesteps
            if step == 0 or step // eval_every == (step - 256) // eval_every:
                return
            mean = clock.evaluate(lambda obs: self.model.predict(obs, deterministic=True)[0])
            result.update(steps=step, seconds=clock.elapsed(), eval_return=mean)
            result["reached"] = mean >= TARGET_RETURN

        def _on_step(self) -> bool:
            return not result["reached"]

    clock = Clock()
    env = make_vec_env(ENV_ID, n_envs=8, seed=seed)
    model = PPO("MlpPolicy", env, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20,
                ent_coef=0.0, learning_rate=linear(1e-3), clip_range=linear(0.2), seed=seed, device="cpu")
    model.learn(total_timesteps=max_steps, callback=EvalStop())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--max-steps", type=int, default=100_000)
    parser.add_argument("--eval-every", type=int, default=4096)
    parser.add_argument("--note", default="", help="conditions of the run, e.g. other jobs sharing the CPU")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for arm in (ours, sb3):  # warm-up: imports and first-call costs are paid before any timing
        arm(0, 512, 256)
    runs = {"ours": [], "sb3": []}
    for seed in args.seeds:  # interleaved, so load on the machine affects both arms alike
        for name, arm in (("ours", ours), ("sb3", sb3)):
            runs[name].append({"seed": seed, **arm(seed, args.max_steps, args.eval_every)})
            print(name, runs[name][-1], flush=True)
    median = {name: statistics.median(r["seconds"] for r in rs) for name, rs in runs.items()}
    write({
        "benchmark": "robotics_ppo_vs_sb3",
        "task": f"PPO to a deterministic mean return of {TARGET_RETURN} over 10 episodes on {ENV_ID}",
        "hyper_parameters": "rl-baselines3-zoo ppo.yml CartPole-v1, both arms",
        "eval_every_steps": args.eval_every,
        "runs": runs,
        "median_seconds": median,
        "all_reached": all(r["reached"] for rs in runs.values() for r in rs),
        "ratio_ours_over_sb3": median["ours"] / median["sb3"],
        "target": "<= 0.7",
        "note": args.note,
        "env": zoo_env(),
    })


if __name__ == "__main__":
    main()
