"""The ``robotics`` benchmark suite: every bundled policy in its environment, against a random policy.

Per policy, each seed runs ``EPISODES_PER_SEED`` deterministic episodes (reset
with their own seeds): mean return with a 95% CI over seeds, success (the share
of episodes reaching gymnasium's ``reward_threshold``, where the environment has
one), environment steps per second (policy and simulator together) and predict
latency. The control arm is a uniformly random policy in the same environments.

Navigation environments (robotics.navigation) are scored per episode instead: success
(Wilson interval over every episode), episode length in steps, and SPL against the
shortest path at reset, over ``NAVIGATION_EPISODES_PER_SEED`` held-out episodes per seed
(100 in all). Each navigation environment with a scripted expert (:data:`NAVIGATION_ENVS`)
gets two control arms, a random policy and the expert (the ceiling), whether or not a
bundled policy runs there; a bundled navigation policy gets its rows as soon as it is bundled.
Published rl-baselines3-zoo returns (``robotics/data/rl_zoo_reference.json``)
sit beside ours where the zoo has the same algorithm and environment, and the BabyAI
paper's imitation success (``robotics/data/babyai_reference.json``) beside our cloned
GoToLocal policy.

The plot (:data:`PLOT`) shows return against the environment steps a policy
was trained with, the random control as a dashed line; latency says little
about a controller.
"""
from __future__ import annotations

import json
from functools import partial
from importlib.resources import files

import numpy as np

from zoo.bench import BenchTask, PlotSpec, TaskOutput, measure_latency, step

BENCH_SEED = 20_000  # apart from training (0...) and card evaluation (10_000...) seeds
EPISODES_PER_SEED = 2
NAVIGATION_EPISODES_PER_SEED = 10
# Navigation environments with a scripted expert (robotics.experts): their control arms run in every suite.
NAVIGATION_ENVS = ("PointMaze_UMaze-v3", "PointMaze_Medium-v3", "BabyAI-GoToLocal-v0")
PLOT = PlotSpec(x="extra.train_env_steps", x_label="environment steps in training (log scale)")


def suite(quick: bool = False) -> list[BenchTask]:
    """Bundled policies over 10 seeds (``quick``: 3 seeds of one episode) on each backend asked for,
    then a random policy per environment and, in navigation environments with an expert, the expert."""
    from zoo.hub import info, list_models

    seeds = tuple(range(3 if quick else 10))
    iters = 20 if quick else 200
    tasks, env_ids = [], []
    for model_id in list_models("robotics/*", pretrained=True):
        env_id = info(model_id).input["env_ids"][0]
        env_ids.append(env_id)
        tasks.append(BenchTask(
            name=model_id.split("/", 1)[1],
            model=model_id,
            dataset=env_id,
            split="eval",
            per_backend=True,
            seeds=seeds,
            run=partial(_run_policy, model_id, env_id, episodes_per_seed(env_id, quick), iters),
            reference=reference(model_id, env_id),
        ))
    for env_id in dict.fromkeys(env_ids + list(NAVIGATION_ENVS)):
        episodes = episodes_per_seed(env_id, quick)
        arms = {"random": partial(_run_random, env_id, episodes)}
        if env_id in NAVIGATION_ENVS:
            arms["expert"] = partial(_run_expert, env_id, episodes)
        tasks += [BenchTask(name=f"{arm}@{env_id}", model=f"control/{arm}", dataset=env_id, split="eval",
                            backend="numpy", control=True, seeds=seeds, run=run) for arm, run in arms.items()]
    return tasks


def episodes_per_seed(env_id: str, quick: bool) -> int:
    """Episodes each seed runs: one in quick mode; a navigation environment's 10 seeds run 100 in all."""
    from robotics.navigation import is_navigation

    if quick:
        return 1
    return NAVIGATION_EPISODES_PER_SEED if is_navigation(env_id) else EPISODES_PER_SEED


def reference(model_id: str, env_id: str) -> dict | None:
    """The published row for this policy's algorithm (or one it stands beside: an MLP PPO beside our recurrent
    PPO) and environment: rl-baselines3-zoo's returns, or the BabyAI paper's imitation success."""
    from zoo.hub import info

    algo = (info(model_id).provenance.get("recipe") or {}).get("name")  # ppo, sac, bc, recurrent_ppo
    babyai = _published("babyai_reference.json")
    row = next((r for r in babyai["rows"] if r["algo"] == algo and r["env_id"] == env_id), None)
    if row is not None:
        return {"source": f"BabyAI paper, imitation learning from {row['demonstrations']} demonstrations",
                "metrics": {"success": row["success"]}}
    published = _published("rl_zoo_reference.json")
    row = next((r for r in published["rows"] if algo in (r["algo"], *r.get("beside", ())) and r["env_id"] == env_id),
               None)
    if row is None:
        return None
    policy = f" ({row['policy']})" if "policy" in row else ""
    return {"source": f"rl-baselines3-zoo {row['algo'].upper()}{policy} {row['env_version']}, {row['n_timesteps']} steps",
            "metrics": {"mean_return": row["mean_reward"]}}


def _published(name: str) -> dict:
    """A table of published figures in ``robotics/data``."""
    return json.loads((files("robotics") / "data" / name).read_text(encoding="utf-8"))


def _episode_results(rollout) -> tuple[dict[str, float], dict[str, np.ndarray] | None]:
    """Metrics of a rollout, and the per-episode 0/1 successes behind ``success`` (its Wilson interval)."""
    from robotics.envs import make_env

    env = make_env(rollout.env_id)
    threshold = env.spec.reward_threshold
    env.close()
    metrics = {"mean_return": rollout.mean_return}
    successes = None
    if threshold is not None:
        successes = (np.asarray(rollout.returns) >= threshold).astype(np.float64)
        metrics["success"] = float(successes.mean())
    metrics["mean_length"] = float(rollout.lengths.mean())
    return metrics, None if successes is None else {"success": successes}


def train_env_steps(model_id: str) -> int | None:
    """Environment steps the policy's recipe trained with (None for one trained offline, e.g. BC)."""
    from zoo.hub import info

    params = (info(model_id).provenance or {}).get("recipe", {}).get("params", {})
    return params.get("total_steps")


def _run_policy(model_id: str, env_id: str, episodes: int, iters: int, seed: int, backend: str) -> TaskOutput:
    from robotics.tasks import torch_threads
    from zoo.hub import load

    from robotics.navigation import is_navigation, policy_actor

    model = load(model_id, device="cpu", backend=backend)  # a converted policy keeps rollout
    if is_navigation(env_id):
        output = _run_navigation(policy_actor(model), env_id, episodes, seed)
    else:
        step(f"{episodes} episode(s) of {env_id}")
        output = _rollout_output(model.rollout(env_id, episodes=episodes, seed=BENCH_SEED + seed * episodes),
                                 episodes)
    obs = np.zeros(model.card.input["shape"], dtype=np.float32)
    with torch_threads(1):
        output.latency_ms = measure_latency(lambda: model.predict(obs), iters=iters)
    output.params = model.num_params
    output.extra["train_env_steps"] = train_env_steps(model_id)
    return output


def _run_navigation(make_actor, env_id: str, episodes: int, seed: int) -> TaskOutput:
    """Success (per episode, for its Wilson interval), SPL and episode length of held-out navigation episodes."""
    from robotics.navigation import MAZE_PREFIXES, run_navigation

    step(f"{episodes} navigation episode(s) of {env_id}")
    run = run_navigation(make_actor, env_id, episodes, BENCH_SEED + seed * episodes)
    return TaskOutput(
        metrics=run.metrics(),
        per_example={"success": run.successes, "spl": run.spl},
        throughput=run.steps_per_second,
        throughput_unit="env steps/s",
        params=0,
        extra={"episodes_per_seed": episodes, "path_unit": "m" if env_id.startswith(MAZE_PREFIXES) else "moves",
               "mean_shortest_path": float(run.shortest.mean())},
    )


def _run_expert(env_id: str, episodes: int, seed: int) -> TaskOutput:
    from robotics.experts import expert_for

    return _run_navigation(expert_for(env_id), env_id, episodes, seed)


def _run_random(env_id: str, episodes: int, seed: int) -> TaskOutput:
    from robotics.navigation import is_navigation, random_actor
    from robotics.tasks import random_actions, run_episodes

    if is_navigation(env_id):
        return _run_navigation(random_actor(seed), env_id, episodes, seed)
    step(f"{episodes} episode(s) of {env_id}")
    return _rollout_output(run_episodes(random_actions(env_id, seed), env_id, episodes, BENCH_SEED + seed * episodes),
                           episodes)


def _rollout_output(rollout, episodes: int) -> TaskOutput:
    """Return, success against the reward threshold and episode length of a control rollout."""
    metrics, per_episode = _episode_results(rollout)
    return TaskOutput(
        metrics=metrics,
        per_example=per_episode,
        throughput=rollout.steps_per_second,
        throughput_unit="env steps/s",
        params=0,
        extra={"episodes_per_seed": episodes},
    )
