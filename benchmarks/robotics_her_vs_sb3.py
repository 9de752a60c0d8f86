"""Wall-clock to 0.9 success on sparse PointMaze UMaze: our SAC+HER vs Stable-Baselines3 SAC + HerReplayBuffer.

Both arms use the bundled policy's settings (robotics/train_bundled.py): γ 0.98, 128×128 ReLU
MLPs, lr 1e-3 for actor, critics and temperature, batch 256, automatic entropy tuning from 1.0,
one gradient step per environment step from step 1,000, and HER's ``future`` strategy with 4
relabelled goals per real one, one torch thread each. Both step the same environment
(robotics.envs.make_env: the episode ends when the goal is reached). Every ``--eval-every`` steps
training pauses and the deterministic policy plays 50 seeded episodes (the same seeds for both
arms); evaluation time is not counted. Target: median ratio (ours / SB3) <= 0.7 over >= 3 seeds.
With ``--jobs 2`` a seed's two arms run at the same time, one per core, so that other load on the
machine falls on both alike. Results are written after every seed.

    python -m benchmarks.robotics_her_vs_sb3 [--seeds 0 1 2] [--max-steps 150000] [--jobs 2]
"""
from __future__ import annotations

import argparse
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import torch

from benchmarks.load_overhead import write
from benchmarks.robotics_recurrent_ppo_vs_sb3 import Clock, comparison

ENV_ID = "PointMaze_UMaze-v3"
TARGET_SUCCESS = 0.9
EVAL_EPISODES, EVAL_SEED = 50, 10_000
HYPER = dict(gamma=0.98, hidden=(128, 128), learning_rate=1e-3, batch_size=256, learning_starts=1_000, tau=0.005,
             her_future_goals=4)


def success(clock: Clock, make_actor) -> float:
    """Success over the evaluation episodes, the time they take taken off ``clock``."""
    from robotics.navigation import run_navigation

    return clock.paused_for(lambda: float(run_navigation(make_actor, ENV_ID, EVAL_EPISODES, EVAL_SEED).successes.mean()))


def ours(seed: int, max_steps: int, eval_every: int) -> dict:
    from robotics.navigation import policy_actor
    from robotics.recipes.sac import SACRecipe

    torch.set_num_threads(1)
    result: dict = {"reached": False}

    def stop(step, policy):
        rate = success(clock, policy_actor(policy))
        result.update(steps=step, seconds=clock.elapsed(), success=rate, reached=rate >= TARGET_SUCCESS)
        return result["reached"]

    import tempfile

    with tempfile.TemporaryDirectory() as out:
        clock = Clock()
        SACRecipe(env_id=ENV_ID, her=True, total_steps=max_steps, seed=seed, gamma=HYPER["gamma"],
                  hidden=HYPER["hidden"], policy_lr=HYPER["learning_rate"], q_lr=HYPER["learning_rate"],
                  batch_size=HYPER["batch_size"], learning_starts=HYPER["learning_starts"], tau=HYPER["tau"],
                  her_future_goals=HYPER["her_future_goals"], checkpoint_every_steps=0, eval_episodes=1,
                  log_every_steps=eval_every).run(out, progress=False, stop=stop)
    return result


def sb3(seed: int, max_steps: int, eval_every: int) -> dict:
    from stable_baselines3 import SAC, HerReplayBuffer
    from stable_baselines3.common.callbacks import BaseCallback

    from robotics.envs import make_env

    torch.set_num_threads(1)
    result: dict = {"reached": False}

    def make_actor(env):
        return lambda obs: model.predict(obs, deterministic=True)[0]

    class EvalStop(BaseCallback):
        """Evaluate every ``eval_every`` steps; stop once the target is reached."""

        def _on_step(self) -> bool:
            if self.num_timesteps % eval_every == 0:
                rate = success(clock, make_actor)
                result.update(steps=self.num_timesteps, seconds=clock.elapsed(), success=rate,
                              reached=rate >= TARGET_SUCCESS)
            return not result["reached"]

    clock = Clock()
    model = SAC("MultiInputPolicy", make_env(ENV_ID), learning_rate=HYPER["learning_rate"], gamma=HYPER["gamma"],
                batch_size=HYPER["batch_size"], learning_starts=HYPER["learning_starts"], tau=HYPER["tau"],
                replay_buffer_class=HerReplayBuffer,
                replay_buffer_kwargs=dict(n_sampled_goal=HYPER["her_future_goals"], goal_selection_strategy="future"),
                policy_kwargs=dict(net_arch=list(HYPER["hidden"])), seed=seed, device="cpu")
    model.learn(total_timesteps=max_steps, callback=EvalStop())
    return result


ARMS = {"ours": ours, "sb3": sb3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--max-steps", type=int, default=150_000, help="most env steps of a run")
    parser.add_argument("--eval-every", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, choices=(1, 2), default=1, help="2: a seed's arms side by side")
    parser.add_argument("--note", default="", help="conditions of the run, e.g. other jobs sharing the CPU")
    args = parser.parse_args()
    runs: dict[str, list] = {"ours": [], "sb3": []}
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        for seed in args.seeds:  # interleaved, so load on the machine affects both arms alike
            futures = {name: pool.submit(arm, seed, args.max_steps, args.eval_every) for name, arm in ARMS.items()}
            for name, future in futures.items():
                runs[name].append({"seed": seed, **future.result()})
                print(name, runs[name][-1], flush=True)
            write(comparison("robotics_her_vs_sb3",
                             f"success >= {TARGET_SUCCESS} over {EVAL_EPISODES} deterministic episodes of {ENV_ID} "
                             f"(seeds {EVAL_SEED}+)", runs, args.note, hyper_parameters=HYPER,
                             eval_every_steps=args.eval_every, max_steps=args.max_steps, jobs=args.jobs))


if __name__ == "__main__":
    main()
