"""Behaviour cloning of BabyAI GoToLocal with the FiLM policy: success and SPL on held-out seeds, and its learning curve.

Trains :class:`robotics.recipes.bc.BCRecipe` (the ``film_categorical`` policy: a GRU mission encoder
FiLM-conditioning a grid CNN) on BabyAIBot demonstrations, within a wall-time budget, then runs the
navigation suite's held-out episodes (seeds 20000-20099, apart from the demonstrations' 1000-5999
and the card's 10000+): the success rate with its Wilson 95% interval, SPL and the episode length.
The learning curve is the Trainer's per-epoch training loss, held-out loss and action accuracy.
With ``--dagger-rounds R`` the cloned policy then drives ``--dagger-episodes`` episodes a round, labelled
by the bot (DAgger); the curve adds each round's driver success (the policy of the round before, on
seeds 100000+) and best held-out loss. ``--demos N`` clones only the dataset's first N episodes, so that
demonstrations and learner-driven episodes together stay within a budget of expert-labelled episodes.
Issue 18's target: success >= 0.90 with <= 5,000 demonstrations.

    python -m benchmarks.robotics_babyai_bc [--data robotics/babyai_gotolocal_expert_5k] [--minutes 10]
        [--epochs 12] [--channels 64] [--memory] [--core-size 128] [--batch-size 128] [--episodes 100]
        [--demos 3000 --dagger-rounds 4 --dagger-episodes 500 --dagger-epochs 4]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from benchmarks.load_overhead import write, zoo_env

ENV_ID = "BabyAI-GoToLocal-v0"
HELD_OUT_SEED = 20_000  # robotics.bench.BENCH_SEED: the suite's held-out episodes


def learning_curve(out_dir: Path) -> list[dict]:
    """The Trainer's end-of-epoch events: epoch, step, training loss, held-out loss and action accuracy."""
    rows = []
    for line in (out_dir / "metrics.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event.get("event") == "eval":
            rows.append({key: round(value, 4) if isinstance(value, float) else value for key, value in event.items()
                         if key in ("epoch", "step", "train_loss", "val_loss", "val_action_accuracy")})
    return rows


def main() -> None:
    import zoo
    from robotics.navigation import policy_actor, run_navigation
    from robotics.recipes.bc import BCRecipe
    from zoo.bench_stats import wilson_ci95

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="robotics/babyai_gotolocal_expert_5k")
    parser.add_argument("--minutes", type=float, default=10.0, help="wall-time budget of the training")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--memory", action="store_true", help="a GRU over the steps (trained on whole episodes)")
    parser.add_argument("--augment", action="store_true", help="train under colour permutations and mirrorings")
    parser.add_argument("--core-size", type=int, default=128, help="that GRU's width")
    parser.add_argument("--batch-size", type=int, default=128, help="frames, or episodes with --memory")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--episodes", type=int, default=100, help="held-out evaluation episodes")
    parser.add_argument("--demos", type=int, default=None, help="clone only the dataset's first N episodes")
    parser.add_argument("--dagger-rounds", type=int, default=0)
    parser.add_argument("--dagger-episodes", type=int, default=500, help="learner-driven episodes a round")
    parser.add_argument("--dagger-epochs", type=int, default=None, help="each round's epochs (default: --epochs)")
    parser.add_argument("--out", default=None, help="run folder (default: a temporary one)")
    args = parser.parse_args()

    out_dir = Path(args.out or tempfile.mkdtemp(prefix="babyai_bc_"))
    recipe = BCRecipe(data=args.data, episodes=args.demos, val_fraction=0.05, eval_episodes=10, channels=args.channels,
                      hidden=(64,), memory=args.memory, augment=args.augment, core_size=args.core_size, threads=args.threads,
                      dagger_rounds=args.dagger_rounds, dagger_episodes=args.dagger_episodes,
                      dagger_epochs=args.dagger_epochs,
                      train={"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
                             "max_minutes": args.minutes})
    start = time.perf_counter()
    result = recipe.run(out_dir, progress=False)
    train_seconds = time.perf_counter() - start
    policy = zoo.load(result.out_dir)
    run = run_navigation(policy_actor(policy), ENV_ID, args.episodes, HELD_OUT_SEED)
    rate, lo, hi = wilson_ci95(int(run.successes.sum()), args.episodes)
    training = policy.card.provenance["training"]
    dagger = training.get("dagger")
    write({
        "benchmark": "robotics_babyai_" + ("dagger" if dagger else "bc") + ("_memory" if args.memory else "")
                     + ("_augmented" if args.augment else ""),
        "env_id": ENV_ID,
        "data": args.data,
        "demonstrations": {"episodes": training["episodes"], "frames": training["frames"]},
        "expert_labelled_episodes": dagger["labelled_episodes"] if dagger else training["episodes"],
        "recipe": {"channels": args.channels, "memory": args.memory, "augment": args.augment,
                   "core_size": args.core_size, "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
                   "max_minutes": args.minutes, "threads": args.threads,
                   **({"dagger_rounds": args.dagger_rounds, "dagger_episodes": args.dagger_episodes,
                       "dagger_epochs": args.dagger_epochs or args.epochs} if dagger else {})},
        "train_seconds": round(train_seconds, 1),
        "held_out": {"seeds": f"{HELD_OUT_SEED}-{HELD_OUT_SEED + args.episodes - 1}", "episodes": args.episodes,
                     "success": round(rate, 4), "success_ci95": [round(lo, 4), round(hi, 4)],
                     "spl": round(float(run.spl.mean()), 4), "mean_length": round(float(run.lengths.mean()), 2)},
        "target": {"success": 0.90, "max_demonstrations": 5000},
        "learning_curve": learning_curve(result.out_dir),
        **({"dagger_rounds": [{key: round_[key] for key in ("round", "episodes", "frames", "driver_success", "best")}
                              for round_ in dagger["rounds"]]} if dagger else {}),
        "run_dir": str(result.out_dir),
        "env": zoo_env(),
    })


if __name__ == "__main__":
    main()
