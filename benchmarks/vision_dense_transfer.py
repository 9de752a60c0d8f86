"""Transfer in detection: the bundled detector's recipe from ImageNet weights vs. from random init, same wall time.

Target (issue 16): on the composite test set the detector trained from EfficientNet-Lite0's
ImageNet weights reaches mAP50 >= 0.80, and >= 10 points above the same recipe from random
init trained for the same wall time (each <= 20 min on the 2-core CPU). Both arms run the
object-detection recipe with the bundled detector's hyper-parameters
(``vision.train_bundled.CONFIGS["fcos_efficientnet_lite0.fashion_composite"]``); the only difference is
``pretrained``. The budget is the Trainer's ``max_minutes``: each arm stops at
its first optimizer step past it (evaluation counted), then is scored on the test split. mAP50,
mAP and their differences get paired 95% bootstrap CIs over the test images (COCOeval's
per-image matches re-accumulated on each resample: :class:`zoo.metrics.DetectionMatches`).

    python -m benchmarks.vision_dense_transfer [--minutes 20] [--config NAME|JSON] [--set KEY=VALUE ...]
    python -m benchmarks.vision_dense_transfer --minutes 0.1 --subset 32,8,16 --set train.batch_size=8 \\
        --out /tmp/vision_dense_transfer_smoke.json          # a quick check that it runs
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from benchmarks.load_overhead import zoo_env

RESULT = Path(__file__).parent / "results" / "vision_dense_transfer.json"
TARGETS = {"map50": 0.80, "map50_gain": 0.10}


def config_from(text: str | None) -> tuple[str, dict]:
    """A key of ``vision.train_bundled.CONFIGS``, a JSON object of object-detection hyper-parameters, or None
    (the bundled detector's config)."""
    from vision.bench_dense import bundled_detector_config
    from vision.train_bundled import CONFIGS

    if text is None:
        return bundled_detector_config()
    if text in CONFIGS:
        return CONFIGS[text]
    try:
        params = json.loads(text)
    except json.JSONDecodeError:
        params = None
    if not isinstance(params, dict):
        raise SystemExit(f"--config: expected one of {sorted(CONFIGS)} or a JSON object, got {text!r}")
    return "object-detection", params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="wall-time budget of each arm")
    parser.add_argument("--config", help="a vision.train_bundled config name or a JSON object (default: the "
                        "bundled detector's)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a recipe field over the config, e.g. train.batch_size=8 (repeatable)")
    parser.add_argument("--subset", metavar="TRAIN,VAL,TEST",
                        help="train on a freshly made composite set of these sizes instead of the config's data")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--runs", type=Path, help="keep the two run folders here (default: a temporary folder)")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()

    config = config_from(args.config)
    overrides = dict(item.split("=", 1) for item in args.set)
    with tempfile.TemporaryDirectory(prefix="dense-transfer-") as scratch:
        if args.subset:
            from vision.composite import fashion_composite

            train, val, test = (int(n) for n in args.subset.split(","))
            overrides["data"] = str(fashion_composite(Path(scratch) / "data", train=train, val=val, test=test).root)
        result = run(config, args.minutes, args.runs or Path(scratch) / "runs", args.n_boot, overrides)
    result["command"] = "python -m benchmarks.vision_dense_transfer " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in (("minutes", args.minutes), ("config", args.config),
                                                     ("subset", args.subset)) if v is not None) + "".join(
        f" --set {item}" for item in args.set)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in ("env", "arms")}, indent=2))
    print(f"written to {args.out}")


def run(config: tuple[str, dict], minutes: float, runs: Path, n_boot: int, overrides: dict) -> dict:
    """Both arms, their records and the paired metrics with CIs."""
    from vision.bench_dense import transfer_arms
    from zoo.bench_stats import bootstrap_statistic_ci95

    started = time.perf_counter()
    arms, paired = transfer_arms(config, minutes, runs, n_boot=n_boot, **overrides)
    intervals = bootstrap_statistic_ci95(paired)
    metrics = {name: {"value": value, "ci95": list(intervals[name]) if name in intervals else None}
               for name, value in paired.of(None).items()}
    return {
        "benchmark": "vision_dense_transfer",
        "recipe": config[0],
        "config": {**config[1], **overrides},
        "minutes_each": minutes,
        "metrics": metrics,
        "targets": {name: {"target": target, "met": metrics[name]["value"] >= target}
                    for name, target in TARGETS.items()},
        "arms": arms,
        "ci": f"paired percentile bootstrap over the {paired.n} test images, {n_boot} resamples",
        "wall_s": round(time.perf_counter() - started, 1),
        "env": zoo_env(),
    }


if __name__ == "__main__":
    main()
