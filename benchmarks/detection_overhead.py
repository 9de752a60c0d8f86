"""``zoo.load("torchvision:DETECTOR").predict(photo)`` vs. torchvision used directly, images/s at batch 1.

Target (issue 16): ratio (zoo / torchvision) >= 0.97. Both arms run the same network object
(random init by default: offline; ``--pretrained`` needs torchvision's weights in the cache),
interleaved in one process after a warm-up, on a real photograph (scikit-image's astronaut).
The torchvision arm is what its docs show: ``weights.transforms()`` on the PIL image, then
``model([tensor])``; the zoo arm is ``Model.predict(PIL image)``, lists of boxes, scores and names out.

    python benchmarks/detection_overhead.py [--model fasterrcnn_mobilenet_v3_large_fpn] [--repeats 30]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

import zoo

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="fasterrcnn_mobilenet_v3_large_fpn")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--pretrained", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import torchvision.models as tvm
    from PIL import Image
    from skimage import data

    photo = Image.fromarray(data.astronaut())
    model = zoo.load(f"torchvision:{args.model}", pretrained=args.pretrained, device="cpu").eval()
    net = model.net  # the very same network for both arms
    preprocess = tvm.get_model_weights(args.model).DEFAULT.transforms()

    def direct():
        with torch.inference_mode():
            return net([preprocess(photo)])

    arms = {"zoo predict": lambda: model.predict(photo), "torchvision": direct}
    for fn in arms.values():
        for _ in range(3):
            fn()
    times: dict[str, list[float]] = {name: [] for name in arms}
    for _ in range(args.repeats):
        for name, fn in arms.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    images_per_s = {name: 1 / statistics.median(values) for name, values in times.items()}
    result = {"benchmark": "detection_overhead", "model": args.model, "pretrained": args.pretrained,
              "repeats": args.repeats, "threads": args.threads, "images_per_s": images_per_s,
              "ratio_zoo_over_torchvision": images_per_s["zoo predict"] / images_per_s["torchvision"]}
    print(json.dumps(result, indent=2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"detection_overhead_{args.model}.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
