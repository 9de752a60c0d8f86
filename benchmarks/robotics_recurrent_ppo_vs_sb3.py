"""Wall-clock to 0.9 success on MiniGrid-DoorKey-8x8: our recurrent PPO vs sb3-contrib's RecurrentPPO.

Both arms follow the bundled policy's curriculum (robotics/train_bundled.py): 100,000 steps in
DoorKey-5x5, then the same policy continued in DoorKey-8x8 for at most ``--max-steps``, each stage
annealing its learning rate from 1e-3. Both see the same observation (the zoo's flat grid vector)
through the same encoder (robotics.models.encoders.GridEncoder, as SB3's features extractor), a
128-wide recurrent core shared by actor and critic (our GRU; sb3-contrib has only an LSTM) and
64-wide tanh heads, with the recipe's defaults: 16 envs × 128 steps, minibatches of 512
transitions, 4 epochs, clip 0.2, entropy 0.01, γ 0.99, λ 0.95, one torch thread. Every
``--eval-every`` steps of the 8x8 stage training pauses and the deterministic policy plays 20
seeded episodes (the same seeds for both arms); evaluation time is not counted, the 5x5 stage
is. Target: median ratio (ours / SB3) <= 0.7 over >= 3 seeds. Results are written after every run.

    python -m benchmarks.robotics_recurrent_ppo_vs_sb3 [--seeds 0 1 2] [--max-steps 200000]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
import torch

from benchmarks.load_overhead import write, zoo_env

SMALL, LARGE = "MiniGrid-DoorKey-5x5-v0", "MiniGrid-DoorKey-8x8-v0"
FIRST_STAGE_STEPS = 100_000
TARGET_SUCCESS = 0.9
EVAL_EPISODES, EVAL_SEED = 20, 10_000
HYPER = dict(num_envs=16, num_steps=128, minibatch_size=512, update_epochs=4, learning_rate=1e-3, clip_coef=0.2,
             ent_coef=0.01, gamma=0.99, gae_lambda=0.95, vf_coef=0.5, max_grad_norm=0.5)


class Clock:
    """Training wall-clock with evaluation pauses taken out."""

    def __init__(self):
        self.start, self.paused = time.perf_counter(), 0.0

    def elapsed(self) -> float:
        return time.perf_counter() - self.start - self.paused

    def paused_for(self, work):
        """``work()``'s result; the time it took is not counted."""
        began = time.perf_counter()
        result = work()
        self.paused += time.perf_counter() - began
        return result

    def success(self, make_actor) -> float:
        from robotics.navigation import run_navigation

        return self.paused_for(lambda: float(run_navigation(make_actor, LARGE, EVAL_EPISODES, EVAL_SEED).successes.mean()))


def crossed(step: int, batch: int, every: int) -> bool:
    """Whether the iteration that ended at ``step`` (``batch`` steps long) crossed a multiple of ``every``."""
    return step // every != (step - batch) // every


def ours(seed: int, max_steps: int, eval_every: int) -> dict:
    from robotics.navigation import policy_actor
    from robotics.recipes.recurrent_ppo import RecurrentPPORecipe

    result: dict = {"reached": False}
    batch = HYPER["num_envs"] * HYPER["num_steps"]

    def stop(step, policy):
        if not crossed(step, batch, eval_every):
            return False
        rate = clock.success(policy_actor(policy))
        result.update(steps=step, seconds=clock.elapsed(), success=rate, reached=rate >= TARGET_SUCCESS)
        return result["reached"]

    with tempfile.TemporaryDirectory() as out:
        clock = Clock()
        common = dict(seed=seed, checkpoint_every_steps=0, eval_episodes=1, **HYPER)
        RecurrentPPORecipe(env_id=SMALL, total_steps=FIRST_STAGE_STEPS, **common).run(f"{out}/small", progress=False)
        RecurrentPPORecipe(env_id=LARGE, model=f"{out}/small", total_steps=max_steps, **common).run(
            f"{out}/large", progress=False, stop=stop)
    return result


def flat_grid_env(env_id: str):
    """``env_id`` with the zoo's flat observation vector (image, direction, mission tokens) as a Box."""
    import gymnasium as gym

    from robotics.envs import make_env
    from robotics.observations import observation_spec

    env = make_env(env_id)
    spec = observation_spec(env.observation_space)
    space = gym.spaces.Box(-np.inf, np.inf, (spec.size,), np.float32)
    return gym.wrappers.TransformObservation(env, spec.flatten, space)


def sb3(seed: int, max_steps: int, eval_every: int) -> dict:
    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

    from robotics.envs import make_env
    from robotics.models.encoders import GridEncoder
    from robotics.observations import observation_spec

    parts = observation_spec(make_env(LARGE).observation_space).parts

    class GridFeatures(BaseFeaturesExtractor):
        """The zoo's grid encoder as SB3's features extractor: both arms read the grid alike."""

        def __init__(self, observation_space):
            encoder = GridEncoder(parts)
            super().__init__(observation_space, encoder.features)
            self.encoder = encoder

        def forward(self, obs):
            return self.encoder(obs)

    result: dict = {"reached": False}
    batch = HYPER["num_envs"] * HYPER["num_steps"]

    def make_actor(env):
        flatten, state, starts = observation_spec(env.observation_space).flatten, None, np.ones(1, dtype=bool)

        def act(obs):
            nonlocal state, starts
            action, state = model.predict(flatten(obs)[None], state=state, episode_start=starts, deterministic=True)
            starts = np.zeros(1, dtype=bool)
            return int(action[0])
        return act

    class EvalStop(BaseCallback):
        """Evaluate after each update that crosses an ``eval_every`` boundary; stop once the target is reached."""

        def _on_rollout_start(self) -> None:  # the previous rollout has been trained on
            if self.num_timesteps and crossed(self.num_timesteps, batch, eval_every):
                self.evaluate()

        def _on_training_end(self) -> None:  # the last rollout's update, as our recipe's last stop()
            if result.get("steps") != self.num_timesteps and crossed(self.num_timesteps, batch, eval_every):
                self.evaluate()

        def evaluate(self) -> None:
            rate = clock.success(make_actor)
            result.update(steps=self.num_timesteps, seconds=clock.elapsed(), success=rate,
                          reached=rate >= TARGET_SUCCESS)

        def _on_step(self) -> bool:
            return not result["reached"]

    def envs(env_id: str):
        return make_vec_env(lambda: flat_grid_env(env_id), n_envs=HYPER["num_envs"], seed=seed)

    clock = Clock()
    model = RecurrentPPO(
        "MlpLstmPolicy", envs(SMALL), n_steps=HYPER["num_steps"], batch_size=HYPER["minibatch_size"],
        n_epochs=HYPER["update_epochs"], learning_rate=lambda remaining: remaining * HYPER["learning_rate"],
        clip_range=HYPER["clip_coef"], ent_coef=HYPER["ent_coef"], gamma=HYPER["gamma"], gae_lambda=HYPER["gae_lambda"],
        vf_coef=HYPER["vf_coef"], max_grad_norm=HYPER["max_grad_norm"], seed=seed, device="cpu",
        policy_kwargs=dict(features_extractor_class=GridFeatures, lstm_hidden_size=128, shared_lstm=True,
                           enable_critic_lstm=False, net_arch=dict(pi=[64], vf=[64]), activation_fn=torch.nn.Tanh))
    model.learn(total_timesteps=FIRST_STAGE_STEPS)
    model.set_env(envs(LARGE))
    model.learn(total_timesteps=max_steps, callback=EvalStop(), reset_num_timesteps=True)
    return result


def summary(runs: dict[str, list]) -> dict:
    """Median seconds to the target per arm (None unless all its runs reached it) and their ratio; when
    every run of ours reached it and none of SB3's did, SB3's time spent bounds its time to the target
    from below, so ``ratio_upper_bound`` bounds the ratio from above."""
    def median(rs, reached_only=True):
        return statistics.median(r["seconds"] for r in rs) if rs and (all(r["reached"] for r in rs)
                                                                      or not reached_only) else None

    ours_s, sb3_s = median(runs["ours"]), median(runs["sb3"])
    paired = len(runs["ours"]) == len(runs["sb3"])
    censored = paired and ours_s and runs["sb3"] and not any(r["reached"] for r in runs["sb3"])
    return {"median_seconds": {"ours": ours_s, "sb3": sb3_s},
            "ratio_ours_over_sb3": ours_s / sb3_s if paired and ours_s and sb3_s else None,
            "ratio_upper_bound": ours_s / median(runs["sb3"], reached_only=False) if censored else None}


def comparison(benchmark: str, task: str, runs: dict[str, list], note: str, **settings) -> dict:
    """The results file of a wall-clock-to-success comparison: the runs so far, their summary and the machine."""
    return {"benchmark": benchmark, "task": task, **settings, "runs": runs, **summary(runs), "target": "<= 0.7",
            "note": note, "env": zoo_env()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--max-steps", type=int, default=200_000, help="most env steps of the 8x8 stage")
    parser.add_argument("--eval-every", type=int, default=16_384)
    parser.add_argument("--note", default="", help="conditions of the run, e.g. other jobs sharing the CPU")
    args = parser.parse_args()
    torch.set_num_threads(1)
    runs: dict[str, list] = {"ours": [], "sb3": []}
    for seed in args.seeds:  # interleaved, so load on the machine affects both arms alike
        for name, arm in (("ours", ours), ("sb3", sb3)):
            runs[name].append({"seed": seed, **arm(seed, args.max_steps, args.eval_every)})
            print(name, runs[name][-1], flush=True)
            write(comparison("robotics_recurrent_ppo_vs_sb3",
                             f"success >= {TARGET_SUCCESS} over {EVAL_EPISODES} deterministic episodes of {LARGE}, "
                             f"after {FIRST_STAGE_STEPS:,} steps of {SMALL} (counted)",
                             runs, args.note, hyper_parameters=HYPER, eval_every_steps=args.eval_every,
                             max_steps_large=args.max_steps))


if __name__ == "__main__":
    main()
