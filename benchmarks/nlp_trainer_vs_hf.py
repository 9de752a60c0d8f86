"""zoo Trainer vs. the Hugging Face Trainer: training throughput on MiniLM text classification.

Same model (the zoo's all-MiniLM-L6-v2 + linear head, a fresh copy per arm, same
seed), same data (``--samples`` random tweets of the train split, tokenized once
at ``--max-length``), same batch size, same sequence policy (dynamic padding to the
longest text of each batch; ``--grouping length`` groups texts of similar length in
both arms: the zoo's LengthBucketSampler, HF's ``group_by_length``; ``--grouping
defaults`` gives each trainer its own default: the zoo recipe's length buckets, HF's
random batches), same optimizer
(AdamW, lr 5e-5, weight decay 0.01 on matrices), linear warm-up/decay, fp32, gradient
clipping at 1.0, one epoch, no evaluation, a checkpoint at the end of the epoch in
both. Measured: samples/s over the optimizer steps (first to last step, excluding
set-up and checkpointing) and over the whole ``fit``/``train`` call; padded tokens/s
too, since the two samplers may pad differently. One run per arm (``--rounds`` to
alternate more, each arm in each place of the order in turn); the ratio is zoo / HF (issue target >= 1.2).

A third arm, a bare PyTorch loop, does only what any trainer of this recipe must do
(the zoo's batches; forward, loss, backward, clipping, fused AdamW, the schedule;
no framework, no checkpoint): bare / HF is the ceiling of the zoo / HF ratio for a
trainer that runs the same network on the same batches.

Needs ``accelerate`` (the HF Trainer requires it): ``pip install 'accelerate>=1.1'``.

    python -m benchmarks.nlp_trainer_vs_hf [--samples 2048] [--batch-size 32] [--grouping none|length|defaults] [--smoke]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from functools import partial

import torch

from benchmarks.load_overhead import write, zoo_env

LR, WEIGHT_DECAY, WARMUP = 5e-5, 0.01, 0.1


class TokenCounter:
    """Counts padded tokens seen by the network's forward (training calls only)."""

    def __init__(self, net):
        self.tokens = 0
        net.register_forward_pre_hook(self.hook, with_kwargs=True)

    def hook(self, module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        if module.training and ids is not None:
            self.tokens += ids.numel()


class StepClock:
    """Wall time of the first and last optimizer step."""

    def __init__(self):
        self.first = self.last = None
        self.steps = 0

    def tick(self):
        now = time.perf_counter()
        self.first = self.first or now
        self.last = now
        self.steps += 1

    def steps_per_s(self) -> float:
        return (self.steps - 1) / (self.last - self.first) if self.steps > 1 else float("nan")


def fresh_model(num_classes: int, seed: int):
    import zoo

    torch.manual_seed(seed)
    model = zoo.load("nlp/text_encoder.all_minilm_l6_v2", num_classes=num_classes, device="cpu")
    model.card.labels = [str(i) for i in range(num_classes)]
    return model


def data(samples: int, max_length: int):
    from nlp.datasets import load_splits
    from nlp.recipes import EncodedDataset

    splits = load_splits("nlp/tweets-sentiment")
    import numpy as np

    keep = np.random.default_rng(0).permutation(len(splits.train))[:samples]  # the file is grouped by label
    train = splits.train.subset(np.sort(keep))
    probe = fresh_model(len(splits.classes), 0)
    probe.card.preprocessing["max_length"] = max_length
    adapter = type(probe.adapter)(probe.card, probe.adapter.paths)
    return EncodedDataset(adapter.encode(train.inputs()), train.labels), adapter, len(splits.classes)


def run_zoo(dataset, adapter, num_classes, args, out_dir) -> dict:
    from nlp.recipes import LengthBucketSampler, WeightedCrossEntropy
    from zoo.train import Trainer, TrainConfig

    model = fresh_model(num_classes, args.seed)
    counter, clock = TokenCounter(model.net), StepClock()
    sampler_fn = partial(LengthBucketSampler, lengths=[len(e) for e, _ in dataset]) if args.grouping in ("length", "defaults") else None
    trainer = Trainer(
        model, dataset, None,
        config=TrainConfig(epochs=1, batch_size=args.batch_size, lr=LR, weight_decay=WEIGHT_DECAY, warmup_ratio=WARMUP,
                           schedule="linear", precision="fp32", device=args.device, seed=args.seed, progress=False,
                           log_every_steps=0),
        out_dir=out_dir, loss_fn=WeightedCrossEntropy(), collate_fn=adapter.collate, sampler_fn=sampler_fn,
        callbacks=[lambda trainer, event: clock.tick()],
    )
    start = time.perf_counter()
    trainer.fit()
    total = time.perf_counter() - start
    return measured(len(dataset), args.batch_size, clock, counter, total)


class WithLoss(torch.nn.Module):
    """A classifier as the HF Trainer takes it: ``labels`` in, a dict with the cross-entropy ``loss`` out."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, labels=None, **inputs):
        logits = self.net(**inputs)
        return {"loss": torch.nn.functional.cross_entropy(logits, labels), "logits": logits}


def run_hf(dataset, adapter, num_classes, args, out_dir) -> dict:
    from transformers import Trainer, TrainerCallback, TrainingArguments

    class Clock(TrainerCallback):
        def on_step_end(self, *a, **k):
            clock.tick()

    def collate(features):
        inputs, labels = adapter.collate([(f["encoded"], f["label"]) for f in features])
        return {**inputs, "labels": labels}

    model = fresh_model(num_classes, args.seed)
    counter, clock = TokenCounter(model.net), StepClock()
    rows = [{"encoded": e, "label": y, "input_ids": e.ids} for e, y in dataset]  # input_ids: lengths for grouping
    training_args = TrainingArguments(
        output_dir=out_dir, num_train_epochs=1, per_device_train_batch_size=args.batch_size, learning_rate=LR,
        weight_decay=WEIGHT_DECAY, warmup_steps=WARMUP, lr_scheduler_type="linear", max_grad_norm=1.0,
        optim="adamw_torch_fused",  # HF's default, and the fused AdamW the zoo Trainer uses
        use_cpu=args.device == "cpu", seed=args.seed, data_seed=args.seed, save_strategy="epoch", eval_strategy="no",
        logging_strategy="no", report_to=[], disable_tqdm=True, dataloader_num_workers=0,
        remove_unused_columns=False, bf16=False, fp16=False,
        train_sampling_strategy="group_by_length" if args.grouping == "length" else "random",
    )
    trainer = Trainer(model=WithLoss(model.net), args=training_args, train_dataset=rows, data_collator=collate,
                      callbacks=[Clock()])
    start = time.perf_counter()
    trainer.train()
    total = time.perf_counter() - start
    return measured(len(dataset), args.batch_size, clock, counter, total)


def run_bare(dataset, adapter, num_classes, args, out_dir) -> dict:
    from nlp.recipes import LengthBucketSampler
    from zoo.train import LRSchedule, ResumableBatchSampler, TrainConfig, default_optimizer

    model = fresh_model(num_classes, args.seed)
    net = model.net.train()
    counter, clock = TokenCounter(net), StepClock()
    if args.grouping == "none":
        batches = list(ResumableBatchSampler(len(dataset), args.batch_size, args.seed))
    else:
        batches = list(LengthBucketSampler(len(dataset), args.batch_size, args.seed, lengths=[len(e) for e, _ in dataset]))
    optimizer = default_optimizer(net, TrainConfig(lr=LR, weight_decay=WEIGHT_DECAY))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, LRSchedule(len(batches), int(WARMUP * len(batches)), "linear"))
    start = time.perf_counter()
    for batch in batches:
        inputs, labels = adapter.collate([dataset[i] for i in batch])
        torch.nn.functional.cross_entropy(net(**inputs), labels).backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        clock.tick()
    total = time.perf_counter() - start
    return measured(len(dataset), args.batch_size, clock, counter, total)


def measured(samples: int, batch_size: int, clock: StepClock, counter: TokenCounter, total: float) -> dict:
    steps_per_s = clock.steps_per_s()
    return {
        "samples_per_s_steps": steps_per_s * batch_size,  # full batches between the first and last step
        "samples_per_s_fit": samples / total,
        "padded_tokens_per_step": counter.tokens / max(clock.steps, 1),
        "padded_tokens_per_s": steps_per_s * counter.tokens / max(clock.steps, 1),
        "steps": clock.steps,
        "fit_s": total,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--grouping", choices=("none", "length", "defaults"), default="length")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="96 samples, batch 16: checks the script runs")
    args = parser.parse_args()
    if args.smoke:
        args.samples, args.batch_size = 96, 16
    try:
        import accelerate  # noqa: F401
    except ImportError:
        raise SystemExit("the Hugging Face Trainer needs accelerate: pip install 'accelerate>=1.1.0'") from None

    dataset, adapter, num_classes = data(args.samples, args.max_length)
    arms = {"zoo Trainer": run_zoo, "HF Trainer": run_hf, "bare loop": run_bare}
    results: dict[str, list[dict]] = {name: [] for name in arms}
    names = list(arms)
    for round_ in range(args.rounds):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:  # each arm takes each place in turn
            with tempfile.TemporaryDirectory() as out_dir:
                results[name].append(arms[name](dataset, adapter, num_classes, args, out_dir))
    median = {name: {key: statistics.median(r[key] for r in runs) for key in runs[0]} for name, runs in results.items()}
    zoo_arm, hf_arm = median["zoo Trainer"], median["HF Trainer"]
    write({
        "benchmark": "nlp_trainer_vs_hf" + ("" if args.grouping == "length" else f".{args.grouping}")
                     + (".smoke" if args.smoke else ""),
        "model": "nlp/text_encoder.all_minilm_l6_v2 + linear head (3 classes)",
        "data": f"{len(dataset)} random texts of nlp/tweets-sentiment train (seed 0), max_length {args.max_length}",
        "batch_size": args.batch_size,
        "grouping": args.grouping,
        "device": args.device,
        "rounds": args.rounds,
        "median": median,
        "all_runs": results,
        "ratio_zoo_over_hf_samples_per_s_steps": zoo_arm["samples_per_s_steps"] / hf_arm["samples_per_s_steps"],
        "ratio_zoo_over_hf_samples_per_s_fit": zoo_arm["samples_per_s_fit"] / hf_arm["samples_per_s_fit"],
        "ratio_zoo_over_hf_padded_tokens_per_s": zoo_arm["padded_tokens_per_s"] / hf_arm["padded_tokens_per_s"],
        "ceiling_bare_over_hf_samples_per_s_steps": median["bare loop"]["samples_per_s_steps"] / hf_arm["samples_per_s_steps"],
        "ratio_zoo_over_bare_samples_per_s_steps": zoo_arm["samples_per_s_steps"] / median["bare loop"]["samples_per_s_steps"],
        "target": ">= 1.2 (samples/s over the steps)",
        "env": zoo_env(),
    })


if __name__ == "__main__":
    main()
