"""The ``robotics`` benchmark suite: every bundled policy in its environment, against a random policy.

Per policy, each seed runs ``EPISODES_PER_SEED`` deterministic episodes (reset
with their own seeds): mean return with a 95% CI over seeds, success (the share
of episodes reaching gymnasium's ``reward_threshold``, where the environment has
one), environment steps per second (policy and simulator together) and predict
latency. The control arm is a uniformly random policy in the same environments.
Published rl-baselines3-zoo returns (``robotics/data/rl_zoo_reference.json``)
sit beside ours where the zoo has the same algorithm and environment.

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
PLOT = PlotSpec(x="extra.train_env_steps", x_label="environment steps in training (log scale)")


def suite(quick: bool = False) -> list[BenchTask]:
    """Bundled policies over 10 seeds (``quick``: 3 seeds of one episode) on each backend asked for,
    then a random policy per environment."""
    from zoo.hub import info, list_models

    seeds = tuple(range(3 if quick else 10))
    episodes = 1 if quick else EPISODES_PER_SEED
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
            run=partial(_run_policy, model_id, env_id, episodes, iters),
            reference=reference(model_id, env_id),
        ))
    for env_id in dict.fromkeys(env_ids):
        tasks.append(BenchTask(
            name=f"random@{env_id}",
            model="control/random",
            dataset=env_id,
            split="eval",
            backend="numpy",
            control=True,
            seeds=seeds,
            run=partial(_run_random, env_id, episodes),
        ))
    return tasks


def reference(model_id: str, env_id: str) -> dict | None:
    """The rl-baselines3-zoo row for this policy's algorithm and environment, if the zoo has one."""
    from zoo.hub import info

    published = json.loads((files("robotics") / "data" / "rl_zoo_reference.json").read_text(encoding="utf-8"))
    algo = (info(model_id).provenance.get("recipe") or {}).get("name")  # ppo, sac, bc
    row = next((r for r in published["rows"] if r["algo"] == algo and r["env_id"] == env_id), None)
    if row is None:
        return None
    return {"source": f"rl-baselines3-zoo {algo.upper()} {row['env_version']}, {row['n_timesteps']} steps",
            "metrics": {"mean_return": row["mean_reward"]}}


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

    model = load(model_id, device="cpu", backend=backend)  # a converted policy keeps rollout
    step(f"{episodes} episode(s) of {env_id}")
    rollout = model.rollout(env_id, episodes=episodes, seed=BENCH_SEED + seed * episodes)
    obs = np.zeros(model.card.input["shape"], dtype=np.float32)
    with torch_threads(1):
        latency = measure_latency(lambda: model.predict(obs), iters=iters)
    metrics, per_episode = _episode_results(rollout)
    return TaskOutput(
        metrics=metrics,
        per_example=per_episode,
        latency_ms=latency,
        throughput=rollout.steps_per_second,
        throughput_unit="env steps/s",
        params=model.num_params,
        extra={"episodes_per_seed": episodes, "train_env_steps": train_env_steps(model_id)},
    )


def _run_random(env_id: str, episodes: int, seed: int) -> TaskOutput:
    from robotics.tasks import random_actions, run_episodes

    step(f"{episodes} episode(s) of {env_id}")
    rollout = run_episodes(random_actions(env_id, seed), env_id, episodes, BENCH_SEED + seed * episodes)
    metrics, per_episode = _episode_results(rollout)
    return TaskOutput(
        metrics=metrics,
        per_example=per_episode,
        throughput=rollout.steps_per_second,
        throughput_unit="env steps/s",
        params=0,
        extra={"episodes_per_seed": episodes},
    )
