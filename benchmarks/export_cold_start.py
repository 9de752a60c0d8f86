"""Cold start of an exported bundle without torch vs. ``zoo.load`` in torch: process start → first prediction.

Both arms are fresh Python processes that predict one image (scikit-image's
``chelsea``) and exit: the runtime arm imports only ``zoo.runtime`` (numpy +
onnxruntime + Pillow), the torch arm ``zoo.load(...).predict``. Each arm runs
``--runs`` times alternately; the median wall time is reported and the ratio is
torch / runtime (how many times faster the bundle starts).

    python -m benchmarks.export_cold_start [--model vision/efficientnet_lite0.in1k] [--runs 5]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.load_overhead import write, zoo_env

RUNTIME = """
import numpy as np
from zoo.runtime import load_bundle
print(load_bundle({bundle!r}).predict(np.load({image!r}))["label"])
"""
TORCH = """
import numpy as np
import zoo
print(zoo.load({model!r}, device="cpu").predict(np.load({image!r}))["label"])
"""


def timed(code: str) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vision/efficientnet_lite0.in1k")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    import numpy as np
    from skimage import data

    from zoo.export import export

    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "chelsea.npy"
        np.save(image, data.chelsea())
        bundle = export(args.model, Path(tmp) / "bundle")
        timed(TORCH.format(model=args.model, image=str(image)))  # fill the zoo cache and the OS file cache
        arms = {"runtime (no torch)": RUNTIME.format(bundle=str(bundle), image=str(image)),
                "zoo.load (torch)": TORCH.format(model=args.model, image=str(image))}
        seconds = {arm: [] for arm in arms}
        labels = {}
        for _ in range(args.runs):
            for arm, code in arms.items():
                elapsed, labels[arm] = timed(code)
                seconds[arm].append(elapsed)
    median = {arm: statistics.median(v) for arm, v in seconds.items()}
    write({
        "benchmark": "export_cold_start",
        "model": args.model,
        "runs": args.runs,
        "median_s": median,
        "all_s": seconds,
        "first_prediction": labels,
        "ratio_torch_over_runtime": median["zoo.load (torch)"] / median["runtime (no torch)"],
        "env": zoo_env(),
    })


if __name__ == "__main__":
    main()
