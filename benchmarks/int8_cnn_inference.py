"""Static int8 side by side for a CNN: batch-1 CPU latency of eager PyTorch, the fp32 and the int8 ONNX Runtime
bundle of EfficientNet-Lite0 fine-tuned on Fashion-MNIST, and the top-1 of both bundles on the real test set.

The model is the image-classification recipe's output (``--model DIR``), or, without it, fine-tuned here by that
recipe from ``vision/efficientnet_lite0.in1k`` on ``vision/fashion-mnist`` at ``--image-size`` for at most
``--finetune-minutes`` (one epoch; a quick fine-tune, not the bundled model's). It is exported as ``zoo export``
does, to fp32 and, by :func:`zoo.quantize.quantize_bundle`, to static QDQ int8 (256 calibration images of its
training split; the int8 bundle's parity.json holds the top-1 of both bundles on the 10,000 test images). The three
runners are timed in alternating rounds on one test image, one intra-op thread then the defaults; latency is the
median over rounds of each round's median. Ratios: fp32 ORT / int8 ORT (target >= 1.5) and eager / each runner.
ONNX Runtime's profiler says where each graph's time goes, by operator (its absolute figures include the
profiler's own cost per node). A latency-only sweep traces the same weights at larger inputs (``--sweep-sizes``):
int8's gain grows with the convolutions.

    python -m benchmarks.int8_cnn_inference [--model DIR] [--image-size 32] [--finetune-minutes 8] [--rounds 5]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.int8_inference import side_by_side
from benchmarks.load_overhead import write, zoo_env

BASE = "vision/efficientnet_lite0.in1k"
DATA = "vision/fashion-mnist"


def finetune(folder: Path, image_size: int, minutes: float) -> tuple[Path, dict]:
    """EfficientNet-Lite0 fine-tuned on Fashion-MNIST by the image-classification recipe: its folder, how."""
    from vision.recipes import ImageClassificationRecipe

    recipe = ImageClassificationRecipe(model=BASE, data=DATA, pretrained=True, image_size=image_size, augment="none",
                                       label_smoothing=0.1, train={"epochs": 1, "batch_size": 96, "lr": 1e-3,
                                                                   "deterministic": False, "max_minutes": minutes})
    start = time.perf_counter()
    result = recipe.run(folder / "finetuned", progress=False)
    return result.out_dir, {"recipe": recipe.to_dict(), "wall_s": round(time.perf_counter() - start, 1)}


def size_sweep(model, sizes: list[int], rounds: int, iters: int, folder: Path) -> dict:
    """One-thread batch-1 latency of eager, fp32 and static int8 ONNX Runtime with the same weights traced at other
    input sizes (int8 calibrated on 64 training images at that size; latency only, no quality): how int8's gain
    grows with the convolutions."""
    from backends.onnx_backend import export_onnx
    from backends.quantize import quantize_static_int8
    from vision.datasets import load_splits
    from vision.transforms import ImageTransform

    train = load_splits(DATA).train
    found = {}
    for size in sizes:
        transform = ImageTransform.from_preprocessing(dict(model.card.preprocessing, size=[size, size]))
        images = torch.from_numpy(np.stack([transform.to_array(train.raw(i)) for i in range(64)]))
        fp32 = export_onnx(model.net, images[:2], folder / f"sweep{size}" / "fp32.onnx")
        quantize_static_int8(fp32, fp32.with_name("int8.onnx"), [{"input": images[i:i + 16].numpy()}
                                                                 for i in range(0, 64, 16)])
        paths = {"onnxruntime": fp32, "onnxruntime-int8": fp32.with_name("int8.onnx")}
        run = side_by_side(model.net, paths, images[:1], 1, rounds, iters)
        found[str(size)] = {k: run[k] for k in ("latency_ms_batch1", "speedup_vs_eager", "int8_vs_fp32_onnxruntime")}
        print(f"{size}x{size}", {n: f"{v:.3f} ms" for n, v in run["latency_ms_batch1"].items()},
              f"int8 / fp32 ORT {run['int8_vs_fp32_onnxruntime']:.2f}x", flush=True)
    return found


def profile(path: Path, image: np.ndarray, runs: int, folder: Path) -> dict:
    """ONNX Runtime's profile of ``runs`` single-thread batch-1 runs: microseconds a run by operator type."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.enable_profiling = True
    options.profile_file_prefix = str(folder / path.parent.name)
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    for _ in range(runs + 5):
        session.run(None, {"input": image})
    events = json.loads(Path(session.end_profiling()).read_text())
    nodes = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    per_op: dict[str, float] = {}
    for event in nodes:
        per_op[event["args"]["op_name"]] = per_op.get(event["args"]["op_name"], 0.0) + event["dur"]
    total_runs = runs + 5  # the profile counts the warm-up runs too; the per-run figure divides by all
    by_op = {op: round(us / total_runs, 1) for op, us in sorted(per_op.items(), key=lambda kv: -kv[1])}
    return {"us_per_run_by_op": by_op, "us_per_run_nodes": round(sum(per_op.values()) / total_runs, 1),
            "nodes_per_run": len(nodes) // total_runs}


def main() -> None:
    import zoo
    from vision.datasets import load_splits
    from zoo.export import export
    from zoo.quantize import quantize_bundle

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a fine-tuned model folder (default: fine-tune one here)")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--finetune-minutes", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--sweep-sizes", default="64,128,224",
                        help="input sizes of the latency-only sweep, comma-separated ('' for none)")
    parser.add_argument("--note", default="", help="conditions of the run, recorded (a shared, loaded CPU, say)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="zoo-int8-cnn-bench-") as tmp:
        folder = Path(tmp)
        model_dir, finetuned = args.model, {"model_dir": args.model}
        if model_dir is None:
            model_dir, finetuned = finetune(folder, args.image_size, args.finetune_minutes)
        model = zoo.load(str(model_dir), device="cpu").eval()
        fp32 = export(model, folder / "fp32")
        start = time.perf_counter()
        int8 = quantize_bundle(model, fp32, folder / "int8")
        quantize_s = time.perf_counter() - start  # calibration, quantization, top-1 of both
        paths = {"onnxruntime": fp32 / "model.onnx", "onnxruntime-int8": int8 / "model.onnx"}
        quality = json.loads((int8 / "parity.json").read_text())["quality"]
        quantization = json.loads((int8 / "bundle.json").read_text())["quantization"]
        quantization["calibration"].pop("indices")  # 256 numbers; the bundle keeps them
        image = model.adapter.transform(load_splits(DATA).test.raw(0))[None]
        runs = {}
        for label, threads in (("single_thread", 1), ("default_threads", None)):
            runs[label] = side_by_side(model.net, paths, image, threads, args.rounds, args.iters)
            print(label, {n: f"{v:.3f} ms" for n, v in runs[label]["latency_ms_batch1"].items()},
                  f"int8 / fp32 ORT {runs[label]['int8_vs_fp32_onnxruntime']:.2f}x", flush=True)
        profiles = {name: profile(path, image.numpy(), 200, folder) for name, path in paths.items()}
        sweep_sizes = [int(size) for size in args.sweep_sizes.split(",") if size]
        sweep = size_sweep(model, sweep_sizes, args.rounds, max(args.iters // 5, 10), folder)
        sizes = {name: path.stat().st_size for name, path in paths.items()}
    write({
        "benchmark": "int8_cnn_inference",
        "model": f"{BASE} fine-tuned on {DATA} at {args.image_size}x{args.image_size} (one test image, batch 1)",
        "finetune": finetuned,
        "rounds": args.rounds,
        "iters_per_round": args.iters,
        "runs": runs,
        "quality": quality,
        "quantization": quantization,
        "quantize_and_measure_s": round(quantize_s, 1),
        "onnxruntime_profile_single_thread": profiles,
        "size_sweep_single_thread": sweep,
        "onnx_bytes": sizes,
        "targets": {"int8_vs_fp32_onnxruntime": ">= 1.5", "top1 loss (fp32 - int8)": "<= 0.01"},
        "note": args.note,
        "command": "python -m benchmarks.int8_cnn_inference",
        "options": {k: v for k, v in vars(args).items() if k != "note"},
        "env": zoo_env(),
    })


if __name__ == "__main__":
    main()
