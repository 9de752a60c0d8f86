"""Trainer throughput vs. a bare hand-written torch loop: same model, data, optimizer, schedule.

Target: ratio (Trainer samples/s over bare-loop samples/s) >= 0.97. The Trainer
arm includes everything it does by default — per-epoch pickle-free checkpoints,
JSONL logging, grad clipping — with progress bars off. Arms alternate over
several rounds in one process; the reported ratio is the median of the per-round
ratios, which cancels drift in the machine's speed between rounds.

    python benchmarks/trainer_throughput.py [--rounds 5] [--epochs 3]
"""
from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time

import torch
from torch.utils.data import DataLoader, TensorDataset

from benchmarks.load_overhead import write, zoo_env
from vision.datasets import digits, to_tensor_batch
from vision.models.digits_cnn import digits_cnn
from vision.transforms import ImageTransform
from zoo.train import LRSchedule, Trainer, TrainConfig, default_optimizer

BATCH = 64


def training_data(repeat: int) -> TensorDataset:
    """The digits train split, preprocessed once and tiled so an epoch is long enough to time."""
    transform = ImageTransform(size=(8, 8), channels=1, mean=(0.5,), std=(0.5,), array_range=(0, 16))
    inputs, targets = to_tensor_batch(digits().train, transform)
    return TensorDataset(inputs.repeat(repeat, 1, 1, 1), targets.repeat(repeat))


def bare_loop(data: TensorDataset, config: TrainConfig) -> float:
    torch.manual_seed(config.seed)
    model = digits_cnn()
    optimizer = default_optimizer(model, config)
    steps = config.epochs * math.ceil(len(data) / config.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, LRSchedule(steps, int(config.warmup_ratio * steps)))
    loader = DataLoader(data, batch_size=config.batch_size, shuffle=True, generator=torch.Generator().manual_seed(0))
    loss_fn = torch.nn.CrossEntropyLoss()
    start = time.perf_counter()
    model.train()
    for _ in range(config.epochs):
        for inputs, targets in loader:
            loss = loss_fn(model(inputs), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad_norm)
            optimizer.step()
            scheduler.step()
            loss.item()  # what any loop that reports its loss pays
    return config.epochs * len(data) / (time.perf_counter() - start)


def zoo_trainer(data: TensorDataset, config: TrainConfig) -> float:
    torch.manual_seed(config.seed)
    model = digits_cnn()
    with tempfile.TemporaryDirectory() as out_dir:
        trainer = Trainer(model, data, None, config=config, out_dir=out_dir)
        start = time.perf_counter()
        trainer.fit()
        return config.epochs * len(data) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=8, help="tile the digits train split this many times")
    args = parser.parse_args()

    data = training_data(args.repeat)
    config = TrainConfig(epochs=args.epochs, batch_size=BATCH, lr=3e-3, device="cpu", progress=False)
    arms = {"bare loop": bare_loop, "zoo Trainer": zoo_trainer}
    for arm in arms.values():  # warm-up: first-call allocations and lazy imports
        arm(data, TrainConfig(epochs=1, batch_size=BATCH, device="cpu", progress=False))
    rates = {name: [] for name in arms}
    for _ in range(args.rounds):
        for name, arm in arms.items():
            rates[name].append(arm(data, config))
    medians = {name: statistics.median(values) for name, values in rates.items()}
    write({
        "benchmark": "trainer_throughput",
        "model": "digits_cnn (24k params)",
        "samples_per_epoch": len(data),
        "epochs": args.epochs,
        "batch_size": BATCH,
        "rounds": args.rounds,
        "median_samples_per_s": medians,
        "all_samples_per_s": rates,
        "ratio_trainer_over_bare": statistics.median(
            trainer / bare for trainer, bare in zip(rates["zoo Trainer"], rates["bare loop"])
        ),
        "target": ">= 0.97",
        "env": zoo_env(),
    })


if __name__ == "__main__":
    main()
