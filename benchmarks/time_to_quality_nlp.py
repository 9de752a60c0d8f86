"""Time to quality: the zoo ``text-classification`` recipe vs the Hugging Face Trainer, each with its defaults.

Issue 20 §3: what a user feels is not samples/s on the same computation but the wall
clock until the model is good enough. Both arms fine-tune the same network
(all-MiniLM-L6-v2 + a fresh linear head, built by the recipe's own code under the
same seed) on the same train / validation split (the recipe's: 10% of
``nlp/tweets-sentiment`` train held out), with the same learning rate (5e-5), batch
size (32), epochs (3, the recipe's default) and max length (128). Everything else is
each tool's default:

- zoo: length-bucketed batches, balanced class weights, head lr 1e-2, weight decay
  0.01, 10% warm-up, linear decay, a checkpoint at each epoch end;
- HF ``Trainer`` (``TrainingArguments`` defaults): random batches, unweighted
  cross-entropy, one lr, weight decay 0, no warm-up, linear decay, fused AdamW, a
  checkpoint every 500 steps.

Every ``--eval-every`` optimizer steps the clock stops, one evaluator (the same
function for both arms) scores macro-F1 on the whole validation split, and the clock
restarts. The time to quality is the clock at the first evaluation reaching
``--target`` (0.77); it includes each arm's set-up (model load, tokenization) and
excludes the evaluations. An arm stops there. Seeds alternate which arm runs first.
The figure is the median over ``--seeds``; the ratio is HF / zoo (issue target >= 1.5).

    python -m benchmarks.time_to_quality_nlp [--seeds 3] [--eval-every 100] [--target 0.77] [--smoke]
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time

import torch

from benchmarks.load_overhead import write, zoo_env

MODEL, DATA = "nlp/text_encoder.all_minilm_l6_v2", "nlp/tweets-sentiment"


class QualityReached(Exception):
    """Raised from a step callback to end an arm at its first evaluation at the target."""


class PausableClock:
    """Wall seconds since ``start``, not counting the time spent in ``paused()``."""

    def __init__(self):
        self.begun = time.perf_counter()
        self.excluded = 0.0

    def seconds(self) -> float:
        return time.perf_counter() - self.begun - self.excluded

    def paused(self):
        clock = self

        class Pause:
            def __enter__(self):
                self.at = time.perf_counter()

            def __exit__(self, *exc):
                clock.excluded += time.perf_counter() - self.at

        return Pause()


class QualityProbe:
    """Scores macro-F1 on the validation split every ``every`` steps, off the clock; raises at the target."""

    def __init__(self, every: int, target: float, batch_size: int):
        self.every, self.target, self.batch_size = every, target, batch_size
        self.val = self.collate = None  # set by the arm, from its own encoding of the split
        self.clock = PausableClock()  # an arm's clock starts when its probe is made
        self.curve: list[dict] = []

    def after_step(self, net: torch.nn.Module, step: int, samples_per_step: int) -> None:
        if step % self.every:
            return
        with self.clock.paused():
            macro_f1 = self.score(net)
        self.curve.append({"step": step, "samples": step * samples_per_step, "train_s": round(self.clock.seconds(), 2),
                           "val_macro_f1": round(macro_f1, 4)})
        print(f"  step {step}: {self.curve[-1]['train_s']:.0f} s, val macro-F1 {macro_f1:.4f}", flush=True)
        if macro_f1 >= self.target:
            raise QualityReached

    @torch.no_grad()
    def score(self, net: torch.nn.Module) -> float:
        from zoo.metrics import classification_metrics

        was_training = net.training
        net.eval()
        logits, labels = [], []
        for start in range(0, len(self.val), self.batch_size):
            inputs, targets = self.collate([self.val[i] for i in range(start, min(start + self.batch_size, len(self.val)))])
            logits.append(net(**inputs))
            labels.append(targets)
        net.train(was_training)
        return classification_metrics(torch.cat(logits), torch.cat(labels))["macro_f1"]

    def result(self) -> dict:
        reached = next((point for point in self.curve if point["val_macro_f1"] >= self.target), None)
        return {"time_to_target_s": reached["train_s"] if reached else None,
                "step_at_target": reached["step"] if reached else None, "curve": self.curve}


def recipe_for(args, seed: int):
    from nlp.recipes import TextClassificationRecipe

    return TextClassificationRecipe(
        model=MODEL, data=DATA, max_length=args.max_length, max_train_samples=args.train_samples,
        max_eval_samples=args.val_samples,
        train={"seed": seed, "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "progress": False},
    )


def run_zoo(args, seed: int, out_dir: str) -> dict:
    import zoo.train

    recipe = recipe_for(args, seed)
    probe = QualityProbe(args.eval_every, args.target, args.eval_batch_size)

    class ProbedTrainer(zoo.train.Trainer):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            probe.val, probe.collate = self.val_data, self.collate_fn
            self.callbacks.append(lambda trainer, event: probe.after_step(trainer.model.net, event["step"], args.batch_size))

    original, zoo.train.Trainer = zoo.train.Trainer, ProbedTrainer  # the recipe imports Trainer at run time
    try:
        with contextlib.suppress(QualityReached):
            recipe.run(out_dir, progress=False)
    finally:
        zoo.train.Trainer = original
    return probe.result()


def run_hf(args, seed: int, out_dir: str) -> dict:
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from backends.seed import seed_everything
    from benchmarks.nlp_trainer_vs_hf import WithLoss
    from nlp.recipes import _encoded, _model_and_data

    recipe = recipe_for(args, seed)
    probe = QualityProbe(args.eval_every, args.target, args.eval_batch_size)
    seed_everything(seed)
    model, splits = _model_and_data(recipe, new_head=False)  # the recipe's network, head init and split
    train = _encoded(model.adapter, splits.train, "training texts")
    probe.val = _encoded(model.adapter, splits.val, "validation texts", sort=True)
    probe.collate = model.adapter.collate

    class Probe(TrainerCallback):
        def on_step_end(self, training_args, state, control, **kwargs):
            probe.after_step(model.net, state.global_step, args.batch_size)

    def collate(features):
        inputs, labels = model.adapter.collate([(f["encoded"], f["label"]) for f in features])
        return {**inputs, "labels": labels}

    rows = [{"encoded": e, "label": y} for e, y in train]
    training_args = TrainingArguments(  # defaults, but for what the issue holds equal and where it runs
        output_dir=out_dir, num_train_epochs=args.epochs, per_device_train_batch_size=args.batch_size,
        learning_rate=args.lr, seed=seed, use_cpu=True, report_to=[], disable_tqdm=True, remove_unused_columns=False,
    )
    trainer = Trainer(model=WithLoss(model.net), args=training_args, train_dataset=rows, data_collator=collate,
                      callbacks=[Probe()])
    with contextlib.suppress(QualityReached):
        trainer.train()
    return probe.result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--eval-every", type=int, default=100, help="optimizer steps between evaluations")
    parser.add_argument("--target", type=float, default=0.77, help="validation macro-F1 to reach")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--eval-batch-size", type=int, default=128)
    parser.add_argument("--train-samples", type=int, default=None, help="a random subset of the train split")
    parser.add_argument("--val-samples", type=int, default=None, help="a random subset of the validation split")
    parser.add_argument("--smoke", action="store_true", help="256 train / 128 val texts, 1 epoch: checks the script runs")
    args = parser.parse_args()
    if args.smoke:
        args.train_samples, args.val_samples, args.epochs, args.eval_every, args.seeds = 256, 128, 1, 4, 1
    try:
        import accelerate  # noqa: F401
    except ImportError:
        raise SystemExit("the Hugging Face Trainer needs accelerate: pip install 'accelerate>=1.1.0'") from None

    arms = {"zoo recipe": run_zoo, "HF Trainer": run_hf}
    runs: dict[str, list[dict]] = {name: [] for name in arms}
    for seed in range(args.seeds):
        order = list(arms) if seed % 2 == 0 else list(arms)[::-1]
        for name in order:
            print(f"{name}, seed {seed}", flush=True)
            with tempfile.TemporaryDirectory() as out_dir:
                runs[name].append({"seed": seed, **arms[name](args, seed, out_dir)})
    times = {name: [r["time_to_target_s"] for r in arm_runs] for name, arm_runs in runs.items()}
    reached = all(t is not None for arm_times in times.values() for t in arm_times)
    median = {name: statistics.median(arm_times) if reached else None for name, arm_times in times.items()}
    write({
        "benchmark": "time_to_quality_nlp" + (".smoke" if args.smoke else ""),
        "model": f"{MODEL} + linear head (3 classes)",
        "data": f"{DATA}: the recipe's split (val_fraction 0.1, seeded)"
                + (f", train subset {args.train_samples}" if args.train_samples else "")
                + (f", val subset {args.val_samples}" if args.val_samples else ""),
        "held_equal": {"lr": args.lr, "batch_size": args.batch_size, "epochs": args.epochs, "max_length": args.max_length},
        "quality": f"validation macro-F1 >= {args.target}, scored every {args.eval_every} optimizer steps off the clock",
        "median_time_to_target_s": median,
        "ratio_hf_over_zoo": median["HF Trainer"] / median["zoo recipe"] if reached else None,
        "target": ">= 1.5 (median time to quality, HF Trainer / zoo recipe)",
        "runs": runs,
        "env": zoo_env(),
    })


if __name__ == "__main__":
    main()
