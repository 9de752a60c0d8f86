"""The ``robotics`` benchmark suite: every bundled policy in its environment, against a random policy.

Per policy, each seed runs ``EPISODES_PER_SEED`` deterministic episodes (reset
with their own seeds): mean return with a 95% CI over seeds, success (the share
of episodes reaching gymnasium's ``reward_threshold``, where the environment has
one), environment steps per second (policy and simulator together) and predict
latency. The control arm is a uniformly random policy in the same environments.
Published rl-baselines3-zoo returns (``robotics/data/rl_zoo_reference.json``)
sit beside ours where the zoo has the same algorithm and environment.
"""
from __future__ import annotations

import json
from functools import partial
from importlib.resources import files

import numpy as np

from zoo.bench import BenchTask, TaskOutput, measure_latency

BENCH_SEED = 20_000  # apart from training (0...) and card evaluation (10_000...) seeds
EPISODES_PER_SEED = 2


def suite(quick: bool = False, backends: tuple[str, ...] = ("torch",)) -> list[BenchTask]:
    """Bundled policies over 10 seeds (``quick``: 3 seeds of one episode) on each of ``backends``,
    then a random policy per environment."""
    from zoo.hub import info, list_models

    seeds = tuple(range(3 if quick else 10))
    episodes = 1 if quick else EPISODES_PER_SEED
    iters = 20 if quick else 200
    tasks, env_ids = [], []
    for model_id in list_models("robotics/*", pretrained=True):
        env_id = info(model_id).input["env_ids"][0]
        env_ids.append(env_id)
        tasks += [BenchTask(
            name=model_id.split("/", 1)[1] + ("" if backend == "torch" else f"[{backend}]"),
            model=model_id,
            dataset=env_id,
            split="eval",
            backend=backend,
            seeds=seeds,
            run=partial(_run_policy, model_id, env_id, episodes, iters, backend),
            reference=reference(model_id, env_id),
        ) for backend in backends]
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
    published = json.loads((files("robotics") / "data" / "rl_zoo_reference.json").read_text(encoding="utf-8"))
    algo = model_id.split("/", 1)[1].split("-", 1)[0]
    row = next((r for r in published["rows"] if r["algo"] == algo and r["env_id"] == env_id), None)
    if row is None:
        return None
    return {"source": f"rl-baselines3-zoo {algo.upper()} {row['env_version']}, {row['n_timesteps']} steps",
            "metrics": {"mean_return": row["mean_reward"]}}


def _episode_metrics(rollout) -> dict[str, float]:
    from robotics.envs import make_env

    env = make_env(rollout.env_id)
    threshold = env.spec.reward_threshold
    env.close()
    metrics = {"mean_return": rollout.mean_return}
    if threshold is not None:
        metrics["success"] = float((rollout.returns >= threshold).mean())
    metrics["mean_length"] = float(rollout.lengths.mean())
    return metrics


def _run_policy(model_id: str, env_id: str, episodes: int, iters: int, backend: str, seed: int) -> TaskOutput:
    from robotics.tasks import torch_threads
    from zoo.hub import load

    model = load(model_id, device="cpu", backend=backend)  # a converted policy keeps rollout
    rollout = model.rollout(env_id, episodes=episodes, seed=BENCH_SEED + seed * episodes)
    obs = np.zeros(model.card.input["shape"], dtype=np.float32)
    with torch_threads(1):
        latency = measure_latency(lambda: model.predict(obs), iters=iters)
    return TaskOutput(
        metrics=_episode_metrics(rollout),
        latency_ms=latency,
        throughput=rollout.steps_per_second,
        throughput_unit="env steps/s",
        params=model.num_params,
        extra={"episodes_per_seed": episodes},
    )


def _run_random(env_id: str, episodes: int, seed: int) -> TaskOutput:
    from robotics.tasks import random_actions, run_episodes

    rollout = run_episodes(random_actions(env_id, seed), env_id, episodes, BENCH_SEED + seed * episodes)
    return TaskOutput(
        metrics=_episode_metrics(rollout),
        throughput=rollout.steps_per_second,
        throughput_unit="env steps/s",
        params=0,
        extra={"episodes_per_seed": episodes},
    )
