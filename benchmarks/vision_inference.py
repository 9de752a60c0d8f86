"""Inference throughput of a ``zoo.load`` model vs. the same timm model called directly.

Target: ratio (zoo / timm) >= 0.98 at batch 1 and batch 32. Same weights, same
input tensors, torch.inference_mode, eval mode; the two arms alternate in one
process and the medians of many timed calls are compared.

    python -m benchmarks.vision_inference [--model vision/efficientnet_lite0.in1k] [--iters 30]
"""
from __future__ import annotations

import argparse
import statistics
import time

import timm
import torch

import zoo
from benchmarks.load_overhead import write, zoo_env


def images_per_s(fn, batch: torch.Tensor, iters: int) -> list[float]:
    rates = []
    with torch.inference_mode():
        for _ in range(iters):
            start = time.perf_counter()
            fn(batch)
            rates.append(len(batch) / (time.perf_counter() - start))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vision/efficientnet_lite0.in1k")
    parser.add_argument("--iters", type=int, default=30)
    args = parser.parse_args()

    model = zoo.load(args.model, device="cpu")
    arch = model.card.arch_args
    reference = timm.create_model("efficientnet_lite0", pretrained=False, **arch).eval()
    reference.load_state_dict(model.net.state_dict())
    size = model.card.preprocessing["size"]
    results = {}
    for batch_size in (1, 32):
        batch = torch.randn(batch_size, 3, *size)
        arms = {"zoo.load model": model, "timm model": reference}
        for fn in arms.values():  # warm-up
            images_per_s(fn, batch, 3)
        rates = {name: [] for name in arms}
        for _ in range(args.iters):  # alternate single calls so drift hits both arms alike
            for name, fn in arms.items():
                rates[name] += images_per_s(fn, batch, 1)
        medians = {name: statistics.median(values) for name, values in rates.items()}
        results[f"batch_{batch_size}"] = {
            "median_images_per_s": medians,
            "ratio_zoo_over_timm": medians["zoo.load model"] / medians["timm model"],
        }
    write({
        "benchmark": "vision_inference",
        "model": args.model,
        "iters": args.iters,
        "results": results,
        "target": "ratio >= 0.98 at batch 1 and 32",
        "env": zoo_env(),
    })


if __name__ == "__main__":
    main()
