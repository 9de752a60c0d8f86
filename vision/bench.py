"""The vision benchmark suite: every pretrained vision model on its datasets, plus control arms.

Classification here; detection and segmentation (with MTCNN on faces and the random-init
transfer control) in :mod:`vision.bench_dense`. Classification's control: multinomial
logistic regression on raw pixels, so a CNN's number reads against the simplest model
that could do the job.
"""
from __future__ import annotations

from functools import partial

import numpy as np

from zoo.bench import BenchTask, TaskOutput, measure_latency, measure_throughput, step


def suite(quick: bool = False) -> list[BenchTask]:
    """Every pretrained vision model on each dataset its card reports a metric for, plus the controls.

    Classification datasets: ``vision/digits`` always; ``vision/fashion-mnist`` when its files are
    on this machine. Detectors and segmenters: :func:`vision.bench_dense.dense_tasks`. ``quick`` takes
    fewer latency samples and bootstrap resamples, and trains the transfer control briefly on a small set.
    Each model runs on each backend asked for.
    """
    from vision.bench_dense import dense_tasks
    from vision.datasets import fashion_mnist_available

    iters = 30 if quick else 200
    datasets = ["vision/digits"] + (["vision/fashion-mnist"] if fashion_mnist_available() else [])
    tasks = []
    for dataset in datasets:
        short = dataset.split("/", 1)[1]
        tasks += [
            BenchTask(
                name=f"{model_id.split('/', 1)[1]}@{short}",
                model=model_id,
                dataset=dataset,
                per_backend=True,
                run=partial(_run_model, model_id, dataset, iters),
            )
            for model_id in _models_measured_on(dataset)
        ]
        tasks.append(
            BenchTask(
                name=f"logreg-pixels@{short}",
                model="control/logreg-pixels",
                dataset=dataset,
                backend="sklearn",
                control=True,
                run=partial(_run_logreg, dataset, iters, max_train=10_000 if quick else None),
            )
        )
    return tasks + dense_tasks(quick)


def _models_measured_on(dataset: str) -> list[str]:
    """Pretrained vision models whose card records a test metric on ``dataset`` (cards only, no build)."""
    from zoo.hub import info, list_models

    return [
        model_id
        for model_id in list_models("vision/*", pretrained=True)
        if any(m.get("dataset") == dataset and m.get("split") == "test" for m in info(model_id).metrics)
    ]


def _run_model(model_id: str, dataset: str, iters: int, seed: int, backend: str) -> TaskOutput:
    import torch

    from vision.datasets import load_splits, to_tensor_batch
    from zoo.hub import load
    from zoo.metrics import classification_metrics

    torch.manual_seed(seed)
    step(f"loading {model_id} [{backend}]")
    model = load(model_id, backend=backend).eval()
    test = load_splits(dataset).test
    step(f"predicting {len(test)} test images")
    inputs, targets = to_tensor_batch(test, model.transform)
    with torch.inference_mode():
        logits = model(inputs.to(model.device)).cpu()
    raw = [test.raw(i) for i in range(len(test))]
    return TaskOutput(
        metrics=classification_metrics(logits, targets),
        per_example={"accuracy": (logits.argmax(-1) == targets).numpy().astype(np.float64)},
        latency_ms=measure_latency(lambda: model.predict(raw[0]), iters=iters),
        throughput=measure_throughput(model.predict, raw),
        throughput_unit="images/s",
        params=model.num_params,
        extra={"gflops": _gflops(model.net, inputs[:1].to(model.device))} if backend == "torch" else None,
    )


def _run_logreg(dataset: str, iters: int, seed: int, max_train: int | None = None) -> TaskOutput:
    """Multinomial logistic regression on raw pixels; ``max_train`` subsamples big training sets (quick runs)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    from vision.datasets import load_splits

    splits = load_splits(dataset)
    step(f"fitting logistic regression on {len(splits.train)} images")
    x_train, x_test = _pixels(splits.train), _pixels(splits.test)
    y_train = splits.train.labels
    if max_train is not None and len(y_train) > max_train:
        keep = np.random.default_rng(seed).choice(len(y_train), max_train, replace=False)
        x_train, y_train = x_train[keep], y_train[keep]
    scale = max(float(x_train.max()), 1.0)
    classifier = LogisticRegression(max_iter=2000, random_state=seed).fit(x_train / scale, y_train)
    predictions = classifier.predict(x_test / scale)
    correct = (predictions == splits.test.labels).astype(np.float64)
    return TaskOutput(
        metrics={"accuracy": float(correct.mean()), "macro_f1": float(f1_score(splits.test.labels, predictions, average="macro"))},
        per_example={"accuracy": correct},
        latency_ms=measure_latency(lambda: classifier.predict_proba(x_test[:1] / scale), iters=iters),
        throughput=measure_throughput(lambda batch: classifier.predict_proba(np.stack(batch) / scale), list(x_test)),
        throughput_unit="images/s",
        params=int(classifier.coef_.size + classifier.intercept_.size),
        extra={"train_images": len(y_train)},
    )


def _pixels(split) -> np.ndarray:
    """One flat float row of raw pixel values per image."""
    return np.stack([np.asarray(split.raw(i), np.float32).ravel() for i in range(len(split))])


def _gflops(net, example) -> float:
    """Forward GFLOPs for one input (multiply-adds counted as 2), by torch's flop counter."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        net(example)
    return round(counter.get_total_flops() / 1e9, 6)
