"""What a full sha256 of the weights on every ``zoo.load`` would cost, against the load itself.

Decides what ``zoo.cache`` verifies per load (see its module docstring): for each
model, the median warm ``zoo.load`` time (with the cheap stat check the cache
uses) and the median time to re-hash its weight blobs (page cache warm, the
repeated-load case; a cold read costs the disk's time on top). Interleaved in
one process after a warm-up.

    python -m benchmarks.cache_verify_cost [--models vision/efficientnet_lite0.in1k,...] [--repeats 15]
"""
from __future__ import annotations

import argparse
import statistics
import time

import zoo
from zoo.cache import sha256_file

from benchmarks.load_overhead import timed, write, zoo_env

# The largest bundled weights (EfficientNet-Lite0 18 MB, MiniLM 91 MB) and a tiny one.
DEFAULT_MODELS = "vision/digits_cnn.sklearn,vision/efficientnet_lite0.in1k,nlp/text_encoder.all_minilm_l6_v2"


def measure(model_id: str, repeats: int) -> dict:
    blobs = zoo.fetch(model_id, progress=False)
    time.sleep(2.1)  # let the cache trust the blobs' stat (a just-written blob is rehashed)
    arms = {
        "load": lambda: zoo.load(model_id, device="cpu"),
        "rehash": lambda: [sha256_file(blob) for blob in blobs],
    }
    for fn in arms.values():
        fn()
    times = {name: [] for name in arms}
    for _ in range(repeats):
        for name, fn in arms.items():
            times[name].append(timed(fn))
    load_ms, rehash_ms = (statistics.median(times[name]) * 1e3 for name in ("load", "rehash"))
    size = sum(blob.stat().st_size for blob in blobs)
    return {
        "model": model_id,
        "weights_bytes": size,
        "load_ms": load_ms,
        "rehash_ms": rehash_ms,
        "rehash_mb_per_s": size / 1e6 / (rehash_ms / 1e3),
        "rehash_over_load": rehash_ms / load_ms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=DEFAULT_MODELS, help="comma-separated model ids")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()

    rows = [measure(model_id, args.repeats) for model_id in args.models.split(",")]
    write({
        "benchmark": "cache_verify_cost",
        "repeats": args.repeats,
        "models": rows,
        "max_rehash_over_load": max(row["rehash_over_load"] for row in rows),
        # The zoo's load-overhead budget (benchmarks/load_overhead.py) is 1.2x a by-hand load.
        "affordable_if": "rehash_over_load <= 0.2",
        "env": zoo_env(),
    })


if __name__ == "__main__":
    main()
