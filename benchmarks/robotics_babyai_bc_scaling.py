"""Behaviour cloning of BabyAI GoToLocal against the number of demonstrations: held-out success per dataset size.

Records 10,000 BabyAIBot episodes (seeds 1000-10999; the registered 5k dataset is their first half) into
a temporary folder, then for each ``--demos N`` clones its first N episodes with the same memoryless FiLM
recipe (:class:`robotics.recipes.bc.BCRecipe`, 12 epochs) and runs ``--episodes`` held-out episodes
(seeds 20000+) deterministically: the success rate with its Wilson 95% interval. A curve flat in N says
the clone's failures are not for want of data (issue 18's BabyAI target: success >= 0.90 with <= 5,000).

    python -m benchmarks.robotics_babyai_bc_scaling [--demos 1250 2500 5000 10000] [--episodes 200]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchmarks.load_overhead import write, zoo_env

ENV_ID = "BabyAI-GoToLocal-v0"
HELD_OUT_SEED = 20_000  # robotics.bench.BENCH_SEED


def main() -> None:
    import zoo
    from robotics import datasets
    from robotics.navigation import policy_actor, run_navigation
    from robotics.recipes.bc import BCRecipe
    from zoo.bench_stats import wilson_ci95

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demos", type=int, nargs="+", default=[1250, 2500, 5000, 10000])
    parser.add_argument("--episodes", type=int, default=200, help="held-out evaluation episodes")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="babyai_scaling_"))
    data = datasets.record_expert(ENV_ID, work / "demos", episodes=max(args.demos), seed=1000)
    rows = []
    for demos in args.demos:
        start = time.perf_counter()
        result = BCRecipe(data=str(data), episodes=demos, val_fraction=0.05, eval_episodes=10, channels=64,
                          hidden=(64,), threads=args.threads,
                          train={"epochs": 12, "batch_size": 128, "lr": 1e-3}).run(work / f"bc_{demos}", progress=False)
        train_seconds = time.perf_counter() - start
        run = run_navigation(policy_actor(zoo.load(result.out_dir)), ENV_ID, args.episodes, HELD_OUT_SEED)
        rate, lo, hi = wilson_ci95(int(run.successes.sum()), args.episodes)
        rows.append({"demonstrations": demos, "success": round(rate, 4), "success_ci95": [round(lo, 4), round(hi, 4)],
                     "spl": round(float(run.spl.mean()), 4), "train_seconds": round(train_seconds, 1)})
        print(rows[-1], flush=True)
    write({
        "benchmark": "robotics_babyai_bc_scaling",
        "env_id": ENV_ID,
        "recipe": {"architecture": "film_categorical", "channels": 64, "epochs": 12, "batch_size": 128, "lr": 1e-3},
        "held_out": {"seeds": f"{HELD_OUT_SEED}-{HELD_OUT_SEED + args.episodes - 1}", "episodes": args.episodes},
        "curve": rows,
        "target": {"success": 0.90, "max_demonstrations": 5000},
        "env": zoo_env(),
    })


if __name__ == "__main__":
    main()
