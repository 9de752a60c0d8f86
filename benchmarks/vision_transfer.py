"""Transfer learning: EfficientNet-Lite0 (ImageNet) fine-tuned on Fashion-MNIST vs. the same recipe from random init.

Target: >= 92% test top-1 within a 20-minute CPU budget (2 cores). Both arms run
the image-classification recipe with the same hyper-parameters; the only
difference is ``pretrained``. The per-epoch validation curve comes from each
run's metrics.jsonl; wall time covers the whole recipe run (data, training,
evaluation, saving).

    python -m benchmarks.vision_transfer [--image-size 32] [--epochs 2] [--arms pretrained,scratch]

The committed results: ``--image-size 32 --epochs 2 --batch-size 96 --arms pretrained`` and the
same with ``--arms scratch --name vision_transfer_scratch``.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from benchmarks.load_overhead import write, zoo_env
from vision.recipes import ImageClassificationRecipe

MODEL = "vision/efficientnet_lite0.in1k"


def run_arm(pretrained: bool, args, out_root: Path) -> dict:
    recipe = ImageClassificationRecipe(
        model=MODEL,
        data="vision/fashion-mnist",
        pretrained=pretrained,
        image_size=args.image_size,
        augment="none",
        label_smoothing=0.1,
        train={"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "deterministic": False,
               "num_workers": args.num_workers},
    )
    out_dir = out_root / ("pretrained" if pretrained else "scratch")
    start = time.perf_counter()
    result = recipe.run(out_dir, progress=args.progress)
    wall = time.perf_counter() - start
    events = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    curve = [
        {"epoch": e["epoch"], "val_accuracy": e.get("val_accuracy"), "train_loss": e["train_loss"]}
        for e in events
        if e["event"] == "eval"
    ]
    test = {m["name"]: m["value"] for m in result.metrics if m["split"] == "test"}
    return {"pretrained": pretrained, "wall_s": round(wall, 1), "test": test, "val_curve": curve, "recipe": recipe.to_dict()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--num-workers", type=int, default=1)
    parser.add_argument("--arms", default="pretrained,scratch")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--out", default=None, help="keep the trained models here (default: a temp dir)")
    parser.add_argument("--name", default="vision_transfer", help="results file name (benchmarks/results/NAME.json)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        out_root = Path(args.out or tmp)
        arms = [run_arm(arm == "pretrained", args, out_root) for arm in args.arms.split(",")]
    write({
        "benchmark": args.name,
        "model": MODEL,
        "dataset": "vision/fashion-mnist (55k train / 5k val / 10k test)",
        "arms": arms,
        "target": "pretrained test accuracy >= 0.92 within 1200 s",
        "env": zoo_env(),
    })


if __name__ == "__main__":
    main()
