"""A detector in eager PyTorch (``zoo.load(...).predict``) vs its exported bundle in ``zoo.runtime`` (ONNX Runtime +
numpy decoding, no torch in the loop), pictures/s at batch 1 on a real photo.

Target (issue 16): ratio (runtime / eager) >= 1.3. Both arms run one picture at a time, interleaved in one
process after a warm-up, on scikit-image's astronaut (512 × 512). The runtime arm's time is split into its
preprocessing (numpy resize + normalise + pad), the ONNX Runtime session and the numpy decoding + NMS.
The default model is the ``object-detection`` recipe's FCOS on EfficientNet-Lite0 at 320 pixels, random init
seeded to give boxes (as in tests/vision/test_detector_export.py: a regression bias of 1, larger class weights),
so the decoding and NMS have work to do; ``--model`` takes a ``torchvision:`` detector (random init) instead.

    python -m benchmarks.detector_export [--threads 1] [--repeats 30] [--model torchvision:fcos_resnet50_fpn]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.load_overhead import write, zoo_env

COMPOSITE_CLASSES = 11  # vision/fashion_composite: background + the 10 Fashion-MNIST classes


def seeded_fcos(image_size: int):
    import torch

    from vision.upstream_dense import detector_preprocessing
    from zoo.card import ModelCard
    from zoo.hub import build

    card = ModelCard(id="vision/fcos_efficientnet_lite0.custom", domain="vision", task="object-detection",
                     architecture="fcos_efficientnet_lite0", license="Apache-2.0",
                     labels=[f"class_{i}" for i in range(COMPOSITE_CLASSES)],
                     arch_args={"num_classes": COMPOSITE_CLASSES, "image_size": image_size})
    torch.manual_seed(0)
    model = build(card)
    model.card.preprocessing, model.card.input = detector_preprocessing(model.net)
    with torch.no_grad():
        model.net.head.regression_head.bbox_reg.bias.fill_(1.0)
        model.net.head.classification_head.cls_logits.weight.mul_(30.0)
    return model.eval()


def timed(fn, *args) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def main() -> None:
    import onnxruntime
    import torch
    from skimage import data

    import zoo
    from zoo.boxes import detect
    from zoo.export import export
    from zoo.runtime import load_bundle

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="fcos_efficientnet_lite0")
    parser.add_argument("--image-size", type=int, default=320)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=0, help="0: each library's default")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    photo = data.astronaut()
    with tempfile.TemporaryDirectory() as tmp:
        if args.model == "fcos_efficientnet_lite0":
            model = seeded_fcos(args.image_size)
        else:
            model = zoo.load(args.model, pretrained=False, device="cpu").eval()
        start = time.perf_counter()
        bundle = load_bundle(export(model, Path(tmp) / "bundle"))
        export_seconds = time.perf_counter() - start
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = args.threads
        bundle.session = onnxruntime.InferenceSession(str(bundle.directory / "model.onnx"), options,
                                                      providers=["CPUExecutionProvider"])
        post = bundle.spec["postprocessing"]
        eager, runtime, stages = [], [], {"preprocess": [], "session": [], "decode": []}
        with torch.inference_mode():
            for repeat in range(args.repeats + 3):  # 3 warm-up rounds
                seconds_eager, expected = timed(model.predict, photo)
                seconds_runtime, got = timed(bundle.predict, photo)
                seconds_pre, batch = timed(bundle.preprocess, [photo])
                seconds_run, rows = timed(bundle.run, batch)
                seconds_decode, _ = timed(detect, rows[0], post, tuple(batch["resized"][0]), tuple(batch["sizes"][0]))
                if repeat >= 3:
                    eager.append(seconds_eager)
                    runtime.append(seconds_runtime)
                    for name, value in zip(stages, (seconds_pre, seconds_run, seconds_decode)):
                        stages[name].append(value)
    eager_ms, runtime_ms = 1000 * statistics.median(eager), 1000 * statistics.median(runtime)
    write({"benchmark": f"detector_export_{args.model.split(':')[-1]}_threads{args.threads}",
           "model": args.model, "photo": "skimage.data.astronaut", "network_input": list(batch["input"].shape),
           "threads": args.threads or "default", "repeats": args.repeats, "boxes": [len(expected["boxes"]),
                                                                                   len(got["boxes"])],
           "eager_ms_p50": round(eager_ms, 2), "runtime_ms_p50": round(runtime_ms, 2),
           "ratio_runtime_over_eager": round(eager_ms / runtime_ms, 3), "target": 1.3,
           "runtime_stages_ms_p50": {k: round(1000 * statistics.median(v), 2) for k, v in stages.items()},
           "export_seconds": round(export_seconds, 1), "env": zoo_env()})


if __name__ == "__main__":
    main()
