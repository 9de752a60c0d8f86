"""Scripted navigation experts: success rate and episode length over seeded episodes.

The PointMaze planner (BFS over the maze map + PD controller, robotics.experts) on UMaze and
Medium, and minigrid's BabyAIBot on BabyAI GoToLocal, episode ``i`` reset with seed
``i``. These experts are the ceiling arm of the navigation suite and the source of the
demonstration datasets; the issue asks for 20/20 on the mazes.

    python benchmarks/robotics_navigation_experts.py [--episodes 20]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.load_overhead import write, zoo_env

ENV_IDS = ("PointMaze_UMaze-v3", "PointMaze_Medium-v3", "BabyAI-GoToLocal-v0")


def measure(env_id: str, episodes: int) -> dict:
    """Success count, mean length and steps/s of ``env_id``'s expert over seeds 0..episodes-1."""
    from robotics.envs import make_env
    from robotics.experts import expert_for

    successes, lengths, start = 0, [], time.perf_counter()
    for seed in range(episodes):
        env = make_env(env_id)
        obs, _ = env.reset(seed=seed)
        expert, done, length = expert_for(env_id)(env), False, 0
        while not done:
            obs, reward, terminated, truncated, info = env.step(expert(obs))
            length, done = length + 1, terminated or truncated
        successes += bool(info["success"]) if "success" in info else bool(terminated and reward > 0)
        lengths.append(length)
        env.close()
    seconds = time.perf_counter() - start
    return {"env_id": env_id, "episodes": episodes, "successes": successes, "success_rate": successes / episodes,
            "mean_length": float(np.mean(lengths)), "steps_per_second": round(sum(lengths) / seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=20)
    args = parser.parse_args()
    rows = [measure(env_id, args.episodes) for env_id in ENV_IDS]
    write({"benchmark": "robotics_navigation_experts", "seeds": f"0-{args.episodes - 1}", "results": rows,
           "env": zoo_env()})


if __name__ == "__main__":
    main()
