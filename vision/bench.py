"""The vision benchmark suite: every pretrained vision model on its datasets, plus a control arm.

Control: multinomial logistic regression on raw pixels, so a CNN's number reads
against the simplest model that could do the job.
"""
from __future__ import annotations

import time
from functools import partial

import numpy as np

from zoo.bench import BenchTask, TaskOutput, measure_latency

THROUGHPUT_BATCH = 256


def suite(quick: bool = False) -> list[BenchTask]:
    """Tasks of the ``vision`` suite; ``quick`` takes fewer latency samples."""
    from zoo.hub import list_models

    iters = 30 if quick else 200
    tasks = [
        BenchTask(
            name=f"{model_id.split('/', 1)[1]}@digits",
            model=model_id,
            dataset="vision/digits",
            run=partial(_run_model, model_id, "vision/digits", iters),
        )
        for model_id in list_models("vision/digits-*", pretrained=True)
    ]
    tasks.append(
        BenchTask(
            name="logreg-pixels@digits",
            model="control/logreg-pixels",
            dataset="vision/digits",
            backend="sklearn",
            control=True,
            run=partial(_run_logreg, "vision/digits", iters),
        )
    )
    return tasks


def _run_model(model_id: str, dataset: str, iters: int, seed: int) -> TaskOutput:
    import torch

    from vision.datasets import load_splits, to_tensor_batch
    from zoo.hub import load
    from zoo.metrics import classification_metrics

    torch.manual_seed(seed)
    model = load(model_id).eval()
    test = load_splits(dataset).test
    inputs, targets = to_tensor_batch(test, model.transform)
    with torch.inference_mode():
        logits = model(inputs.to(model.device)).cpu()
    raw = [test.raw(i) for i in range(len(test))]
    return TaskOutput(
        metrics=classification_metrics(logits, targets),
        per_example={"accuracy": (logits.argmax(-1) == targets).numpy().astype(np.float64)},
        latency_ms=measure_latency(lambda: model.predict(raw[0]), iters=iters),
        throughput=_throughput(lambda batch: model.predict(batch), raw),
        throughput_unit="images/s",
        params=model.num_params,
        extra={"gflops": _gflops(model.net, inputs[:1].to(model.device))},
    )


def _run_logreg(dataset: str, iters: int, seed: int) -> TaskOutput:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    from vision.datasets import load_splits

    splits = load_splits(dataset)
    x_train, x_test = _pixels(splits.train), _pixels(splits.test)
    scale = max(float(x_train.max()), 1.0)
    classifier = LogisticRegression(max_iter=2000, random_state=seed).fit(x_train / scale, splits.train.labels)
    predictions = classifier.predict(x_test / scale)
    correct = (predictions == splits.test.labels).astype(np.float64)
    return TaskOutput(
        metrics={"accuracy": float(correct.mean()), "macro_f1": float(f1_score(splits.test.labels, predictions, average="macro"))},
        per_example={"accuracy": correct},
        latency_ms=measure_latency(lambda: classifier.predict_proba(x_test[:1] / scale), iters=iters),
        throughput=_throughput(lambda batch: classifier.predict_proba(np.stack(batch) / scale), list(x_test)),
        throughput_unit="images/s",
        params=int(classifier.coef_.size + classifier.intercept_.size),
    )


def _pixels(split) -> np.ndarray:
    """One flat float row of raw pixel values per image."""
    return np.stack([np.asarray(split.raw(i), np.float32).ravel() for i in range(len(split))])


def _throughput(predict_batch, items: list, min_time_s: float = 0.5) -> float:
    """Items per second predicting batches of ``THROUGHPUT_BATCH`` raw items, after one warm-up batch."""
    batch = (items * (THROUGHPUT_BATCH // max(len(items), 1) + 1))[:THROUGHPUT_BATCH]
    predict_batch(batch)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < min_time_s:
        predict_batch(batch)
        done += len(batch)
    return done / (time.perf_counter() - start)


def _gflops(net, example) -> float:
    """Forward GFLOPs for one input (multiply-adds counted as 2), by torch's flop counter."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        net(example)
    return round(counter.get_total_flops() / 1e9, 6)
