"""``zoo.load`` of a cached model vs. building the same network and loading its safetensors by hand.

Target: ratio (zoo / by hand) <= 1.2. Both arms run interleaved in one process,
after a warm-up, so caches and allocator state are shared fairly.

    python benchmarks/load_overhead.py [--model vision/digits_cnn.sklearn] [--repeats 200]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from safetensors.torch import load_file

import zoo
from zoo.registry import get_registry, resolve_ref

RESULTS = Path(__file__).parent / "results"


def by_hand(model_id: str, weights: Path):
    spec = get_registry().model(model_id)
    builder = resolve_ref(get_registry().architecture(spec.architecture).builder)
    net = builder(**dict(spec.arch_args))
    net.load_state_dict(load_file(str(weights)))
    return net.eval()


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vision/digits_cnn.sklearn")
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()

    weights = zoo.fetch(args.model, progress=False)[0]
    time.sleep(2.1)  # let the cache trust the blob's stat (a just-written blob is rehashed)
    arms = {"zoo.load": lambda: zoo.load(args.model, device="cpu"), "by hand": lambda: by_hand(args.model, weights)}
    for fn in arms.values():
        for _ in range(10):
            fn()
    times = {name: [] for name in arms}
    for _ in range(args.repeats):
        for name, fn in arms.items():
            times[name].append(timed(fn))
    medians = {name: statistics.median(values) * 1e3 for name, values in times.items()}
    result = {
        "benchmark": "load_overhead",
        "model": args.model,
        "repeats": args.repeats,
        "median_ms": medians,
        "ratio_zoo_over_hand": medians["zoo.load"] / medians["by hand"],
        "target": "<= 1.2",
        "env": zoo_env(),
    }
    write(result)


def zoo_env() -> dict:
    from zoo.envinfo import cpu_int8_extensions, fingerprint

    env = fingerprint()
    return {**{k: env.get(k) for k in ("python", "torch", "cpu", "cpu_count", "gpu", "git_commit")},
            "cpu_int8_extensions": cpu_int8_extensions()}


def write(result: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{result['benchmark']}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "env"}, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
