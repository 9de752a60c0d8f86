"""Time to quality: ``zoo finetune`` (the image-classification recipe) vs timm's ``train.py``, each with its defaults.

Issue 20 §3, image half: the Fashion-MNIST transfer task (EfficientNet-Lite0 with the
zoo's ImageNet weights, 32 px), wall clock from launch until validation top-1 first
reaches ``--target`` (0.90). Both arms run as the user runs them, as a command in a
fresh process; the clock covers start-up, data loading, training and each tool's own
end-of-epoch evaluation, and stops when the tool writes an evaluation at the target
(``metrics.jsonl`` for the zoo, ``summary.csv`` for timm; polled every 0.5 s), which
ends the arm. Held equal: the network (timm's ``tf_efficientnet_lite0`` layout, which is
what ``vision/efficientnet_lite0.in1k`` is, with the zoo's ImageNet weights handed to
timm through ``--pretrained-path``), batch size, epochs, image size and the train /
validation images (the zoo's split, written as an image folder for timm). Everything
else is each tool's default (timm: SGD with Nesterov momentum at lr 0.1 x batch / 256,
5 warm-up epochs, cosine decay, RandomResizedCrop + flip + colour jitter, label
smoothing 0.1, 4 loader workers; zoo: AdamW at lr 3e-3, 5% warm-up, cosine decay,
TrivialAugment, label smoothing 0.1). The learning rate is each tool's own because it
means different things to the two optimizers: holding AdamW's 3e-3 would have timm's
SGD take steps ~12x smaller than timm chooses (``--lr`` overrides both, for a
same-number run).

timm's ``train.py`` is not in the timm wheel: pass the one from a checkout of
https://github.com/huggingface/pytorch-image-models (``--timm-train PATH``); its sha256
goes into the results. The ratio is timm / zoo of the median times (issue target
>= 1.2); an arm that never reaches the target within its epochs has no time, and the
results say so rather than inventing one.

    python -m benchmarks.time_to_quality_vision --timm-train PATH/train.py [--seeds 3] [--epochs 2] [--lr LR] [--smoke]
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.load_overhead import write, zoo_env

MODEL, DATA = "vision/efficientnet_lite0.in1k", "vision/fashion-mnist"
TIMM_MODEL = "tf_efficientnet_lite0"  # timm's efficientnet_lite0 with bn_eps 1e-3 and 'same' padding: the zoo's network


def write_image_folder(root: Path, train_limit: int | None, val_limit: int | None) -> dict:
    """The zoo's train / val split of Fashion-MNIST as ``root/{train,validation}/CLASS/N.png`` (timm's layout)."""
    import numpy as np
    from PIL import Image

    from vision.datasets import load_splits

    splits = load_splits(DATA)
    counts = {}
    for split, folder, limit in (("train", "train", train_limit), ("val", "validation", val_limit)):
        dataset = splits.split(split)
        keep = range(len(dataset)) if limit is None else np.random.default_rng(0).permutation(len(dataset))[:limit]
        for index in keep:
            target = root / folder / splits.classes[dataset.labels[index]].replace("/", "-")
            target.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.asarray(dataset.raw(index))).save(target / f"{index}.png")
        counts[split] = len(keep)
    return {"images": counts, "classes": splits.classes, "fingerprint": splits.fingerprint}


def zoo_weights(path: Path) -> None:
    """The ImageNet weights of ``vision/efficientnet_lite0.in1k`` as a timm-keyed safetensors file."""
    from safetensors.torch import save_file

    import zoo

    net = zoo.load(MODEL, device="cpu").net
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))


def watch(command: list[str], read_evals, target: float, log: Path) -> dict:
    """Run ``command`` until ``read_evals()`` holds an evaluation at ``target`` or the command ends."""
    start = time.perf_counter()
    seen: list[dict] = []
    with open(log, "w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        reached = None
        while reached is None:
            finished = process.poll() is not None
            for point in read_evals()[len(seen):]:
                seen.append({**point, "wall_s": round(time.perf_counter() - start, 1)})
                print(f"  epoch {point['epoch']}: {seen[-1]['wall_s']:.0f} s, val top-1 {point['val_top1']:.4f}", flush=True)
                if point["val_top1"] >= target and reached is None:
                    reached = seen[-1]
            if finished:
                break
            time.sleep(0.5)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait()
    if reached is None and process.returncode != 0:
        raise SystemExit(f"{command[0]} failed (exit {process.returncode}); its output: {log}\n"
                         + log.read_text()[-3000:])
    return {"time_to_target_s": reached["wall_s"] if reached else None,
            "epoch_at_target": reached["epoch"] if reached else None, "ran_s": round(time.perf_counter() - start, 1),
            "curve": seen}


def run_zoo(args, seed: int, work: Path) -> dict:
    out = work / f"zoo_{seed}"
    command = [sys.executable, "-m", "zoo", "finetune", MODEL, "--data", DATA, "--out", str(out),
               "--epochs", str(args.epochs), "--set", f"train.batch_size={args.batch_size}",
               "--set", f"image_size={args.image_size}", "--set", f"train.seed={seed}"]
    if args.lr is not None:
        command += ["--set", f"train.lr={args.lr}"]
    if args.smoke:
        command += ["--set", "train.max_minutes=0.5"]

    def evals():
        path = out / "metrics.jsonl"
        events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
        return [{"epoch": e["epoch"], "val_top1": e["val_accuracy"]} for e in events if e.get("event") == "eval"]

    return {"command": command, **watch(command, evals, args.target, work / f"zoo_{seed}.log")}


def run_timm(args, seed: int, work: Path) -> dict:
    out = work / f"timm_{seed}"
    command = [sys.executable, str(args.timm_train), "--data-dir", str(work / "images"), "--model", TIMM_MODEL,
               "--pretrained", "--pretrained-path", str(work / "in1k.safetensors"), "--num-classes", "10",
               "--input-size", "3", str(args.image_size), str(args.image_size), "--epochs", str(args.epochs),
               "-b", str(args.batch_size), "--seed", str(seed), "--device", "cpu", "--output", str(out),
               "--experiment", "run"] + ([] if args.lr is None else ["--lr", str(args.lr)])

    def evals():
        path = out / "run" / "summary.csv"
        rows = list(csv.DictReader(path.open())) if path.exists() else []
        return [{"epoch": int(r["epoch"]), "val_top1": float(r["eval_top1"]) / 100} for r in rows]

    return {"command": command, **watch(command, evals, args.target, work / f"timm_{seed}.log")}


def summary(args, data: dict, runs: dict[str, list[dict]]) -> dict:
    """The results so far: medians and their ratio, or a lower bound on it when timm never reached the target."""
    times = {name: [r["time_to_target_s"] for r in arm_runs] for name, arm_runs in runs.items()}
    median = {name: statistics.median(t) if t and None not in t else None for name, t in times.items()}
    zoo_s, timm_s = median["zoo finetune"], median["timm train.py"]
    timm_ran = [r["ran_s"] for r in runs["timm train.py"]]
    return {
        "benchmark": "time_to_quality_vision" + (".smoke" if args.smoke else ""),
        "model": f"{MODEL} (timm {TIMM_MODEL} with the same weights), 10 classes, {args.image_size} px",
        "data": f"{DATA}: the zoo's split ({data['images']['train']} train / {data['images']['val']} val images)",
        "held_equal": {"batch_size": args.batch_size, "epochs": args.epochs, "image_size": args.image_size,
                       **({"lr": args.lr} if args.lr is not None else {})},
        "lr": args.lr if args.lr is not None else {"zoo finetune": "recipe default, AdamW 3e-3",
                                                   "timm train.py": f"SGD 0.1 x {args.batch_size} / 256"},
        "quality": f"validation top-1 >= {args.target}, at each tool's end-of-epoch evaluation (on the clock)",
        "timm_train_py_sha256": hashlib.sha256(args.timm_train.read_bytes()).hexdigest(),
        "seeds_done": min(len(arm_runs) for arm_runs in runs.values()),
        "median_time_to_target_s": median,
        "not_reached": {name: sum(t is None for t in arm_times) for name, arm_times in times.items()},
        "ratio_timm_over_zoo": timm_s / zoo_s if zoo_s and timm_s else None,
        # timm never reaching the target within the epochs: its whole run is a lower bound on its time
        "ratio_timm_over_zoo_at_least": (statistics.median(timm_ran) / zoo_s
                                         if zoo_s and timm_ran and times["timm train.py"].count(None) == len(timm_ran)
                                         else None),
        "target": ">= 1.2 (median time to quality, timm train.py / zoo finetune)",
        "runs": runs,
        "env": zoo_env(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timm-train", type=Path, required=True, help="train.py from a timm checkout")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--target", type=float, default=0.90, help="validation top-1 to reach")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=96)
    parser.add_argument("--lr", type=float, default=None, help="one learning rate for both (default: each tool's own)")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--smoke", action="store_true", help="1 epoch of 960 images, 480 to validate: checks the script")
    args = parser.parse_args()
    if not args.timm_train.is_file():
        raise SystemExit(f"expected timm's train.py at {args.timm_train}: take it from a checkout of "
                         "https://github.com/huggingface/pytorch-image-models")
    if args.smoke:
        args.epochs, args.seeds = 1, 1

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = write_image_folder(work / "images", 960 if args.smoke else None, 480 if args.smoke else None)
        zoo_weights(work / "in1k.safetensors")
        arms = {"zoo finetune": run_zoo, "timm train.py": run_timm}
        runs: dict[str, list[dict]] = {name: [] for name in arms}
        for seed in range(args.seeds):
            for name in list(arms) if seed % 2 == 0 else list(arms)[::-1]:
                print(f"{name}, seed {seed}", flush=True)
                runs[name].append({"seed": seed, **arms[name](args, seed, work)})
            write(summary(args, data, runs))  # after every seed: a run cut short keeps the seeds it finished
if __name__ == "__main__":
    main()
