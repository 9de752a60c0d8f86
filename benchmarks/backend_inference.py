"""Backends side by side: batch-1 CPU latency of eager torch, torch-compile and ONNX Runtime.

For each model the three runners are built from the same ``zoo.Model`` (parity-checked
by ``Model.to_backend``) and timed in alternating rounds on the same input, so load
drift hits all of them alike; the reported latency is the median over rounds of each
round's median. Ratios are eager latency / backend latency (targets: onnxruntime
>= 1.4, torch-compile >= 1.2). Models: ``vision/efficientnet_lite0.in1k``, timm's
resnet18 (architecture only: weights do not change the speed, and none are on this
machine) and ``nlp/text_encoder.all_minilm_l6_v2`` embeddings at sequence length 64.

    python -m benchmarks.backend_inference [--rounds 5] [--iters 30] [--threads N] [--smoke]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from benchmarks.load_overhead import write, zoo_env

BACKENDS = ("torch", "torch-compile", "onnxruntime")


def models(smoke: bool):
    import zoo

    if smoke:
        return {"vision/digits_cnn.sklearn": (zoo.load("vision/digits_cnn.sklearn", device="cpu"), None)}
    minilm = zoo.load("nlp/text_encoder.all_minilm_l6_v2", device="cpu")
    return {
        "vision/efficientnet_lite0.in1k": (zoo.load("vision/efficientnet_lite0.in1k", device="cpu"), None),
        "timm:resnet18 (random weights)": (zoo.load("timm:resnet18", pretrained=False, device="cpu"), None),
        "nlp/text_encoder.all_minilm_l6_v2 (seq 64)": (minilm, _tokens(minilm, 64)),
    }


def _tokens(model, length: int) -> dict:
    """One sentence of exactly ``length`` tokens (special tokens included)."""
    words = " ".join(["zoo"] * (length - 2))
    batch = dict(model.adapter.batch([words]))
    assert batch["input_ids"].shape[1] == length, batch["input_ids"].shape
    return batch


def example(model, given):
    if given is not None:
        return given
    shape = model.card.input["shape"]
    return torch.rand(1, *shape)


def median_ms(fn, inputs, iters: int) -> float:
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn(inputs)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def call(net):
    return lambda inputs: net(**inputs) if isinstance(inputs, dict) else net(inputs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--threads", type=int, default=None, help="torch and ORT intra-op threads (default: torch's)")
    parser.add_argument("--smoke", action="store_true", help="the digits CNN, few iterations: checks the script runs")
    args = parser.parse_args()
    if args.smoke:
        args.rounds, args.iters = 1, 3
    if args.threads:
        torch.set_num_threads(args.threads)
    results = {}
    for name, (model, given) in models(args.smoke).items():
        inputs = example(model, given)
        runners = {"torch": model}
        build_s = {}
        for backend in BACKENDS[1:]:
            start = time.perf_counter()
            runners[backend] = model.to_backend(backend)
            build_s[backend] = time.perf_counter() - start
        rounds = {backend: [] for backend in BACKENDS}
        with torch.inference_mode():
            for backend in BACKENDS:  # warm-up
                median_ms(call(runners[backend].net), inputs, 3)
            for _ in range(args.rounds):
                for backend in BACKENDS:
                    rounds[backend].append(median_ms(call(runners[backend].net), inputs, args.iters))
        latency = {b: statistics.median(v) for b, v in rounds.items()}
        results[name] = {
            "latency_ms_batch1": latency,
            "speedup_vs_eager": {b: latency["torch"] / latency[b] for b in BACKENDS[1:]},
            "rounds_ms": rounds,
            "convert_s": build_s,
            "parity_max_abs_diff": {b: runners[b].parity.max_abs_diff for b in BACKENDS[1:]},
        }
        print(name, {b: f"{v:.2f} ms" for b, v in latency.items()}, flush=True)
    write({
        "benchmark": "backend_inference" + (".smoke" if args.smoke else ""),
        "threads": torch.get_num_threads(),
        "rounds": args.rounds,
        "iters_per_round": args.iters,
        "models": results,
        "targets": {"onnxruntime": ">= 1.4", "torch-compile": ">= 1.2"},
        "env": zoo_env(),
    })


if __name__ == "__main__":
    main()
