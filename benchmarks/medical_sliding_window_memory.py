"""Peak memory of segmenting a 256×256×128 volume end to end with the bundled 3-D U-Net.

``zoo.load("medical/unet3d.ct_phantom").predict(volume)`` on a 128-slice
256×256 CT volume already at the model's 4 mm spacing, so the sliding window
covers all 8.4 M voxels (32³ patches, 50% overlap, Gaussian blending), then maps
the class probabilities back onto the volume's grid. Peak resident memory of the
process (``ru_maxrss``, which also counts Python, torch and the model) must stay
under 4 GB.

    python -m benchmarks.medical_sliding_window_memory [--batch-size 4] [--threads 1]
"""
from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from benchmarks.load_overhead import write, zoo_env

SHAPE = (128, 256, 256)
SPACING = (4.0, 4.0, 4.0)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    import zoo
    from medical.phantom import ct_phantom

    torch.set_num_threads(args.threads)
    ct, _ = ct_phantom(0, shape=SHAPE, spacing=SPACING)
    model = zoo.load("medical/unet3d.ct_phantom", device="cpu")
    before = peak_rss_mb()
    start = time.perf_counter()
    prediction = model.predict(ct, batch_size=args.batch_size)
    seconds = time.perf_counter() - start
    peak = peak_rss_mb()
    assert prediction.same_grid(ct)
    result = {
        "benchmark": "medical_sliding_window_memory",
        "volume": {"shape_slices_rows_columns": list(SHAPE), "spacing_mm": list(SPACING), "voxels": int(np.prod(SHAPE))},
        "model": "medical/unet3d.ct_phantom",
        "patch_size": model.card.preprocessing["patch_size"],
        "overlap": model.card.preprocessing["overlap"],
        "batch_size": args.batch_size,
        "threads": args.threads,
        "seconds": round(seconds, 2),
        "peak_rss_mb_before_predict": round(before, 1),
        "peak_rss_mb": round(peak, 1),
        "target": "peak RSS < 4096 MB",
        "env": zoo_env(),
    }
    write(result)


if __name__ == "__main__":
    main()
